"""PLACEHOLDER: the vectors of adamw land here."""


def cases():
    return []
