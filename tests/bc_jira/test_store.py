"""StateStore against real SQLite files and a real PostgreSQL (one fresh schema per test)."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bc_jira.store import AuditRow, Link, StateStore
from bc_jira.store import engine as store_engine
from bc_jira.store import schema as store_schema


def _fresh_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A database nobody used yet: a new SQLite file, or a new PostgreSQL schema in the session database."""
    if backend == "sqlite":
        return request.getfixturevalue("sqlite_url").replace(".db", f"_{uuid.uuid4().hex[:8]}.db")
    base = request.getfixturevalue("pg_url")
    schema = f"s_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return _fresh_url(request, request.param)


@pytest.fixture
def store(url: str) -> StateStore:
    return StateStore.from_url(url)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


ALL_TABLES = {t.name for t in store_schema.metadata.sorted_tables}


# -- schema ----------------------------------------------------------------------------------------------


def test_schema_created_lazily_and_idempotently(url: str, store: StateStore) -> None:
    assert not (_tables(url) & ALL_TABLES)
    assert store.stage_event("bc", "notification", "k1", {"a": 1})  # first use creates the schema
    assert ALL_TABLES <= _tables(url)
    store_engine._SCHEMA_READY.clear()  # forget the per-process memo: really run the creation again
    store.ensure_schema()
    StateStore.from_url(url).ensure_schema()
    assert store.count_pending() == 1  # nothing was dropped or recreated


def _create_schema(url: str, start_at: float, out: Any) -> None:
    try:
        time.sleep(max(0.0, start_at - time.time()))
        s = StateStore.from_url(url)
        s.ensure_schema()
        out.put(("ok", s.stage_event("bc", "k", f"proc-{multiprocessing.current_process().name}", {})))
    except Exception as exc:  # report, never hang the parent
        out.put((f"{type(exc).__name__}: {exc}", False))


