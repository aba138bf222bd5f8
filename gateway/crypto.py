"""``python -m gateway.crypto`` prints a new encryption key (the command the README and the
settings' error messages name); the keys themselves live in ``gateway.store.crypto``."""

if __name__ == "__main__":
    from gateway.store.crypto import new_key

    print(new_key())
