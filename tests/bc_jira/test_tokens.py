"""Atlassian OAuth exchanges and the single-flight JiraTokenProvider.

Unit tests use an in-memory store with the StateStore token interface; the cross-process tests (16 processes,
one refresh) run against the real StateStore on PostgreSQL and SQLite and the sandbox over real HTTP.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from cryptography.fernet import Fernet

from bc_jira import token_cipher, tokens
from bc_jira.http import AuthError
from bc_jira.token_cipher import TokenCipher, TokenCryptoError, get_cipher
from bc_jira.tokens import (
    AtlassianOAuth,
    JiraTokenProvider,
    SiteNotAccessible,
    TokenSet,
)
from tests.support.token_store import FakeStore, Row

if TYPE_CHECKING:
    from collections.abc import Iterator

AUTH = "https://auth.example.test"
API = "https://api.example.test"


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([Fernet.generate_key()])


@pytest.fixture(autouse=True)
def _clear_process_cache() -> Iterator[None]:
    JiraTokenProvider._process_cache.clear()
    yield
    JiraTokenProvider._process_cache.clear()


def _token_answer(access: str, refresh: str, expires_in: int = 3600) -> dict[str, Any]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": "read:jira-work offline_access",
    }


# -- Atlassian OAuth exchanges -------------------------------------------------------------------------------


def test_authorization_url_has_audience_offline_access_state_prompt() -> None:
    from urllib.parse import parse_qs, urlsplit

    url = AtlassianOAuth(
        "cid", "sec", auth_url=AUTH, redirect_uri="https://af/cb", scopes=["read:jira-work"]
    ).authorization_url("st-1")
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{AUTH}/authorize"
    assert q["audience"] == "api.atlassian.com"
    assert q["state"] == "st-1"
    assert q["prompt"] == "consent"
    assert q["response_type"] == "code"
    assert q["redirect_uri"] == "https://af/cb"
    assert q["scope"].split() == ["read:jira-work", "offline_access"]
    assert "sec" not in url


def test_code_exchange_and_refresh_bodies(requests_mock: Any) -> None:
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at1", "rt2"))
    oauth = AtlassianOAuth("cid", "sec", auth_url=AUTH, api_url=API, redirect_uri="https://af/cb")
    got = oauth.exchange_code("the-code")
    assert m.last_request.json() == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://af/cb",
        "client_id": "cid",
        "client_secret": "sec",
    }
    assert got.access_token == "at1"
    assert got.refresh_token == "rt2"
    assert got.expires_at > time.time() + 3500
    assert "at1" not in repr(got)
    assert "rt2" not in repr(got)
    oauth.refresh("rt2")
    assert m.last_request.json()["grant_type"] == "refresh_token"
    assert m.last_request.json()["refresh_token"] == "rt2"


def test_refresh_failure_is_typed_and_secret_free(requests_mock: Any) -> None:
    requests_mock.post(
        f"{AUTH}/oauth/token",
        status_code=403,
        json={"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
    )
    with pytest.raises(AuthError) as err:
        AtlassianOAuth("cid", "sec-value", auth_url=AUTH).refresh("rt-secret-value")
    assert err.value.code == "invalid_grant"
    assert "rt-secret-value" not in str(err.value)
    assert "sec-value" not in str(err.value)


def test_resolve_cloud_id_by_site_url_not_first(requests_mock: Any) -> None:
    requests_mock.get(
        f"{API}/oauth/token/accessible-resources",
        json=[
            {"id": "c-other", "name": "other", "url": "https://other.atlassian.net", "scopes": []},
            {"id": "c-acme", "name": "acme", "url": "https://acme.atlassian.net", "scopes": []},
        ],
    )
    oauth = AtlassianOAuth("cid", "sec", auth_url=AUTH, api_url=API)
    assert oauth.resolve_cloud_id("at", "https://ACME.atlassian.net/") == "c-acme"
    assert requests_mock.last_request.headers["Authorization"] == "Bearer at"
    with pytest.raises(SiteNotAccessible) as err:
        oauth.resolve_cloud_id("at", "https://missing.atlassian.net")
    assert "https://acme.atlassian.net" in str(err.value)
    assert "https://other.atlassian.net" in str(err.value)


# -- JiraTokenProvider (in-memory store) ---------------------------------------------------------------------


def _provider(store: FakeStore, cipher: TokenCipher, bootstrap: str | None = "rt-boot") -> JiraTokenProvider:
    oauth = AtlassianOAuth("cid", "sec", auth_url=AUTH, api_url=API)
    return JiraTokenProvider(store, oauth, "jira:test", bootstrap_refresh_token=bootstrap, cipher=cipher)


def test_bootstrap_refresh_then_cached(requests_mock: Any, cipher: TokenCipher) -> None:
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at-1", "rt-2"))
    store = FakeStore()
    p = _provider(store, cipher)
    assert p.auth_header() == {"Authorization": "Bearer at-1"}
    assert m.call_count == 1
    assert m.last_request.json()["refresh_token"] == "rt-boot"
    row = store.rows["jira:test"]
    assert cipher.decrypt(row.refresh_token_enc) == "rt-2"
    assert cipher.decrypt(row.access_token_enc) == "at-1"
    assert "rt-2" not in row.refresh_token_enc
    assert row.expires_at > time.time() + 3500
    for _ in range(5):
        assert p.access_token() == "at-1"
    assert m.call_count == 1
    # A second provider (same process) answers from the process cache without touching the store lock.
    locks = store.locks_taken
    assert _provider(store, cipher).access_token() == "at-1"
    assert store.locks_taken == locks


def test_stored_refresh_token_wins_over_bootstrap(requests_mock: Any, cipher: TokenCipher) -> None:
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at-9", "rt-10"))
    store = FakeStore()
    store.rows["jira:test"] = Row(
        "jira:test", cipher.encrypt("rt-stored"), cipher.encrypt("old"), time.time() - 5
    )
    assert _provider(store, cipher).access_token() == "at-9"
    assert m.last_request.json()["refresh_token"] == "rt-stored"  # the rotated one, not the connection's


def test_token_valid_less_than_60s_is_refreshed(requests_mock: Any, cipher: TokenCipher) -> None:
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at-new", "rt-new"))
    store = FakeStore()
    store.rows["jira:test"] = Row(
        "jira:test", cipher.encrypt("rt"), cipher.encrypt("at-old"), time.time() + 30
    )
    assert _provider(store, cipher).access_token() == "at-new"
    assert m.call_count == 1


def test_neighbour_refreshed_while_waiting_for_lock(requests_mock: Any, cipher: TokenCipher) -> None:
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("mine", "rt-mine"))
    store = FakeStore()
    store.rows["jira:test"] = Row(
        "jira:test", cipher.encrypt("rt"), cipher.encrypt("expired"), time.time() - 1
    )

    def neighbour() -> None:  # another process refreshes between our read and our lock
        store.rows["jira:test"] = Row(
            "jira:test", cipher.encrypt("rt-theirs"), cipher.encrypt("theirs"), time.time() + 3600
        )
        store.before_lock = None

    store.before_lock = neighbour
    assert _provider(store, cipher).access_token() == "theirs"
    assert m.call_count == 0  # never presented the already-rotated refresh token


def test_force_refresh_after_401_refreshes_once(requests_mock: Any, cipher: TokenCipher) -> None:
    answers = iter([_token_answer("at-1", "rt-2"), _token_answer("at-2", "rt-3")])
    m = requests_mock.post(f"{AUTH}/oauth/token", json=lambda req, ctx: next(answers))
    store = FakeStore()
    p = _provider(store, cipher)
    assert p.access_token() == "at-1"
    assert p.access_token(force_refresh=True) == "at-2"  # at-1 was rejected: refresh even though "valid"
    assert m.call_count == 2
    assert m.last_request.json()["refresh_token"] == "rt-2"


def test_force_refresh_uses_neighbours_newer_token(requests_mock: Any, cipher: TokenCipher) -> None:
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at-1", "rt-2"))
    store = FakeStore()
    p = _provider(store, cipher)
    p.access_token()
    store.rows["jira:test"] = Row(
        "jira:test", cipher.encrypt("rt-n"), cipher.encrypt("at-neighbour"), time.time() + 3600
    )
    assert p.access_token(force_refresh=True) == "at-neighbour"
    assert m.call_count == 1


def test_revoked_grant_message_and_no_token_in_logs(
    requests_mock: Any, cipher: TokenCipher, caplog: pytest.LogCaptureFixture
) -> None:
    requests_mock.post(
        f"{AUTH}/oauth/token",
        status_code=403,
        json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as err:
        _provider(FakeStore(), cipher, bootstrap="rt-very-secret").access_token()
    assert "consent again" in str(err.value)
    assert "rt-very-secret" not in str(err.value)
    assert "rt-very-secret" not in caplog.text


def test_no_refresh_token_anywhere(cipher: TokenCipher) -> None:
    with pytest.raises(AuthError, match="no refresh token stored"):
        _provider(FakeStore(), cipher, bootstrap=None).access_token()


def test_store_tokens_and_meta(cipher: TokenCipher) -> None:
    store = FakeStore()
    p = _provider(store, cipher)
    p.store_tokens(TokenSet("at-c", "rt-c", time.time() + 3600), {"site_url": "https://a"})
    p.update_meta(cloud_id="cid-1")
    meta = p.get_meta()
    assert meta.pop("connected_at") == pytest.approx(time.time(), abs=5)  # a consent starts the 365 days
    assert meta == {"site_url": "https://a", "cloud_id": "cid-1", "client_id": "cid"}
    assert cipher.decrypt(store.rows["jira:test"].refresh_token_enc) == "rt-c"
    assert p.access_token() == "at-c"


# -- consent expiry (365 days) and refused refreshes ---------------------------------------------------------

DAY = 86400.0


def test_bootstrap_exchange_marks_the_consent_date_estimated(requests_mock: Any, cipher: TokenCipher) -> None:
    requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at-1", "rt-2"))
    store = FakeStore()
    _provider(store, cipher).access_token()
    meta = store.rows["jira:test"].meta
    assert meta["consent_estimated"] is True
    assert meta["connected_at"] == pytest.approx(time.time(), abs=5)
    assert tokens.consent_expires_at(meta) == pytest.approx(meta["connected_at"] + 365 * DAY)
    # A real consent (the OAuth callback) replaces the estimate and starts a new year.
    p = _provider(store, cipher)
    p.store_tokens(TokenSet("at-c", "rt-c", time.time() + 3600), {"connected_at": 1_000.0})
    assert "consent_estimated" not in store.rows["jira:test"].meta
    assert tokens.consent_expires_at(store.rows["jira:test"].meta) == 1_000.0 + 365 * DAY


@pytest.mark.parametrize(("age_days", "warns"), [(300, False), (336, True), (364, True)])
def test_task_log_warns_in_the_30_days_before_the_consent_ends(
    age_days: int, warns: bool, cipher: TokenCipher, caplog: pytest.LogCaptureFixture
) -> None:
    consent = time.time() - age_days * DAY
    store = FakeStore()
    store.rows["jira:test"] = Row(
        "jira:test",
        cipher.encrypt("rt"),
        cipher.encrypt("at-live"),
        time.time() + 3600,
        {"connected_at": consent},
    )
    caplog.set_level(logging.WARNING, logger="bc_jira.tokens")
    p = _provider(store, cipher)
    for _ in range(3):
        assert p.access_token() == "at-live"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if not warns:
        assert warnings == []
        return
    assert len(warnings) == 1  # once per task, not per call
    assert "365 days" in warnings[0]
    assert "/bc-jira/jira/oauth/start" in warnings[0]
    assert tokens._utc(consent + 365 * DAY) in warnings[0]


def test_refused_refresh_is_recorded_then_cleared(requests_mock: Any, cipher: TokenCipher) -> None:
    answers = iter(
        [
            {
                "status_code": 403,
                "json": {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
            },
            {"json": _token_answer("at-2", "rt-3")},
        ]
    )
    requests_mock.post(f"{AUTH}/oauth/token", [next(answers), next(answers)])
    store = FakeStore()
    store.rows["jira:test"] = Row("jira:test", cipher.encrypt("rt-dead"), None, None, {"cloud_id": "c1"})
    with pytest.raises(AuthError, match="consent again through /bc-jira/jira/oauth/start"):
        _provider(store, cipher).access_token()
    row = store.rows["jira:test"]
    failure = row.meta["last_refresh_error"]
    assert failure["code"] == "invalid_grant"
    assert failure["status"] == 403
    assert "Unknown or invalid refresh token" in failure["message"]
    assert failure["at"] <= time.time()
    assert cipher.decrypt(row.refresh_token_enc) == "rt-dead"
    assert row.meta["cloud_id"] == "c1"
    assert _provider(store, cipher).access_token() == "at-2"  # e.g. after a fix: the record is cleared
    assert "last_refresh_error" not in store.rows["jira:test"].meta


def test_refresh_now_refreshes_a_fresh_token_and_saves_the_rotation(
    requests_mock: Any, cipher: TokenCipher
) -> None:
    """The Test button's check: the stored access token is valid, still the client is asked for a refresh."""
    m = requests_mock.post(f"{AUTH}/oauth/token", json=_token_answer("at-new", "rt-new"))
    store = FakeStore()
    store.rows["jira:test"] = Row(
        "jira:test", cipher.encrypt("rt-stored"), cipher.encrypt("at-fresh"), time.time() + 3000, {"c": 1}
    )
    p = _provider(store, cipher)
    p.refresh_now()
    assert m.call_count == 1
    assert m.last_request.json()["refresh_token"] == "rt-stored"  # the store's, never the bootstrap
    assert m.last_request.json()["client_secret"] == "sec"
    row = store.rows["jira:test"]
    assert (cipher.decrypt(row.refresh_token_enc), cipher.decrypt(row.access_token_enc)) == (
        "rt-new",
        "at-new",
    )
    assert row.meta["c"] == 1
    assert p.access_token() == "at-new"  # the process cache holds the new token: no second refresh
    assert m.call_count == 1


