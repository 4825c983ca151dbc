"""PLACEHOLDER: the vectors of embedding land here."""


def cases():
    return []
