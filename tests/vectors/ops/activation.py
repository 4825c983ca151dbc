"""PLACEHOLDER: the vectors of activation land here."""


def cases():
    return []
