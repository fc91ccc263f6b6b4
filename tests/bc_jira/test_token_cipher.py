"""Token encryption: MultiFernet over the configured keys, rotation, clear errors without key material."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bc_jira import token_cipher
from bc_jira.token_cipher import TokenCipher, TokenCryptoError, get_cipher


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([Fernet.generate_key()])


def test_cipher_roundtrip_hides_plaintext(cipher: TokenCipher) -> None:
    enc = cipher.encrypt("secret-refresh-token-value")
    assert "secret-refresh-token-value" not in enc
    assert cipher.decrypt(enc) == "secret-refresh-token-value"


def test_key_rotation_old_key_still_decrypts() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    enc_old = TokenCipher([old]).encrypt("tok-PLAIN-123")
    rotated_cipher = TokenCipher([new, old])  # new first: encrypts; old kept: decrypts
    assert rotated_cipher.decrypt(enc_old) == "tok-PLAIN-123"
    enc_new = rotated_cipher.rotate(enc_old)
    assert TokenCipher([new]).decrypt(enc_new) == "tok-PLAIN-123"  # re-encrypted with the new key
    with pytest.raises(TokenCryptoError) as err:
        TokenCipher([new]).decrypt(enc_old)  # old key dropped too early
    assert "keep the old key" in str(err.value)
    assert "tok-PLAIN-123" not in str(err.value)


def test_keys_from_env_then_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, f"{a}, {b}")
    keys, where = token_cipher.configured_keys()
    assert keys == [a, b]
    assert where == token_cipher.FERNET_KEYS_ENV
    assert Fernet(a.encode()).decrypt(get_cipher().encrypt("x").encode()) == b"x"  # first key encrypts
    monkeypatch.delenv(token_cipher.FERNET_KEYS_ENV)
    keys, where = token_cipher.configured_keys()
    assert where == "[core] fernet_key"
    assert len(keys) == 1


def test_airflow_fernet_key_may_hold_several(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.delenv(token_cipher.FERNET_KEYS_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", f"{a},{b}")
    enc_b = Fernet(b.encode()).encrypt(b"t").decode()
    assert get_cipher().decrypt(enc_b) == "t"


def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(token_cipher.FERNET_KEYS_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    with pytest.raises(TokenCryptoError, match="BC_JIRA_FERNET_KEYS"):
        get_cipher()
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, "not-a-key")
    with pytest.raises(
        TokenCryptoError, match="key #1 of BC_JIRA_FERNET_KEYS is not a valid Fernet key"
    ) as e:
        get_cipher()
    assert "not-a-key" not in str(e.value)
