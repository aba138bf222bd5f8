"""Message bodies at rest: Fernet encryption with key rotation.

A stored value is ``"enc:v1:"`` followed by a Fernet token (AES-128-CBC with HMAC-SHA256, a random
IV each time, url-safe base64). The keys come from ``GATEWAY_ENCRYPTION_KEYS``: the first encrypts,
every one decrypts, so a new key is put first and the old ones stay until ``flask --app app
rotate-keys`` has re-encrypted every row with the new one.

A value without the prefix is legacy plaintext (written before encryption was introduced) and is
returned as it is; ``rotate`` encrypts it. Errors never carry the plaintext or a key.

``python -m gateway.crypto`` prints a new key without loading the app (as does ``flask --app app
new-key``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.core.errors import GatewayError

PREFIX = "enc:v1:"

_keys: tuple[str, ...] = ()
_fernet: MultiFernet | None = None


class KeyMissing(GatewayError):
    """A stored value cannot be decrypted (or a value encrypted): a key is missing.

    The message names GATEWAY_ENCRYPTION_KEYS, never the value or a key.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "no key in GATEWAY_ENCRYPTION_KEYS decrypts a stored value: the key that "
            "encrypted it is missing from GATEWAY_ENCRYPTION_KEYS (or the value is damaged)"
        )


def configure(keys: Sequence[str]) -> None:
    """Use these keys from now on: the first encrypts, every one decrypts.

    An empty sequence is allowed (nothing can then be encrypted or decrypted); a malformed key
    raises ValueError, which does not repeat the key.
    """
    global _keys, _fernet
    keys = tuple(keys)
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ValueError(
                f"GATEWAY_ENCRYPTION_KEYS: key #{position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    _keys, _fernet = keys, (MultiFernet(fernets) if fernets else None)


@contextmanager
def using(keys: Sequence[str]) -> Iterator[None]:
    """Use these keys inside the block, then the ones configured before (tests, tools)."""
    saved = _keys
    configure(keys)
    try:
        yield
    finally:
        configure(saved)


def new_key() -> str:
    """A new random key, for GATEWAY_ENCRYPTION_KEYS."""
    return Fernet.generate_key().decode("ascii")


def is_encrypted(stored: object) -> bool:
    """Whether a stored value is in the encrypted form (else it is legacy plaintext or None)."""
    return isinstance(stored, str) and stored.startswith(PREFIX)


def encrypt(text: str) -> str:
    """The stored form of ``text``, encrypted with the current (first) key."""
    if not isinstance(text, str):
        raise TypeError(f"encrypt() takes a str, not {type(text).__name__}")
    token = _current().encrypt(text.encode("utf-8"))
    return PREFIX + token.decode("ascii")


def decrypt(stored: str) -> str:
    """The text of a stored value; legacy plaintext (no prefix) is returned as it is."""
    if not is_encrypted(stored):
        return stored
    fernet = _current()
    try:
        return fernet.decrypt(_token(stored)).decode("utf-8")
    except (InvalidToken, UnicodeDecodeError):
        raise KeyMissing() from None


def rotate(stored: str) -> str:
    """The same text encrypted with the current key; legacy plaintext is encrypted."""
    if not is_encrypted(stored):
        return encrypt(stored)
    fernet = _current()
    try:
        return PREFIX + fernet.rotate(_token(stored)).decode("ascii")
    except InvalidToken:
        raise KeyMissing() from None


def _token(stored: str) -> bytes:
    try:
        return stored[len(PREFIX) :].encode("ascii")
    except UnicodeEncodeError:
        raise KeyMissing("an encrypted value is damaged (not a Fernet token)") from None


def _current() -> MultiFernet:
    if _fernet is None:
        raise KeyMissing(
            "no encryption key is configured: a key is missing from GATEWAY_ENCRYPTION_KEYS "
            "(make one with `flask --app app new-key`)"
        )
    return _fernet


if __name__ == "__main__":
    print(new_key())