def test_schema_from_concurrent_processes(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 4.0
    procs = [ctx.Process(target=_create_schema, args=(url, start_at, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == [("ok", True)] * 4
    assert StateStore.from_url(url).count_pending() == 4


# -- staged events ---------------------------------------------------------------------------------------


def test_stage_event_dedupes(store: StateStore) -> None:
    assert store.stage_event("jira", "jira_webhook", "wh-1", {"issue": {"key": "FIN-1"}}) is True
    assert store.stage_event("jira", "jira_webhook", "wh-1", {"issue": {"key": "other"}}) is False
    [ev] = store.pending_events()
    assert (ev.source, ev.kind, ev.dedupe_key, ev.payload) == (
        "jira",
        "jira_webhook",
        "wh-1",
        {"issue": {"key": "FIN-1"}},
    )
    assert ev.status == "staged" and ev.attempts == 0 and ev.error is None
    assert ev.received_at.tzinfo is not None
    assert abs(datetime.now(UTC) - ev.received_at) < timedelta(minutes=1)


def test_event_lifecycle(store: StateStore) -> None:
    for i, kind in enumerate(["bc", "jira", "bc"]):
        store.stage_event("src", kind, f"k{i}", {"n": i})
    assert [e.payload["n"] for e in store.pending_events()] == [0, 1, 2]  # oldest first
    assert [e.payload["n"] for e in store.pending_events(kind="bc")] == [0, 2]
    assert [e.payload["n"] for e in store.pending_events(limit=2)] == [0, 1]
    assert (store.count_pending(), store.count_pending("bc"), store.count_pending("nope")) == (3, 2, 0)

    first = store.pending_events()[0]
    store.mark_event_failed(first.id, "BC 503")
    store.mark_event_failed(first.id, "x" * 100_000)
    again = store.pending_events()[0]
    assert (again.id, again.status, again.attempts) == (first.id, "failed", 2)
    assert again.error.startswith("xxx") and 1000 < len(again.error) <= store_schema.MAX_ERROR
    assert store.count_pending() == 3  # a failed event stays for replay

    store.delete_event(first.id)
    assert [e.payload["n"] for e in store.pending_events()] == [1, 2]
    assert not store.stage_event("src", "bc", "k1", {})  # still de-duplicated while staged


# -- links -----------------------------------------------------------------------------------------------


def test_links_upsert_and_lookup(store: StateStore) -> None:
    link = Link("purchase_invoices", "guid-1", "PI100", None, None, None, "2026-11-20T10:00:00Z", "pending")
    store.upsert_link(link)
    got = store.get_links("purchase_invoices", ["guid-1", "guid-2"])
    assert list(got) == ["guid-1"] and got["guid-1"].state == "pending" and got["guid-1"].issue_key is None
    assert got["guid-1"].updated_at.tzinfo is not None

    store.upsert_link(
        Link(
            "purchase_invoices",
            "guid-1",
            "PI100",
            "10001",
            "FIN-1",
            "h1",
            "2026-11-20T10:05:00Z",
            "linked",
            datetime(2026, 11, 20, 11, 0, tzinfo=UTC),
        )
    )
    store.upsert_link(Link("vendors", "guid-1", "V1", "10002", "FIN-2", None, None, "linked"))
    got = store.get_links("purchase_invoices", ["guid-1"])["guid-1"]
    assert (got.issue_id, got.issue_key, got.content_hash, got.state) == ("10001", "FIN-1", "h1", "linked")
    assert got.updated_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

    assert store.get_link_by_issue("FIN-1").bc_id == "guid-1"
    assert store.get_link_by_issue("10002").entity == "vendors"
    assert store.get_link_by_issue("FIN-404") is None
    many = [f"id-{i}" for i in range(1200)] + ["guid-1"]  # more ids than one IN list holds
    assert list(store.get_links("purchase_invoices", many)) == ["guid-1"]


# -- batches ---------------------------------------------------------------------------------------------


def test_save_batches_is_idempotent_per_run(store: StateStore) -> None:
    recs = [{"id": f"r{i}", "amount": i * 1.5, "when": "2026-11-20T10:00:00Z"} for i in range(5)]
    ids = store.save_batches("purchase_invoices", "scheduled__2026-11-20T10:00:00+00:00", recs, 2)
    assert len(ids) == 3 and len(set(ids)) == 3
    assert [store.load_batch(b) for b in ids] == [recs[0:2], recs[2:4], recs[4:5]]

    again = store.save_batches(
        "purchase_invoices", "scheduled__2026-11-20T10:00:00+00:00", [{"id": "changed"}] * 7, 1
    )
    assert again == ids
    assert [r for b in again for r in store.load_batch(b)] == recs  # not rewritten
    assert store.batch_ids("purchase_invoices", "scheduled__2026-11-20T10:00:00+00:00") == ids
    assert store.batch_ids("vendors", "scheduled__2026-11-20T10:00:00+00:00") == []
    other = store.save_batches("vendors", "scheduled__2026-11-20T10:00:00+00:00", recs[:1], 50)
    assert len(other) == 1 and other[0] not in ids  # deterministic per entity + run + seq
    assert store.save_batches("vendors", "empty-run", [], 10) == []

    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="batch_size"):
            store.save_batches("vendors", "r2", recs, bad)  # type: ignore[arg-type]

    assert store.purge_batches(datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.purge_batches(datetime.now(UTC) + timedelta(seconds=1)) == 4
    with pytest.raises(KeyError, match="not in the state store"):
        store.load_batch(ids[0])


# -- audit -----------------------------------------------------------------------------------------------


def _row(bc_id: str, action: str, **kw: Any) -> AuditRow:
    return AuditRow(entity=kw.pop("entity", "purchase_invoices"), bc_id=bc_id, action=action, **kw)


def test_audit_insert_and_query(store: StateStore) -> None:
    store.audit([])
    store.audit(
        [
            _row(
                "a",
                "created",
                document_number="PI1",
                issue_key="FIN-1",
                read={"id": "a", "n": 1},
                sent={"fields": {"summary": "s"}},
                response={"key": "FIN-1"},
                dag_id="d",
                run_id="r",
                task_id="t",
                map_index=0,
                try_number=1,
            ),
            _row("b", "error", document_number="PI2", error="Jira 400 INVALID_INPUT: bad field"),
            _row("a", "updated", issue_key="FIN-1", at=datetime(2030, 1, 1, tzinfo=UTC)),
            _row("v", "created", entity="vendors", issue_key="FIN-9"),
        ]
    )
    rows = store.query_audit(entity="purchase_invoices")
    assert [(r.bc_id, r.action) for r in rows] == [("a", "updated"), ("b", "error"), ("a", "created")]
    created = rows[2]
    assert created.read == {"id": "a", "n": 1} and created.sent == {"fields": {"summary": "s"}}
    assert (created.dag_id, created.run_id, created.task_id, created.map_index, created.try_number) == (
        "d",
        "r",
        "t",
        0,
        1,
    )
    assert created.id is not None and created.at.tzinfo is not None
    assert rows[0].at == datetime(2030, 1, 1, tzinfo=UTC)
    assert [r.bc_id for r in store.query_audit(issue_key="FIN-1")] == ["a", "a"]
    assert [r.action for r in store.query_audit(bc_id="a", action="created")] == ["created"]
    assert [r.bc_id for r in store.query_audit(errors_only=True)] == ["b"]
    assert len(store.query_audit(limit=2)) == 2


def test_latest_per_record(store: StateStore) -> None:
    store.upsert_link(Link("purchase_invoices", "a", "PI100", "10001", "FIN-1", "h", None, "linked"))
    store.audit(
        [
            _row("a", "created", document_number="PI100", issue_key="FIN-1"),
            _row("b", "error", document_number="PI_200", error="boom 100%"),
            _row("c", "created", document_number="PI300", issue_key="FIN-3"),
        ]
    )
    store.audit([_row("a", "error", error="Jira 503"), _row("b", "created", issue_key="FIN-2")])

    latest = {r["bc_id"]: r for r in store.latest_per_record()}
    assert set(latest) == {"a", "b", "c"}
    a = latest["a"]
    got = tuple(a[k] for k in ("action", "error", "issue_key", "document_number", "issue_id", "link_state"))
    assert got == ("error", "Jira 503", "FIN-1", "PI100", "10001", "linked")  # link info fills the latest row
    assert latest["b"]["action"] == "created" and latest["b"]["error"] is None
    assert [r["bc_id"] for r in store.latest_per_record()][0] == "b"  # newest first

    def match(**kw: Any) -> list[str]:
        return sorted(r["bc_id"] for r in store.latest_per_record(**kw))

    assert match(errors_only=True) == ["a"]  # b's error is history
    assert match(text_filter="fin-1") == ["a"]
    assert match(text_filter=" pi300 ") == ["c"]
    assert match(text_filter="503") == ["a"]
    assert match(text_filter="%") == []  # wildcards are literal
    assert match(text_filter="I_2") == []  # b's latest row has no document number, its link none either
    assert match(text_filter="FIN", errors_only=True) == ["a"]
    assert len(store.latest_per_record(limit=1)) == 1


# -- tokens ----------------------------------------------------------------------------------------------


def test_token_lock_roundtrip_and_rollback(store: StateStore) -> None:
    assert store.get_token("jira:x") is None
    with store.token_lock("jira:x") as txn:
        assert txn.row is None
    assert store.get_token("jira:x") is None  # the lock placeholder is not a token
    with store.token_lock("jira:x") as txn:
        txn.save("enc-rt", "enc-at", 1234.5, {"cloud_id": "c1"})
    row = store.get_token("jira:x")
    assert (row.refresh_token_enc, row.access_token_enc, row.expires_at, row.meta) == (
        "enc-rt",
        "enc-at",
        1234.5,
        {"cloud_id": "c1"},
    )
    with pytest.raises(RuntimeError), store.token_lock("jira:x") as txn:
        assert txn.row.refresh_token_enc == "enc-rt"
        txn.save("enc-rt-2", None, None, {})
        raise RuntimeError("refresh failed")
    assert store.get_token("jira:x").refresh_token_enc == "enc-rt"  # rolled back


def _increment(url: str, name: str, times: int, start_at: float, out: Any) -> None:
    try:
        s = StateStore.from_url(url)
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(times):
            with s.token_lock(name) as txn:
                meta = dict(txn.row.meta) if txn.row else {}
                time.sleep(0.005)  # widen the read-modify-write window
                txn.save("rt", "at", None, {**meta, "count": meta.get("count", 0) + 1})
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_token_lock_is_exclusive_across_processes(store: StateStore, url: str) -> None:
    store.ensure_schema()
    store.get_token("warm")  # the parent holds pooled connections: forked children must not reuse them
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    procs = [ctx.Process(target=_increment, args=(url, "jira:counter", 8, start_at, out)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok"] * 6
    assert store.get_token("jira:counter").meta["count"] == 48


# -- record claims ---------------------------------------------------------------------------------------

E = "purchase_invoices"


def test_claims_one_owner_at_a_time_with_takeover(store: StateStore) -> None:
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    taken, held = store.claim_records(E, ["a", "b"], "d/run1/upsert[0]", 1, t0, 900)
    assert (taken, held) == ({"a", "b"}, {})
    taken, held = store.claim_records(E, ["b", "c"], "d/run2/upsert[0]", 1, t0 + timedelta(seconds=5), 900)
    assert taken == {"c"} and held == {"b": ("d/run1/upsert[0]", 1, t0)}
    # the owner re-claiming refreshes its claim (heartbeat); a later try of the same task takes it back
    assert store.claim_records(E, ["b"], "d/run1/upsert[0]", 1, t0 + timedelta(seconds=600), 900)[0] == {"b"}
    assert store.claim_records(E, ["a"], "d/run1/upsert[0]", 2, t0 + timedelta(seconds=601), 900)[0] == {"a"}
    # an earlier try never takes a later try's claim
    assert store.claim_records(E, ["a"], "d/run1/upsert[0]", 1, t0 + timedelta(seconds=602), 900)[0] == set()
    # older than the TTL: the owner is gone, another run takes it over
    late = t0 + timedelta(seconds=600 + 901)
    assert store.claim_records(E, ["b"], "d/run2/upsert[0]", 1, late, 900)[0] == {"b"}
    # releasing drops only the releasing owner's claims
    assert store.release_claims(E, ["a", "b", "c"], "d/run1/upsert[0]") == 1  # a
    assert store.get_claims(E, ["a", "b", "c"]) == {
        "b": ("d/run2/upsert[0]", 1, late),
        "c": ("d/run2/upsert[0]", 1, t0 + timedelta(seconds=5)),
    }
    assert store.claim_records("vendors", ["b"], "d/run1/upsert[0]", 1, t0, 900)[0] == {"b"}  # per entity


def _claim_many(url: str, owner: str, ids: list[str], start_at: float, out: Any) -> None:
    try:
        s = StateStore.from_url(url)
        time.sleep(max(0.0, start_at - time.time()))
        mine: set[str] = set()
        for i in range(0, len(ids), 50):  # like the upserts: one claim statement per batch
            mine |= s.claim_records(E, ids[i : i + 50], owner, 1, datetime.now(UTC), 900)[0]
        out.put((owner, sorted(mine)))
    except Exception as exc:  # report, never hang the parent
        out.put((owner, f"{type(exc).__name__}: {exc}"))


def test_claims_race_across_processes_gives_each_record_one_owner(store: StateStore, url: str) -> None:
    store.ensure_schema()
    store.get_claims(E, ["warm"])  # the parent holds pooled connections: forked children must not reuse them
    ids = [f"rec-{n:04d}" for n in range(400)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    procs = []
    for k in range(4):
        order = ids if k % 2 == 0 else list(reversed(ids))  # overlapping sets in both orders
        procs.append(ctx.Process(target=_claim_many, args=(url, f"d/run{k}/upsert[0]", order, start_at, out)))
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert all(isinstance(v, list) for v in results.values()), results
    owners: dict[str, list[str]] = {}
    for owner, got in results.items():
        for bc_id in got:
            owners.setdefault(bc_id, []).append(owner)
    assert sorted(owners) == ids  # every record claimed ...
    assert all(len(v) == 1 for v in owners.values())  # ... by exactly one run
    claims = store.get_claims(E, ids)
    assert all(claims[b][0] == owners[b][0] for b in ids)


def test_claims_table_added_to_a_store_created_before_it(url: str) -> None:
    """A state store created by the previous release (no bc_jira_claims) gets the table on first use."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in store_schema.metadata.sorted_tables:
            if table.name != "bc_jira_claims":
                table.create(conn)
    engine.dispose()
    assert "bc_jira_claims" not in _tables(url)
    store_engine._SCHEMA_READY.clear()
    old = StateStore.from_url(url)
    assert old.claim_records(E, ["a"], "d/r/upsert", 1, datetime.now(UTC), 900)[0] == {"a"}
    assert "bc_jira_claims" in _tables(url)


# -- lifecycle and OAuth state ---------------------------------------------------------------------------


def test_subscriptions_and_webhooks(store: StateStore) -> None:
    assert store.get_subscription("purchaseInvoices") is None
    exp = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    store.put_subscription("purchaseInvoices", subscription_id="s1", expires=exp, etag='W/"1"')
    store.put_subscription("purchaseInvoices", etag='W/"2"')  # merge: other fields kept
    store.put_subscription("vendors", subscription_id="s2")
    sub = store.get_subscription("purchaseInvoices")
    assert (sub["resource"], sub["subscription_id"], sub["etag"]) == ("purchaseInvoices", "s1", 'W/"2"')
    assert datetime.fromisoformat(sub["expires"]) == exp  # JSON: datetimes come back as ISO-8601 text
    assert [s["resource"] for s in store.list_subscriptions()] == ["purchaseInvoices", "vendors"]
    store.delete_subscription("purchaseInvoices")
    assert [s["subscription_id"] for s in store.list_subscriptions()] == ["s2"]

    store.put_webhook("bc-jira", ids=[7], jql="project = FIN")
    assert store.get_webhook("bc-jira")["ids"] == [7]
    assert [w["name"] for w in store.list_webhooks()] == ["bc-jira"]
    store.delete_webhook("bc-jira")
    assert store.get_webhook("bc-jira") is None and store.list_webhooks() == []


def test_oauth_state_pops_once_and_expires(store: StateStore) -> None:
    store.put_oauth_state("st-1", {"return_to": "/home"})
    assert store.pop_oauth_state("st-1") == {"return_to": "/home"}
    assert store.pop_oauth_state("st-1") is None  # replay refused
    assert store.pop_oauth_state("never") is None
    store.put_oauth_state("st-2", {"n": 2})
    time.sleep(0.05)
    assert store.pop_oauth_state("st-2", max_age_s=0.01) is None  # expired
    assert store.pop_oauth_state("st-2") is None  # and consumed


def test_dump_text_covers_every_table(store: StateStore) -> None:
    store.stage_event("bc", "n", "d1", {"p": "payload-value"})
    with store.token_lock("jira:dump") as txn:
        txn.save("CIPHERTEXT-RT", "CIPHERTEXT-AT", 1.0, {"m": "meta-value"})
    store.put_webhook("w1", secret_hint="hook-value")
    dump = store.dump_text()
    for needle in (
        "bc_jira_events",
        "payload-value",
        "jira:dump",
        "CIPHERTEXT-RT",
        "CIPHERTEXT-AT",
        "meta-value",
        "hook-value",
    ):
        assert needle in dump
    assert len(dump.splitlines()) >= 3 and all(": " in line for line in dump.splitlines())


# -- effects ---------------------------------------------------------------------------------------------


def test_effects_intent_attempt_outcome(store: StateStore) -> None:
    from bc_jira.store import Effect

    first = store.put_effect(Effect("k1", "resolve_comment", "vendors", "v1", "10001", "FIN-1", {"body": 1}))
    assert (first.state, first.attempts, first.payload) == ("pending", 0, {"body": 1})
    again = store.put_effect(Effect("k1", "resolve_comment", "vendors", "v1", "10001", "FIN-1", {"body": 2}))
    assert again.payload == {"body": 1} and again.created_at == first.created_at  # the intent is kept once
    store.effect_attempt("k1")
    store.effect_attempt("k1")
    assert store.get_effect("k1").attempts == 2
    store.put_effect(Effect("k2", "resolve_comment", "vendors", "v2"))
    store.put_effect(Effect("k3", "duplicate", "vendors", "v1"))
    assert [e.effect_key for e in store.pending_effects("resolve_comment")] == ["k1", "k2"]
    assert [e.effect_key for e in store.pending_effects("resolve_comment", bc_ids=["v2", "zz"])] == ["k2"]
    assert store.pending_effects("resolve_comment", entity="purchase_invoices") == []
    store.finish_effect("k1", "done", result={"comment_id": "7"})
    done = store.get_effect("k1")
    assert done.state == "done" and done.result == {"comment_id": "7"} and done.error is None
    assert [e.effect_key for e in store.pending_effects("resolve_comment")] == ["k2"]
    assert store.count_effects("resolve_comment", "vendors", "v1") == 1
    assert store.count_effects("resolve_comment", "vendors", "v2") == 0
    store.finish_effect("k2", "pending", error="x" * 10000)
    assert len(store.get_effect("k2").error) == 4000 and store.get_effect("zz") is None


def test_effects_table_added_to_a_store_made_before_it(url: str) -> None:
    """A database created by the previous schema (no bc_jira_effects) gets the table on first use."""
    old = sa.MetaData()
    for table in store_schema.metadata.sorted_tables:
        if table.name != "bc_jira_effects":
            table.to_metadata(old)
    engine = sa.create_engine(url)
    old.create_all(engine)
    engine.dispose()
    assert "bc_jira_effects" not in _tables(url)
    s = StateStore.from_url(url)
    s.upsert_link(Link("vendors", "v1", "V1", "1", "FIN-1", state="linked"))
    assert "bc_jira_effects" in _tables(url)
    assert s.get_links("vendors", ["v1"])["v1"].issue_key == "FIN-1"


# -- connection resolution -------------------------------------------------------------------------------


def test_from_airflow_default_is_sqlite_in_airflow_home(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_BC_JIRA_DB", raising=False)
    s = StateStore.from_airflow()
    assert s.dialect == "sqlite" and s.url == f"sqlite:///{tmp_path}/bc_jira_state.db"
    assert s.stage_event("bc", "k", "x", {}) and (tmp_path / "bc_jira_state.db").exists()

    monkeypatch.setenv(
        "AIRFLOW_CONN_BC_JIRA_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "other.db")})
    )
    assert StateStore.from_airflow().url == f"sqlite:///{tmp_path}/other.db"


@pytest.mark.postgres
def test_from_airflow_postgres_connection_via_postgres_hook(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, airflow_db: Any
) -> None:
    """A postgres ``bc_jira_db`` (env connection, as a deployment defines it) reaches the real database.

    ``PostgresHook`` builds the URL; the store keeps its driver (psycopg2) and the libpq extras.
    """
    pg = sa.engine.make_url(pg_url)
    conn = {
        "conn_type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "login": pg.username,
        "password": "not-needed-with-trust",
        "schema": pg.database,
        "extra": {"application_name": "bc-jira-test", "connect_timeout": 5, "unrelated": "x"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps(conn))
    s = StateStore.from_airflow()
    url = sa.engine.make_url(s.url)
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg2",
        pg.host,
        pg.port,
        pg.database,
    )
    assert dict(url.query) == {"application_name": "bc-jira-test", "connect_timeout": "5"}
    assert "not-needed-with-trust" not in s.describe()
    assert s.dialect == "postgresql"
    s.upsert_link(Link("vendors", "pg-hook-1", "V1", "1", "FIN-1", state="linked"))
    assert s.get_links("vendors", ["pg-hook-1"])["pg-hook-1"].issue_key == "FIN-1"
    with s.engine.connect() as c:
        assert c.execute(sa.text("SELECT current_setting('application_name')")).scalar() == "bc-jira-test"


def test_url_from_connection_without_host_is_localhost() -> None:
    from airflow.sdk import Connection

    url = sa.engine.make_url(store_engine.url_from_connection(Connection(conn_id="x", conn_type="postgres")))
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg2", "localhost", None)


def test_url_from_connection() -> None:
    from airflow.sdk import Connection

    pgc = Connection(
        conn_id="x",
        conn_type="postgres",
        host="db",
        port=5433,
        login="u",
        password="p@ss/w",
        schema="state",
        extra=json.dumps({"sslmode": "require", "unrelated": "1"}),
    )
    url = sa.engine.make_url(store_engine.url_from_connection(pgc))
    assert (url.drivername, url.host, url.port, url.username, url.password, url.database) == (
        "postgresql+psycopg2",
        "db",
        5433,
        "u",
        "p@ss/w",
        "state",
    )
    assert dict(url.query) == {"sslmode": "require"}
    with pytest.raises(ValueError, match="not supported"):
        store_engine.url_from_connection(Connection(conn_id="x", conn_type="mysql"))


# -- delivery tombstones ---------------------------------------------------------------------------------


def test_stage_delivery_once_per_delivery_key_with_tombstones(store: StateStore) -> None:
    from datetime import timedelta

    ttl = timedelta(hours=24)

    def stage(delivery: str, body: str, event_key: str) -> str:
        return store.stage_delivery(
            "jira",
            "jira.transition",
            event_key,
            {"b": body},
            delivery_key=delivery,
            body_sha256=body,
            ttl=ttl,
        )

    assert stage("d1", "h1", "e1") == "staged"
    assert stage("d1", "h1", "e1") == "duplicate"  # a retry
    assert stage("d1", "h2", "e2") == "conflict"  # the identifier reused for another body
    assert stage("d2", "h3", "e1") == "duplicate"  # the same change through another delivery
    assert store.count_pending() == 1 and store.count_deliveries() == 2
    (ev,) = store.pending_events()
    store.delete_event(ev.id)
    assert stage("d1", "h1", "e1") == "duplicate"  # late retry after processing: the tombstone remains
    assert store.count_pending() == 0
    store.stage_delivery("bc", "k", "e9", {}, delivery_key="d9", body_sha256="x", ttl=timedelta(seconds=-1))
    assert store.count_deliveries() == 3
    assert stage("d3", "h4", "e3") == "staged"  # purges the expired d9 on the way
    assert store.count_deliveries() == 3 and "d9" not in store.dump_text()


def test_tombstone_table_added_to_a_database_created_without_it(url: str) -> None:
    """A store created by the previous code (no bc_jira_deliveries) gets the table on first use."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    old = [t for t in store_schema.metadata.sorted_tables if t.name != "bc_jira_deliveries"]
    store_schema.metadata.create_all(engine, tables=old)
    assert "bc_jira_deliveries" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    st = StateStore.from_url(url)
    from datetime import timedelta

    out = st.stage_delivery("bc", "k", "e", {}, delivery_key="d", body_sha256="h", ttl=timedelta(hours=1))
    assert out == "staged" and st.count_deliveries() == 1
