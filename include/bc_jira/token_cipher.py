"""Encryption of the stored tokens: a MultiFernet over the configured keys (first encrypts, all decrypt).

Keys come from ``$BC_JIRA_FERNET_KEYS`` (comma-separated) or Airflow's ``[core] fernet_key``; a new key put
first and the old ones kept after it rotates without losing a stored token. No key or token material ever
appears in an exception message or a ``repr``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

FERNET_KEYS_ENV = "BC_JIRA_FERNET_KEYS"


class TokenCryptoError(RuntimeError):
    """No usable key, or a stored value no configured key can decrypt. Never carries key or token material."""


def _split_keys(raw: str | None) -> list[str]:
    return [k.strip() for k in (raw or "").split(",") if k.strip()]


def configured_keys() -> tuple[list[str], str]:
    """``(keys, where)``: ``$BC_JIRA_FERNET_KEYS`` first, else Airflow's ``[core] fernet_key``.

    The first key encrypts, every key decrypts: put a new key first and keep the old ones to rotate.
    """
    keys = _split_keys(os.environ.get(FERNET_KEYS_ENV))
    if keys:
        return keys, FERNET_KEYS_ENV
    try:
        from airflow.configuration import conf

        keys = _split_keys(conf.get("core", "fernet_key", fallback=""))
    except Exception as exc:  # noqa: BLE001 - airflow not importable / not configured: say so, not a traceback
        log.debug("could not read [core] fernet_key: %s", type(exc).__name__)
        keys = []
    return keys, "[core] fernet_key"


class TokenCipher:
    """MultiFernet over the configured keys (first encrypts, all decrypt)."""

    def __init__(self, keys: Sequence[str | bytes] | None = None, source: str = "keys") -> None:
        if keys is None:
            found, source = configured_keys()
            keys = found
        if not keys:
            raise TokenCryptoError(
                "no encryption key for the Jira token store: set BC_JIRA_FERNET_KEYS (comma-separated Fernet "
                "keys, first one encrypts) or Airflow's [core] fernet_key. Generate one with: python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
        fernets = []
        for i, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise TokenCryptoError(
                    f"key #{i} of {source} is not a valid Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        self.source = source
        self._fernet = MultiFernet(fernets)

    def __repr__(self) -> str:
        return f"TokenCipher(source={self.source!r})"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenCryptoError(
                f"a stored token cannot be decrypted with the keys in {self.source}: when rotating keys keep "
                "the old key after the new one (comma-separated) until every token was re-encrypted"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first (newest) key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenCryptoError(
                f"a stored token cannot be decrypted with the keys in {self.source}"
            ) from None


_cipher_cache: dict[tuple[str, ...], TokenCipher] = {}


def get_cipher() -> TokenCipher:
    """The cipher for the currently configured keys (cached per key set; re-read so rotation applies)."""
    keys, source = configured_keys()
    cached = _cipher_cache.get(tuple(keys))
    if cached is None:
        cached = TokenCipher(keys, source)
        _cipher_cache.clear()
        _cipher_cache[tuple(keys)] = cached
    return cached
