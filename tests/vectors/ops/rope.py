"""PLACEHOLDER: the vectors of rope land here."""


def cases():
    return []
