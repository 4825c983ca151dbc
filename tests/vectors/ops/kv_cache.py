"""PLACEHOLDER: the vectors of kv_cache land here."""


def cases():
    return []