@pytest.mark.parametrize("error", ["access_denied", "invalid_client", "unauthorized_client"])
def test_refresh_now_with_a_rejected_client_leaves_the_row_as_it_was(
    error: str, requests_mock: Any, cipher: TokenCipher
) -> None:
    """A 401 is about the typed client id/secret, not the grant: nothing recorded for health or the DAGs."""
    requests_mock.post(
        f"{AUTH}/oauth/token", status_code=401, json={"error": error, "error_description": "Unauthorized"}
    )
    store = FakeStore()
    before = Row("jira:test", cipher.encrypt("rt-stored"), cipher.encrypt("at-fresh"), time.time() + 3000, {})
    store.rows["jira:test"] = before
    with pytest.raises(AuthError) as err:
        _provider(store, cipher).refresh_now()
    assert (err.value.status, err.value.code) == (401, error)
    assert store.rows["jira:test"] is before
    assert store.saves == 0


def test_refresh_now_records_a_revoked_grant(requests_mock: Any, cipher: TokenCipher) -> None:
    """A 403 invalid_grant is the grant's own state: recorded as any refused refresh (health shows it)."""
    requests_mock.post(
        f"{AUTH}/oauth/token",
        status_code=403,
        json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    store = FakeStore()
    store.rows["jira:test"] = Row("jira:test", cipher.encrypt("rt"), cipher.encrypt("at"), time.time() + 3000)
    with pytest.raises(AuthError, match="consent again"):
        _provider(store, cipher).refresh_now()
    assert store.rows["jira:test"].meta["last_refresh_error"]["code"] == "invalid_grant"


def test_expired_consent_error_names_the_365_day_limit(requests_mock: Any, cipher: TokenCipher) -> None:
    requests_mock.post(
        f"{AUTH}/oauth/token",
        status_code=403,
        json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    store = FakeStore()
    store.rows["jira:test"] = Row(
        "jira:test", cipher.encrypt("rt"), None, None, {"connected_at": time.time() - 366 * DAY}
    )
    with pytest.raises(AuthError) as err:
        _provider(store, cipher).access_token()
    msg = str(err.value)
    assert "consent expired on" in msg
    assert "365-day" in msg
    assert "consent again through /bc-jira/jira/oauth/start" in msg


# -- cross-process: the real StateStore over PostgreSQL and SQLite, the sandbox over HTTP --------------------


def _store(url: str) -> Any:
    store_mod = pytest.importorskip("bc_jira.store", reason="bc_jira.store not written yet")
    store = store_mod.StateStore.from_url(url)
    store.ensure_schema()
    return store


def _creds_oauth(creds: dict[str, Any], base: str) -> AtlassianOAuth:
    return AtlassianOAuth(
        creds["atlassian_client_id"], creds["atlassian_client_secret"], auth_url=base, api_url=base
    )


def _worker(url: str, base: str, creds: dict[str, Any], barrier: Any, out: Any) -> None:
    """One process: its own store connection and provider; all 16 call Jira at the same moment."""
    try:
        store = _store(url)
        provider = JiraTokenProvider(
            store, _creds_oauth(creds, base), "jira:shared", bootstrap_refresh_token=creds["refresh_token"]
        )
        barrier.wait(timeout=120)
        header = provider.auth_header()
        resp = requests.get(
            f"{base}/ex/jira/{creds['cloud_id']}/rest/api/3/myself", headers=header, timeout=30
        )
        out.put(("ok" if resp.status_code == 200 else f"http {resp.status_code}", provider.refreshes))
    except Exception as exc:  # noqa: BLE001 - report every failure, never hang the parent
        out.put((f"error {type(exc).__name__}: {exc}", 0))


def _seed_expired(store: Any, creds: dict[str, Any], base: str, cipher: TokenCipher) -> None:
    """Store the grant's refresh token with an expired access token, as a stale deployment would have."""
    with store.token_lock("jira:shared") as txn:
        txn.save(
            cipher.encrypt(creds["refresh_token"]),
            cipher.encrypt("expired-access-token"),
            time.time() - 10,
            {},
        )


def _run_16(url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = Fernet.generate_key().decode()
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, keys)
    store = _store(url)
    _seed_expired(store, sandbox.creds, sandbox.url, get_cipher())
    before = sandbox.stats()["events"].get("atlassian.token.refresh", 0)
    # fork: 16 real processes without re-importing everything (the machine may have 2 cores). No open
    # database connection may cross the fork (SQLite locks, PostgreSQL sockets): dispose the pool first.
    store.engine.dispose()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    barrier = ctx.Barrier(16)
    args = (url, sandbox.url, sandbox.creds, barrier, out)
    procs = [ctx.Process(target=_worker, args=args) for _ in range(16)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r[0] for r in results] == ["ok"] * 16, results
    assert sum(r[1] for r in results) == 1  # exactly one process refreshed
    refreshes = sandbox.stats()["events"].get("atlassian.token.refresh", 0) - before
    assert refreshes == 1
    row = store.get_token("jira:shared")
    assert get_cipher().decrypt(row.refresh_token_enc) != sandbox.creds["refresh_token"]  # rotated and saved


@pytest.mark.postgres
def test_16_processes_one_refresh_postgres(
    pg_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_16(pg_url, sandbox, monkeypatch)


def test_16_processes_one_refresh_sqlite(
    sqlite_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_16(sqlite_url, sandbox, monkeypatch)


def _test_click(url: str, base: str, creds: dict[str, Any], secret: str, barrier: Any, out: Any) -> None:
    """One process, as one Test click: ``refresh_now`` on the stored grant with the typed secret."""
    try:
        oauth = AtlassianOAuth(creds["atlassian_client_id"], secret, auth_url=base, api_url=base)
        provider = JiraTokenProvider(_store(url), oauth, "jira:shared")  # no bootstrap, as the hook builds it
        barrier.wait(timeout=120)
        provider.refresh_now()
        out.put(("ok", provider.refreshes))
    except AuthError as exc:
        out.put((f"{exc.status} {exc.code}", provider.refreshes))
    except Exception as exc:  # noqa: BLE001 - report every failure, never hang the parent
        out.put((f"error {type(exc).__name__}: {exc}", 0))


def test_concurrent_test_clicks_keep_the_grant(
    sqlite_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three Test clicks at once (two right secrets, one wrong) while the access token is fresh: each right
    one refreshes in turn under the row lock from what its neighbour saved, the wrong one spends nothing."""
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, Fernet.generate_key().decode())
    store = _store(sqlite_url)
    creds = sandbox.creds
    boot = JiraTokenProvider(
        store, _creds_oauth(creds, sandbox.url), "jira:shared", bootstrap_refresh_token=creds["refresh_token"]
    )
    boot.access_token()  # what bc_jira_connect does: the store holds a fresh grant
    before = sandbox.stats()["events"].get("atlassian.token.refresh", 0)
    store.engine.dispose()  # no open SQLite connection may cross the fork
    ctx = multiprocessing.get_context("fork")
    out, barrier = ctx.Queue(), ctx.Barrier(3)
    secrets = [creds["atlassian_client_secret"], creds["atlassian_client_secret"], "WRONG-SECRET-7"]
    procs = [
        ctx.Process(target=_test_click, args=(sqlite_url, sandbox.url, creds, s, barrier, out))
        for s in secrets
    ]
    for proc in procs:
        proc.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert results == [("401 access_denied", 0), ("ok", 1), ("ok", 1)], results
    events = sandbox.stats()["events"]
    assert events.get("atlassian.token.refresh", 0) - before == 3  # the wrong one was asked and refused
    assert events.get("atlassian.token.reuse_in_leeway", 0) == 0  # nobody presented a rotated token
    assert events.get("atlassian.grant.revoked", 0) == 0
    assert "last_refresh_error" not in (store.get_token("jira:shared").meta or {})
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3600})  # past the leeway and the access token
    JiraTokenProvider._process_cache.clear()
    fresh = JiraTokenProvider(store, _creds_oauth(creds, sandbox.url), "jira:shared")
    fresh.refresh_now()  # the stored refresh token is the family's newest: a first use, the grant lives
    assert fresh.refreshes == 1
    assert sandbox.stats()["events"].get("atlassian.token.reuse_in_leeway", 0) == 0


def test_store_dump_has_no_plaintext_token(
    sqlite_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, Fernet.generate_key().decode())
    store = _store(sqlite_url)
    if not hasattr(store, "dump_text"):
        pytest.skip("StateStore.dump_text not written yet")
    captured: dict[str, str] = {}
    oauth = _creds_oauth(sandbox.creds, sandbox.url)
    real_refresh = oauth.refresh

    def spy(rt: str) -> TokenSet:
        got = real_refresh(rt)
        captured.update(access=got.access_token, refresh=got.refresh_token or "")
        return got

    oauth.refresh = spy  # type: ignore[method-assign]
    provider = JiraTokenProvider(
        store, oauth, "jira:dump", bootstrap_refresh_token=sandbox.creds["refresh_token"]
    )
    provider.access_token()
    dump = store.dump_text()
    assert captured["access"]
    assert captured["refresh"]
    for secret in (
        captured["access"],
        captured["refresh"],
        sandbox.creds["refresh_token"],
        captured["access"].split(".")[-1],
    ):
        assert secret not in dump
    assert "jira:dump" in dump  # the row is there, only ciphertext


def test_key_rotation_with_real_store(sqlite_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, old)
    store = _store(sqlite_url)
    p = JiraTokenProvider(
        store,
        _creds_oauth(sandbox.creds, sandbox.url),
        "jira:rot",
        bootstrap_refresh_token=sandbox.creds["refresh_token"],
    )
    token = p.access_token()
    JiraTokenProvider._process_cache.clear()
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, f"{new},{old}")
    assert p.access_token() == token  # old key still decrypts
    assert p.reencrypt()
    JiraTokenProvider._process_cache.clear()
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, new)
    assert p.access_token() == token  # rewritten under the new key only


def test_missing_key_fails_before_the_refresh_token_is_spent(sandbox, sqlite_url, monkeypatch):
    """No encryption key: fail before calling Atlassian, so the stored refresh token stays usable."""
    import bc_jira.tokens as tokens_mod
    from bc_jira.store import StateStore

    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY", raising=False)
    monkeypatch.setattr(
        tokens_mod,
        "get_cipher",
        lambda: (_ for _ in ()).throw(TokenCryptoError("no encryption key for the Jira token store")),
    )
    c = sandbox.creds
    oauth = tokens_mod.AtlassianOAuth(
        client_id=c["atlassian_client_id"],
        client_secret=c["atlassian_client_secret"],
        auth_url=sandbox.url,
        api_url=sandbox.url,
    )
    provider = tokens_mod.JiraTokenProvider(
        StateStore.from_url(sqlite_url), oauth, "jira:nokey", bootstrap_refresh_token=c["refresh_token"]
    )
    before = sandbox.stats()["events"].get("atlassian.token.refresh", 0)
    with pytest.raises(TokenCryptoError):
        provider.access_token()
    assert sandbox.stats()["events"].get("atlassian.token.refresh", 0) == before


def test_refused_refresh_is_committed_in_the_real_store(
    sqlite_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal is written in the lock's transaction and survives the exception (no rollback)."""
    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, Fernet.generate_key().decode())
    store = _store(sqlite_url)
    creds = sandbox.creds
    provider = JiraTokenProvider(
        store, _creds_oauth(creds, sandbox.url), "jira:real", bootstrap_refresh_token=creds["refresh_token"]
    )
    assert provider.access_token()
    assert [r.name for r in store.list_tokens("jira:")] == ["jira:real"]
    sandbox.control("POST", "/_sandbox/atlassian/revoke")  # the user removed the app
    with pytest.raises(AuthError, match="consent again"):
        provider.access_token(force_refresh=True)
    row = store.get_token("jira:real")
    assert row.meta["last_refresh_error"]["code"] == "invalid_grant"
    assert row.refresh_token_enc
    assert store.list_tokens("other:") == []


def test_a_year_on_the_sandbox_clock(
    sqlite_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Refreshed every 30 days (never idle), the grant still ends 365 days after the consent: the task log
    warns from day 335 and the refusal after the end says to consent again."""
    from datetime import datetime

    monkeypatch.setenv(token_cipher.FERNET_KEYS_ENV, Fernet.generate_key().decode())

    def sandbox_clock() -> float:
        now = sandbox.control("POST", "/_sandbox/clock", {"advance_s": 0})["now"]
        return datetime.fromisoformat(now).timestamp()

    store = _store(sqlite_url)
    creds = sandbox.creds

    def provider() -> JiraTokenProvider:
        JiraTokenProvider._process_cache.clear()
        return JiraTokenProvider(
            store,
            _creds_oauth(creds, sandbox.url),
            "jira:year",
            bootstrap_refresh_token=creds["refresh_token"],
            clock=sandbox_clock,
        )

    caplog.set_level(logging.WARNING, logger="bc_jira.tokens")
    provider().access_token()  # day 0: the bootstrap is exchanged (the sandbox grant was consented now)
    warned_on = []
    for day in range(30, 365, 30):
        sandbox.control("POST", "/_sandbox/clock", {"advance_s": 30 * DAY})
        caplog.clear()
        provider().access_token()  # expired on the sandbox clock: refreshed
        if any("consent expires on" in r.getMessage() for r in caplog.records):
            warned_on.append(day)
    assert warned_on == [360]  # the only step inside the last 30 days
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 6 * DAY})  # day 366
    with pytest.raises(AuthError) as err:
        provider().access_token()
    assert "consent expired on" in str(err.value)
    assert "/bc-jira/jira/oauth/start" in str(err.value)
    assert sandbox.stats()["events"]["atlassian.token.expired_absolute"] == 1
    assert store.get_token("jira:year").meta["last_refresh_error"]["code"] == "invalid_grant"
