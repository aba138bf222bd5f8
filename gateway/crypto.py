"""Message bodies at rest: Fernet encryption with key rotation (stub, being written)."""

from __future__ import annotations

from collections.abc import Sequence

_keys: tuple[str, ...] = ()


def configure(keys: Sequence[str]) -> None:
    """Use these keys from now on: the first encrypts, every one decrypts."""
    global _keys
    _keys = tuple(keys)
