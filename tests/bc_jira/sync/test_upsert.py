"""Upsert/extract decisions against the real state store (SQLite) and an in-memory Jira with search lag.

The in-memory Jira commits a bulk create and then loses the answer on demand, like the sandbox's
``drop_after_commit``; the flows against the real sandbox are in tests/dags/test_outbound_dags.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bc_jira.config import FieldNames, parse_config
from bc_jira.hooks.jira import BulkCreateResult, BulkFailure
from bc_jira.http import ClientError, NotFoundError, TransportError
from bc_jira.mapping import field_ids
from bc_jira.store import AuditRow, Link
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import Counts, RunInfo, SyncError
from bc_jira.sync.claims import CLAIM_TTL_SECONDS
from bc_jira.sync.extract import extract, sync_window
from bc_jira.sync.upsert import Upserter
from bc_jira.sync.watermark import hold_below, next_watermark, plan_watermark

RID, DOC, VEN, AMT, CUR, STS = (f"customfield_100{i}" for i in range(1, 7))
IDS = field_ids(
    FieldNames(),
    {
        "BC Record Id": RID,
        "BC Document No.": DOC,
        "BC Vendor": VEN,
        "BC Amount": AMT,
        "BC Currency": CUR,
        "BC Status": STS,
    },
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept = getattr(self, "slept", 0.0) + seconds
        self.now += timedelta(seconds=seconds)


class FakeJira:
    """Jira as the upsert sees it: lagging search (unless reconciled), bulk create, edit, comment..."""

    def __init__(self, clock: Clock, lag_s: float = 5.0) -> None:
        self.clock, self.lag = clock, timedelta(seconds=lag_s)
        self.issues: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.drop_next_create = False  # commit, then lose the answer
        self.fail_next_create = False  # lose the request before Jira sees it
        self.reject: set[str] = set()  # record ids whose create Jira refuses
        self.misorder = False  # answer issues[] reversed (Atlassian documents no order)
        self.comments: dict[str, list[Any]] = {}
        self.transitions: dict[str, list[str]] = {}
        self.drop_next_comment = False
        self.refuse_next_comment = False
        self.links: list[tuple[str, str, str]] = []
        self.gone: set[str] = set()
        self.fail_next_transition = False
        self._n = 10000

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def search(self, jql: str, fields, reconcile=()) -> list[dict[str, Any]]:
        self._count("search")
        assert len(reconcile) <= 50
        out = []
        for iid, issue in sorted(self.issues.items(), key=lambda kv: int(kv[0])):
            visible = self.clock() >= issue["created"] + self.lag or int(iid) in set(reconcile)
            # looser than Jira on purpose (any id written in the JQL): the upsert compares the field exactly
            if visible and issue["fields"][RID] in jql:
                out.append({"id": iid, "key": issue["key"], "fields": {RID: issue["fields"][RID]}})
        return out

    def bulk_create(self, updates: list[dict[str, Any]]) -> BulkCreateResult:
        self._count("bulk_create")
        assert len(updates) <= 50
        if self.fail_next_create:
            self.fail_next_create = False
            raise TransportError("jira", "POST", "http://x/issue/bulk", message="connection reset")
        res = BulkCreateResult()
        for i, u in enumerate(updates):
            if u["fields"][RID] in self.reject:
                res.failed.append(BulkFailure(i, 400, [], {DOC: "not on screen"}))
                continue
            self._n += 1
            iid = str(self._n)
            self.issues[iid] = {
                "key": f"FIN-{self._n - 10000}",
                "fields": copy.deepcopy(u["fields"]),
                "created": self.clock(),
            }
            res.created.append((i, {"id": iid, "key": self.issues[iid]["key"]}))
        if self.misorder and len(res.created) > 1:
            # the hook pairs issues[] with the input by position: a reordered answer pairs them wrongly
            positions, answers = [i for i, _ in res.created], [c for _, c in reversed(res.created)]
            res.created = list(zip(positions, answers, strict=True))
        if self.drop_next_create:
            self.drop_next_create = False
            raise TransportError("jira", "POST", "http://x/issue/bulk", message="response dropped")
        return res

    def fetch(self, issue_ids, fields) -> list[dict[str, Any]]:
        """bulkfetch: reads the issues themselves (no search lag), ascending id."""
        self._count("fetch")
        assert len(issue_ids) <= 100
        return [
            {"id": i, "key": self.issues[i]["key"], "fields": {RID: self.issues[i]["fields"][RID]}}
            for i in sorted(issue_ids, key=int)
            if i in self.issues
        ]

    def edit(self, issue_id: str, body: dict[str, Any]) -> None:
        self._count("edit")
        fields = self.issues[issue_id]["fields"]
        fields.update(body.get("fields") or {})
        for op in (body.get("update") or {}).get("labels", []):
            if op["add"] not in fields.setdefault("labels", []):
                fields["labels"].append(op["add"])

    def comment(self, issue_id: str, adf: dict[str, Any]) -> dict[str, Any]:
        self._count("comment")
        self.comments.setdefault(issue_id, []).append(adf)
        if self.refuse_next_comment:
            self.refuse_next_comment = False
            self.comments[issue_id].pop()
            raise ClientError("jira", "POST", "http://x/comment", 400, None, "comment: INVALID_INPUT")
        if self.drop_next_comment:  # stored, then the answer is lost
            self.drop_next_comment = False
            raise TransportError("jira", "POST", "http://x/comment", message="response dropped")
        return {"id": str(len(self.comments[issue_id]))}

    def list_comments(self, issue_id: str) -> list[dict[str, Any]]:
        self._count("list_comments")
        return [
            {"id": str(i + 1), "body": b}
            for i, b in reversed(list(enumerate(self.comments.get(issue_id, []))))
        ]

    def transition(self, issue_id: str, name: str) -> str | None:
        self._count("transition")
        if self.fail_next_transition:
            self.fail_next_transition = False
            raise TransportError("jira", "POST", "http://x/transitions", message="connection reset")
        self.transitions.setdefault(issue_id, []).append(name)
        return name

    def get_issue(self, issue_id: str, fields) -> dict[str, Any]:
        self._count("get_issue")
        if issue_id in self.gone or issue_id not in self.issues:
            raise NotFoundError(
                "jira", "GET", f"http://x/issue/{issue_id}", 404, None, "Issue does not exist"
            )
        links = [{"type": {"name": t}, "outwardIssue": {"id": o}} for t, i, o in self.links if i == issue_id]
        done = bool(self.transitions.get(issue_id))
        return {
            "id": issue_id,
            "fields": {"issuelinks": links, "status": {"statusCategory": {"key": "done" if done else "new"}}},
        }

    def link_types(self) -> list[dict[str, Any]]:
        self._count("link_types")
        return [{"name": "Blocks", "outward": "blocks"}, {"name": "Duplicate", "outward": "duplicates"}]

    def link(self, type_name: str, inward: str, outward: str) -> None:
        self._count("link")
        if (type_name, inward, outward) not in self.links:
            self.links.append((type_name, inward, outward))

    def plant(self, bc_id: str) -> str:
        """An issue made outside this state store (an earlier version, a person) for the record."""
        self._n += 1
        iid = str(self._n)
        self.issues[iid] = {"key": f"FIN-{self._n - 10000}", "fields": {RID: bc_id}, "created": self.clock()}
        return iid

    def by_record(self, bc_id: str) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if i["fields"][RID] == bc_id]


def invoice(n: int, **over: Any) -> dict[str, Any]:
    rec = {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "number": f"PI{1000 + n}",
        "vendorNumber": "V10",
        "vendorName": "Fabrikam",
        "currencyCode": "EUR",
        "totalAmountIncludingTax": 100.0 + n,
        "status": "Draft",
        "lastModifiedDateTime": f"2026-11-20T10:{n % 60:02d}:00Z",
    }
    rec.update(over)
    return rec


# The store's own row types: the in-memory store differs in where rows live, not in their shape.
MemLink, MemAudit = Link, AuditRow


class MemoryStore:
    """The slice of bc_jira.store.StateStore the outbound uses (until/unless the real one is importable)."""

    Link, AuditRow = MemLink, MemAudit

    def __init__(self) -> None:
        self.links: dict[tuple[str, str], MemLink] = {}
        self.rows: list[MemAudit] = []
        self.batches: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[tuple[str, str], list[str]] = {}

    def get_links(self, entity, bc_ids):
        return {b: copy.copy(self.links[(entity, b)]) for b in bc_ids if (entity, b) in self.links}

    def upsert_link(self, link) -> None:
        self.links[(link.entity, link.bc_id)] = copy.copy(link)

    def audit(self, rows) -> None:
        self.rows.extend(rows)

    def query_audit(self, *, entity=None, bc_id=None, **_: Any):
        return [
            r
            for r in self.rows
            if (entity is None or r.entity == entity) and (bc_id is None or r.bc_id == bc_id)
        ]

    def save_batches(self, entity, run_key, records, batch_size):
        if (entity, run_key) in self.runs:
            return self.runs[(entity, run_key)]
        recs = list(records)
        ids = []
        for i in range(0, len(recs), batch_size):
            bid = f"{entity}:{run_key}:{i // batch_size}"
            self.batches[bid] = copy.deepcopy(recs[i : i + batch_size])
            ids.append(bid)
        self.runs[(entity, run_key)] = ids
        return ids

    def load_batch(self, batch_id):
        return copy.deepcopy(self.batches[batch_id])

    def batch_ids(self, entity, run_key):
        return list(self.runs.get((entity, run_key), []))


def _store_factory(tmp_path: Path):
    try:
        from bc_jira.store import AuditRow, Link, StateStore
    except ImportError:
        return lambda name: MemoryStore(), MemLink, MemAudit

    def make(name: str):
        s = StateStore.from_url(f"sqlite:///{tmp_path}/{name}.db")
        s.ensure_schema()
        return s

    return make, Link, AuditRow


@pytest.fixture
def stores(tmp_path):
    return _store_factory(tmp_path)


@pytest.fixture
def store(stores):
    return stores[0]("state")


@pytest.fixture
def env(store, stores):
    clock = Clock()
    jira = FakeJira(clock)
    cfg = parse_config(
        {
            "project_key": "FIN",
            "search_settle_seconds": 30,
            "entities": {"purchase_invoices": {"resolved_transition": "Done"}},
        }
    )

    def upserter(**kw: Any) -> Upserter:
        return Upserter(
            cfg=cfg,
            entity="purchase_invoices",
            ids=IDS,
            jira=jira,
            store=store,
            run=RunInfo(dag_id="d", run_id="r1", task_id="upsert", map_index=0, try_number=1),
            sleep=clock.sleep,
            clock=clock,
            link_cls=stores[1],
            audit_cls=stores[2],
            **kw,
        )

    return clock, jira, upserter


def test_create_then_rerun_changes_nothing(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(120)]
    counts = up().upsert(recs)
    assert (counts.created, counts.updated, counts.unchanged) == (120, 0, 0)
    assert jira.calls["bulk_create"] == 3  # 50 + 50 + 20
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert {lk.state for lk in links.values()} == {LinkState.LINKED}
    before = dict(jira.calls)
    counts = up().upsert(recs)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 0, 120)
    assert jira.calls == before  # link table answered everything: no search, no create, no edit
    assert "read 120, created 0, updated 0, unchanged 120" == counts.line()


def test_change_edits_exactly_that_issue_and_keeps_peoples_edits(env) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(5)]
    up().upsert(recs)
    issue = jira.by_record(recs[2]["id"])[0]
    issue["fields"]["customfield_10099"] = "set by a person"
    issue["fields"]["labels"].append("urgent")
    recs[2] = dict(recs[2], totalAmountIncludingTax=999.5, lastModifiedDateTime="2026-11-20T11:00:00Z")
    counts = up().upsert(recs)
    assert (counts.updated, counts.unchanged, jira.calls["edit"]) == (1, 4, 1)
    assert issue["fields"][AMT] == 999.5
    assert issue["fields"]["customfield_10099"] == "set by a person"
    assert "urgent" in issue["fields"]["labels"] and "bc-jira" in issue["fields"]["labels"]


def test_lost_bulk_answer_after_commit_does_not_duplicate(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(60)]
    jira.drop_next_create = True
    with pytest.raises(SyncError):
        up().upsert(recs)
    assert len(jira.issues) == 60  # the first chunk (50) committed, its answer was lost; 10 went through
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert sum(lk.state == LinkState.PENDING for lk in links.values()) == 50
    # the retry comes right away (before search caught up): it must wait, then find all 50
    counts = up().upsert(recs)
    assert clock.slept >= 29
    assert counts.created == 0 and counts.linked == 50 and counts.unchanged == 10
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert {lk.state for lk in links.values()} == {LinkState.LINKED}
    # audited per attempt: the failed attempt's error rows and the retry's rows
    rows = store.query_audit(entity="purchase_invoices", bc_id=recs[0]["id"])
    assert {r.action for r in rows} >= {"error"}


def test_lost_request_before_commit_creates_once_on_retry(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(3)]
    jira.fail_next_create = True
    with pytest.raises(SyncError):
        up().upsert(recs)
    assert jira.issues == {}
    clock.now += timedelta(seconds=120)  # Airflow's retry_delay passed: no extra wait
    counts = up().upsert(recs)
    assert getattr(clock, "slept", 0) == 0
    assert counts.created == 3
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)


def test_record_that_stops_needing_a_human_is_commented_and_moved_once(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    up().upsert(recs)
    posted = dict(recs[0], status="Open", number="PPI108001", lastModifiedDateTime="2026-11-20T11:30:00Z")
    counts = up().upsert([posted, recs[1]])
    assert (counts.resolved, counts.unchanged) == (1, 1)
    issue_id = store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].issue_id
    assert len(jira.comments[issue_id]) == 1 and "PPI108001" in str(jira.comments[issue_id][0])
    assert jira.transitions[issue_id] == ["Done"]
    assert jira.issues[issue_id]["fields"][STS] == "Open"
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVED
    counts = up().upsert([posted])
    assert counts.unchanged == 1 and len(jira.comments[issue_id]) == 1


def test_rejected_element_is_audited_and_retried_later(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    jira.reject.add(recs[1]["id"])
    with pytest.raises(SyncError, match="1 of 2"):
        up().upsert(recs)
    assert store.get_links("purchase_invoices", [recs[1]["id"]])[recs[1]["id"]].state == LinkState.FAILED
    err = [r for r in store.query_audit(bc_id=recs[1]["id"]) if r.action == "error"]
    assert err and "not on screen" in (err[0].error or "")
    assert err[0].dag_id == "d" and err[0].map_index == 0 and err[0].try_number == 1
    jira.reject.clear()
    counts = up().upsert(recs)
    assert (counts.created, counts.unchanged) == (1, 1)
    assert len(jira.issues) == 2


def test_issue_found_by_jql_when_link_table_lost(env, stores) -> None:
    clock, jira, up = env
    recs = [invoice(1)]
    up().upsert(recs)
    clock.now += timedelta(seconds=60)
    fresh = stores[0]("other")
    u = up()
    u.store = fresh
    counts = u.upsert(recs)
    assert counts.created == 0 and counts.updated == 1  # content unknown: owned fields written once
    assert len(jira.issues) == 1
    assert fresh.get_links("purchase_invoices", [recs[0]["id"]])[recs[0]["id"]].state == LinkState.LINKED


def test_not_selected_and_unlinked_is_skipped(env) -> None:
    clock, jira, up = env
    counts = up().upsert([invoice(1, status="Open")])
    assert counts.skipped == 1 and not jira.issues and "search" not in jira.calls


class FakeBC:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.queries: list[tuple] = []

    def iter_modified(self, entity_set, since, until=None, *, extra_filter=None, page_size=None, select=None):
        self.queries.append((entity_set, since, until, extra_filter))
        for r in self.records:
            yield dict(r, **{"@odata.etag": 'W/"1"'})


def test_extract_dedupes_filters_and_replays(store) -> None:
    cfg = parse_config({"project_key": "FIN", "batch_size": 2})
    newer = invoice(1, lastModifiedDateTime="2026-11-20T10:59:00Z", totalAmountIncludingTax=5)
    recs = [invoice(1), invoice(2), invoice(3, status="Open"), newer]
    bc = FakeBC(recs)
    run = RunInfo(run_id="scheduled__1", run_type="scheduled")
    out = extract("purchase_invoices", cfg=cfg, bc=bc, store=store, run=run, watermark="2026-11-20T10:00:00Z")
    assert bc.queries[0][1] == datetime(2026, 11, 20, 9, 58, tzinfo=UTC)  # watermark minus 120 s overlap
    assert bc.queries[0][3] is None  # not the first sync: every change is read, selection applied here
    assert out["read"] == 4 and out["kept"] == 2
    assert out["high_watermark"] == "2026-11-20T10:59:00Z"
    saved = [r for b in out["batch_ids"] for r in store.load_batch(b)]
    assert sorted(r["id"] for r in saved) == [invoice(1)["id"], invoice(2)["id"]]
    assert next(r for r in saved if r["id"] == invoice(1)["id"])["totalAmountIncludingTax"] == 5
    assert all("@odata.etag" not in r for r in saved)
    # clearing extract replays the same batches without reading BC again
    again = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([invoice(9)]),
        store=store,
        run=run,
        watermark="2026-11-20T10:00:00Z",
    )
    assert again["batch_ids"] == out["batch_ids"]


def test_extract_keeps_linked_records_that_stopped_needing_a_human(store, stores) -> None:
    Link = stores[1]
    cfg = parse_config({"project_key": "FIN"})
    posted = invoice(3, status="Open")
    store.upsert_link(
        Link(
            entity="purchase_invoices",
            bc_id=posted["id"],
            document_number="PI1003",
            issue_id="10001",
            issue_key="FIN-1",
            content_hash="x",
            bc_last_modified=None,
            state=LinkState.LINKED,
            updated_at=datetime.now(UTC),
        )
    )
    out = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([posted, invoice(4, status="Paid")]),
        store=store,
        run=RunInfo(run_id="r"),
        watermark="2026-11-20T10:00:00Z",
    )
    assert out["kept"] == 1


def test_first_sync_lets_bc_filter_by_selection(store) -> None:
    cfg = parse_config({"project_key": "FIN"})
    bc = FakeBC([])
    extract("purchase_orders", cfg=cfg, bc=bc, store=store, run=RunInfo(run_id="r"), watermark=None)
    assert bc.queries == [("purchaseOrders", None, None, "status eq 'In_x0020_Review'")]


def test_backfill_window_and_watermark() -> None:
    cfg = parse_config({"project_key": "FIN"})
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    w = sync_window(
        cfg,
        RunInfo(run_type="backfill", data_interval_start=start, data_interval_end=end),
        "2026-11-20T00:00:00Z",
    )
    assert (w.since, w.until) == (start, end)
    with pytest.raises(SyncError):
        sync_window(cfg, RunInfo(run_type="backfill"), None)
    assert next_watermark({"backfill": True, "high_watermark": "2026-12-01T00:00:00Z"}, "A") == "A"
    assert (
        next_watermark(
            {"high_watermark": "2026-11-20T10:00:00Z", "watermark": "2026-11-20T10:01:00Z"},
            "2026-11-20T10:01:00Z",
        )
        == "2026-11-20T10:01:00Z"
    )  # overlap never rewinds
    assert (
        next_watermark({"high_watermark": "2026-11-21T00:00:00.5+00:00", "watermark": None}, None)
        == "2026-11-21T00:00:00.500000Z"
    )
    assert next_watermark({"high_watermark": None, "watermark": None}, None) is None


def test_counts_line() -> None:
    c = Counts(read=500, created=37, updated=12, unchanged=451)
    assert c.line() == "read 500, created 37, updated 12, unchanged 451"


def test_collection_notification_widens_the_window() -> None:
    cfg = parse_config({"project_key": "FIN"})
    run = RunInfo(run_type="asset_triggered")
    wm = "2026-11-20T10:00:00Z"
    earlier = datetime(2026, 11, 19, tzinfo=UTC)
    assert sync_window(cfg, run, wm, (False, earlier)).since == earlier
    assert sync_window(cfg, run, wm, (False, datetime(2026, 11, 21, tzinfo=UTC))).since == datetime(
        2026, 11, 20, 9, 58, tzinfo=UTC
    )
    full = sync_window(cfg, run, wm, (True, None))
    assert (full.since, full.until, full.initial) == (None, None, False)


def test_batch_count_is_capped_for_small_xcom(store, monkeypatch) -> None:
    import json as _json

    from bc_jira.sync import extract as ex

    monkeypatch.setattr(ex, "MAX_BATCHES", 3)
    cfg = parse_config({"project_key": "FIN", "batch_size": 1})
    out = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([invoice(i) for i in range(10)]),
        store=store,
        run=RunInfo(run_id="cap"),
        watermark=None,
    )
    assert len(out["batch_ids"]) == 3
    assert sum(len(store.load_batch(b)) for b in out["batch_ids"]) == 10
    assert len(_json.dumps(out["batch_ids"])) < 10_240


# -- against the sandbox: the record-id lookup and bc_jira_connect's field checks (issue 10.2, 10.5) ---------


@pytest.fixture
def sandbox_jira(sandbox, airflow_conns) -> Iterator[Any]:
    """The freshly reset sandbox with the Jira connection aimed at it and no access token cached in-process
    (a reset sandbox issues a new grant)."""
    from bc_jira.tokens import JiraTokenProvider

    JiraTokenProvider._process_cache.clear()
    yield sandbox
    JiraTokenProvider._process_cache.clear()


def _sandbox_cfg(airflow_conns: dict[str, str], **over: Any) -> Any:
    import json

    doc = json.loads(airflow_conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    doc.update(over)
    return parse_config(doc)


def test_record_id_lookup_finds_the_exact_issue_by_phrase(sandbox_jira, airflow_conns) -> None:
    """Jira's ``~`` matches words (the sandbox tokenises like it): the lookup asks for the GUID as a phrase
    and keeps only an exact field value: neither a look-alike GUID nor a value merely holding it is taken."""
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.sync.jira_ops import JiraOps
    from bc_jira.sync.lookup import _text_phrase

    sandbox_jira.options(search_lag_s=0)
    cfg = _sandbox_cfg(airflow_conns)
    hook = JiraCloudHook()
    jira = JiraOps(hook)
    ids = field_ids(cfg.fields, {f["name"]: f["id"] for f in hook.client.get_json("field") if f["custom"]})
    rid = ids.record_id
    g = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    values = {
        "look-alike": g[:-1] + "2",  # a different GUID sharing four of its five words
        "prefix": g[:23],  # the GUID's first words: a phrase of them matches g itself too
        "holder": f"copy of {g} (old)",  # holds the whole phrase: Jira finds it, exact comparison drops it
        "glued": "x" + g,  # a substring match would find it; Jira's words do not
        "target": g,
    }
    made = {}
    for label, value in values.items():
        res = jira.bulk_create(
            [
                {
                    "fields": {
                        "project": {"key": cfg.project_key},
                        "issuetype": {"name": "Invoice"},
                        "summary": label,
                        rid: value,
                    }
                }
            ]
        )
        made[label] = res.created[0][1]["key"]
    up = Upserter(cfg=cfg, entity="purchase_invoices", ids=ids, jira=jira, store=None)

    raw = jira.search(
        f'project = "{cfg.project_key}" AND cf[{rid.split("_")[1]}] ~ {_text_phrase(g)}', ["key"]
    )
    assert {i["key"] for i in raw} == {made["target"], made["holder"]}  # what Jira answers to the phrase
    assert up._find([g]) == {g: {"id": hook_issue_id(jira, made["target"]), "key": made["target"]}}
    prefix = up._find([g[:23]])  # Jira answers prefix, holder and target; only the exact value counts
    assert [v["key"] for v in prefix.values()] == [made["prefix"]]
    assert up._find(["3f2504e0"]) == {}
    both = up._find([g, values["look-alike"]])
    assert {k: v["key"] for k, v in both.items()} == {
        g: made["target"],
        values["look-alike"]: made["look-alike"],
    }


def hook_issue_id(jira: Any, key: str) -> str:
    return str(jira.hook.client.get_json(f"issue/{key}", params={"fields": "summary"})["id"])


def test_connect_names_every_field_setup_problem_with_its_fix(sandbox_jira, airflow_conns) -> None:
    """Each way real Jira would refuse the creates or the search (field off a create screen, a Paragraph or
    text field where text or a number is needed, no searcher) is one problem naming the field and the fix."""
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import connect_checks
    from bc_jira.sync.jira_ops import JiraOps

    cfg = _sandbox_cfg(
        airflow_conns, assignees=[{"vendor_number": "V0001", "email": "alice.approver@example.com"}]
    )
    client = JiraCloudHook().client
    green = connect_checks(cfg, client)
    assert green.problems == []  # the sandbox's default setup is green
    assert "purchase_invoices: edit screen not checked yet (no 'Invoice' issue exists)" in green.notes
    fields = {f["name"]: f["id"] for f in client.get_json("field")}
    payload = {"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "s"}
    sandbox_jira.options(search_lag_s=0)  # connect finds it by JQL: no waiting for the index here
    assert JiraOps(JiraCloudHook()).bulk_create([{"fields": payload}]).created  # editmeta needs an issue
    ctl = sandbox_jira.control
    ctl(
        "POST",
        "/_sandbox/jira/screen",
        {"issue_type": "Invoice", "screen": "create", "remove": ["BC Vendor"]},
    )
    ctl("POST", "/_sandbox/jira/screen", {"issue_type": "Vendor", "screen": "create", "remove": ["labels"]})
    ctl("POST", "/_sandbox/jira/screen", {"issue_type": "Purchase Order", "remove": ["assignee"]})
    ctl("POST", "/_sandbox/jira/field", {"field": "BC Currency", "type": "textarea"})
    ctl("POST", "/_sandbox/jira/field", {"field": "BC Amount", "type": "textfield"})
    ctl("POST", "/_sandbox/jira/field", {"field": "BC Status", "searcher": None})

    ctl(
        "POST",
        "/_sandbox/jira/screen",
        {"issue_type": "Invoice", "screen": "edit", "remove": ["BC Document No."]},
    )
    rep = connect_checks(cfg, client)
    probs = rep.problems
    assert len(probs) == 7, "\n".join(probs)

    def one(*parts: str) -> str:
        hits = [p for p in probs if all(x in p for x in parts)]
        assert len(hits) == 1, (parts, probs)
        return hits[0]

    one(
        "entities.purchase_invoices:",
        f"'BC Vendor' ({fields['BC Vendor']}) is not on the create screen of issue type 'Invoice'",
        "Create screen",
    )
    one(
        "entities.purchase_invoices:",
        f"'BC Document No.' ({fields['BC Document No.']}) is not on the edit screen of issue type 'Invoice'",
        "every update of its issues fails",
        "Edit screen",
    )
    assert not [n for n in rep.notes if n.startswith("purchase_invoices: edit screen")]
    one("entities.vendors:", "Labels is not on the create screen of issue type 'Vendor'")
    one("entities.purchase_orders:", "Assignee is not on the create screen of issue type 'Purchase Order'")
    one("fields.currency:", fields["BC Currency"], ":textarea", "Paragraph", "Short text (single line) field")
    one("fields.amount:", fields["BC Amount"], ":textfield", "needs a Number field")
    one("fields.status:", fields["BC Status"], "has no searcher", "Free Text Searcher")
    assert set(rep.fields) == {"BC Record Id", "BC Document No.", "BC Vendor"}
    # what Jira itself answers to such a create
    res = JiraOps(JiraCloudHook()).bulk_create([{"fields": {**payload, fields["BC Vendor"]: "x"}}])
    assert not res.created and "not on the appropriate screen" in res.failed[0].errors[fields["BC Vendor"]]


def test_connect_reads_every_createmeta_page(sandbox_jira, airflow_conns, monkeypatch) -> None:
    """createmeta is paged (startAt/maxResults/total): a field on a later page still counts as on screen."""
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup import connect as ob

    monkeypatch.setattr(ob, "CREATEMETA_PAGE", 2)
    before = sandbox_jira.stats()["calls"]
    key = "GET /ex/jira/{cloudId}/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"
    rep = ob.connect_checks(_sandbox_cfg(airflow_conns), JiraCloudHook().client)
    assert rep.problems == []
    pages = int(sandbox_jira.stats()["calls"].get(key, 0)) - int(before.get(key, 0))
    assert pages >= 3 * 6  # three issue types, a dozen fields or more each, two per page


def test_lost_resolve_comment_answer_and_failed_transition_never_comment_twice(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1)]
    up().upsert(recs)
    posted = dict(recs[0], status="Open", number="PPI108001", lastModifiedDateTime="2026-11-20T11:30:00Z")
    issue_id = store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].issue_id
    jira.drop_next_comment = True
    with pytest.raises(SyncError):
        up().upsert([posted])
    assert len(jira.comments[issue_id]) == 1  # Jira stored it; the answer was lost
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.LINKED
    actions = [r.action for r in store.query_audit(bc_id=posted["id"])]
    assert "resolve_comment_unconfirmed" in actions and "resolve_comment_failed" not in actions
    jira.fail_next_transition = True  # the retry finds the comment, then the transition fails
    with pytest.raises(SyncError):
        up().upsert([posted])
    assert len(jira.comments[issue_id]) == 1 and jira.calls["list_comments"] == 1
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVING
    counts = up().upsert([posted])  # the next retry only moves it
    assert counts.resolved == 1 and jira.transitions[issue_id] == ["Done"]
    assert len(jira.comments[issue_id]) == 1 and jira.calls["comment"] == 1
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVED
    made = [r for r in store.query_audit(bc_id=posted["id"]) if r.action == "resolve_comment"]
    assert len(made) == 1 and "found on the issue" in made[0].reason
    # blocked/needed again, then resolved again: a new episode gets its own (single) comment
    again = dict(posted, status="Draft", lastModifiedDateTime="2026-11-20T12:00:00Z")
    up().upsert([again])
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.LINKED
    up().upsert([dict(posted, lastModifiedDateTime="2026-11-20T12:30:00Z")])
    up().upsert([dict(posted, lastModifiedDateTime="2026-11-20T12:30:00Z")])
    assert len(jira.comments[issue_id]) == 2


def test_resolve_comment_refused_by_jira_is_audited_and_does_not_wedge_the_record(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1)]
    up().upsert(recs)
    posted = dict(recs[0], status="Open", number="PPI108001", lastModifiedDateTime="2026-11-20T11:30:00Z")
    issue_id = store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].issue_id
    jira.refuse_next_comment = True
    counts = up().upsert([posted])
    assert counts.resolved == 1 and jira.comments.get(issue_id) == []
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVED
    failed = [r for r in store.query_audit(bc_id=posted["id"]) if r.action == "resolve_comment_failed"]
    assert len(failed) == 1 and "refused" in failed[0].reason
    assert not [r for r in store.query_audit(bc_id=posted["id"]) if r.action == "resolve_comment"]


def test_planted_duplicates_healed_once_and_a_deleted_one_does_not_wedge_the_batch(env, store) -> None:
    from bc_jira.sync import heal

    clock, jira, up = env
    heal._LINK_TYPE.clear()
    rec = invoice(1)
    keep, dup, deleted = (jira.plant(rec["id"]) for _ in range(3))
    jira.gone.add(deleted)  # found by the search, deleted before it is healed
    clock.now += timedelta(seconds=60)  # past the search lag
    counts = up().upsert([rec])
    assert counts.created == 0 and counts.updated == 1  # found by JQL; owned fields written once
    assert store.get_links("purchase_invoices", [rec["id"]])[rec["id"]].issue_id == keep
    assert jira.links == [("Duplicate", dup, keep)]
    assert len(jira.comments[dup]) == 1 and "duplicates FIN-" in str(jira.comments[dup][0])
    assert keep not in jira.comments and jira.transitions == {}  # no duplicate_transition configured
    rows = {r.action: r for r in store.query_audit(bc_id=rec["id"])}
    assert "duplicate" in rows and "issue no longer exists" in rows["duplicate_failed"].reason
    assert store.pending_effects("duplicate") == []
    before = dict(jira.calls)
    up().upsert([rec])  # the retry / the next run: the link table knows the record, nothing is owed
    assert jira.calls.get("link") == before.get("link") and len(jira.comments[dup]) == 1


# -- replay never moves data backwards --------------------------------------------------------------------


def test_replayed_older_version_is_stale_and_sends_nothing(env, store) -> None:
    clock, jira, up = env
    old = invoice(1)
    up().upsert([old])
    new = dict(
        old, totalAmountIncludingTax=555.0, status="Draft", lastModifiedDateTime="2026-11-20T11:00:00Z"
    )
    assert up().upsert([new]).updated == 1
    before = dict(jira.calls)
    counts = up().upsert([old])  # the first run's upsert, cleared: its stored batch holds the old version
    assert (counts.stale, counts.updated, counts.unchanged) == (1, 0, 0)
    assert jira.calls == before  # nothing sent
    issue = jira.by_record(old["id"])[0]
    assert issue["fields"][AMT] == 555.0
    link = store.get_links("purchase_invoices", [old["id"]])[old["id"]]
    assert link.bc_last_modified == "2026-11-20T11:00:00Z"  # the link still knows the newest version
    row = store.query_audit(bc_id=old["id"], action="stale")[0]
    assert "older than the one already synced" in row.reason and row.issue_key == issue["key"]
    assert up().upsert([new]).unchanged == 1  # the same version is not stale


def test_watermark_plan_never_decreases_and_says_so() -> None:
    newer, older = "2026-12-01T20:10:59Z", "2026-12-01T18:46:47Z"
    replay = {"high_watermark": older, "watermark": "2026-12-01T18:00:00Z"}
    plan = plan_watermark(replay, newer)
    assert (plan.value, plan.write) == (newer, False)
    assert "advanced" not in plan.message and f"left at {newer}" in plan.message
    assert next_watermark(replay, newer) == newer
    fresh = plan_watermark({"high_watermark": newer, "watermark": older}, older)
    assert (fresh.value, fresh.write) == (newer, True) and "advanced" in fresh.message
    same = plan_watermark({"high_watermark": newer, "watermark": newer}, newer)
    assert not same.write and "unchanged" in same.message
    back = plan_watermark({"backfill": True, "high_watermark": "2027-01-01T00:00:00Z"}, older)
    assert (back.value, back.write) == (older, False) and "backfill" in back.message


def test_watermark_held_below_records_another_run_has_not_synced() -> None:
    start = "2026-12-01T10:00:00Z"
    read = {"high_watermark": "2026-12-01T12:00:00Z", "watermark": start}
    skipped = {"a": "2026-12-01T11:00:00.250Z", "b": "2026-12-01T11:30:00Z", "c": "2026-12-01T11:40:00Z"}
    links = {
        "a": Link(
            "purchase_invoices", "a", state=LinkState.PENDING, bc_last_modified=skipped["a"]
        ),  # owner still at it
        "b": Link("purchase_invoices", "b", state=LinkState.LINKED, bc_last_modified=skipped["b"]),  # synced
        "c": Link(
            "purchase_invoices", "c", state=LinkState.LINKED, bc_last_modified="2026-12-01T09:00:00Z"
        ),  # older
    }
    hold = hold_below(skipped, links)
    assert hold == datetime(2026, 12, 1, 11, 0, 0, 250000, tzinfo=UTC)
    plan = plan_watermark(read, start, hold)
    assert plan.write and plan.value == "2026-12-01T11:00:00.249000Z" and "held below" in plan.message
    links["a"] = Link("purchase_invoices", "a", state=LinkState.LINKED, bc_last_modified=skipped["a"])
    assert hold_below(skipped, links) == datetime(2026, 12, 1, 11, 40, tzinfo=UTC)  # c: older version synced
    links["c"] = Link("purchase_invoices", "c", state=LinkState.RESOLVED, bc_last_modified=skipped["c"])
    assert hold_below(skipped, links) is None
    assert plan_watermark(read, start, None).value == "2026-12-01T12:00:00Z"
    # a hold never moves a newer watermark back either
    assert plan_watermark(read, "2026-12-01T13:00:00Z", hold).value == "2026-12-01T13:00:00Z"


# -- two runs at the same time never make two issues for one record --------------------------------------


def test_record_claimed_by_a_live_run_is_left_to_it(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(4)]
    taken, _ = store.claim_records(
        "purchase_invoices", [recs[0]["id"]], "d/other_run/upsert[3]", 1, clock(), CLAIM_TTL_SECONDS
    )
    assert taken == {recs[0]["id"]}
    u = up()
    counts = u.upsert(recs)
    assert (counts.claimed, counts.created) == (1, 3)
    assert jira.by_record(recs[0]["id"]) == []  # the owner creates it, not us
    assert u.held == {recs[0]["id"]: recs[0]["lastModifiedDateTime"]}
    row = store.query_audit(bc_id=recs[0]["id"], action="claimed")[0]
    assert row.reason.startswith("claimed by d/other_run/upsert[3] (try 1")
    assert store.get_links("purchase_invoices", [recs[0]["id"]]) == {}
    # our claims are released once our links are written; the other run's claim is untouched
    assert list(store.get_claims("purchase_invoices", [r["id"] for r in recs])) == [recs[0]["id"]]


def test_claim_of_a_crashed_owner_is_taken_over_through_the_pending_intent(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    # a run crashed after Jira committed its create of recs[0]: intent pending, issue exists, claims left
    crashed_at = clock() - timedelta(seconds=CLAIM_TTL_SECONDS + 1)
    store.claim_records("purchase_invoices", [r["id"] for r in recs], "d/dead/upsert[0]", 1, crashed_at, 60)
    jira.bulk_create([{"fields": {RID: recs[0]["id"]}}])
    jira.issues[max(jira.issues, key=int)]["created"] = crashed_at
    store.upsert_link(
        Link(
            "purchase_invoices",
            recs[0]["id"],
            state=LinkState.PENDING,
            content_hash="h",
            updated_at=crashed_at,
        )
    )
    counts = up().upsert(recs)
    # found by JQL as the crashed owner's create (the intent's hash differs: its owned fields are rewritten)
    assert (counts.claimed, counts.updated, counts.created) == (0, 1, 1)
    assert store.get_links("purchase_invoices", [recs[0]["id"]])[recs[0]["id"]].state == LinkState.LINKED
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
    assert store.get_claims("purchase_invoices", [r["id"] for r in recs]) == {}


def test_a_later_try_of_the_same_task_takes_its_claim_back_at_once(env, store) -> None:
    clock, jira, up = env
    rec = invoice(1)
    store.claim_records("purchase_invoices", [rec["id"]], "d/r1/upsert[0]", 1, clock(), CLAIM_TTL_SECONDS)
    u = up()
    u.run = RunInfo(dag_id="d", run_id="r1", task_id="upsert", map_index=0, try_number=2)
    assert u.upsert([rec]).created == 1
    # an older try never takes a newer try's claim
    store.claim_records("purchase_invoices", [rec["id"]], "d/r1/upsert[0]", 3, clock(), CLAIM_TTL_SECONDS)
    u.run = RunInfo(dag_id="d", run_id="r1", task_id="upsert", map_index=0, try_number=2)
    assert u.upsert([rec]).claimed == 1


# -- write-back acts only on the record the issue names: link created issues by value ------------------------


def test_bulk_answer_in_another_order_is_linked_by_value(env, store) -> None:
    clock, jira, up = env
    jira.misorder = True
    recs = [invoice(i) for i in range(120)]
    counts = up().upsert(recs)
    assert counts.created == 120
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    for r in recs:
        assert jira.issues[links[r["id"]].issue_id]["fields"][RID] == r["id"]
    # one read-back per two bulk creates: 3 creates (50 + 50 + 20) -> 2 fetches
    assert (jira.calls["bulk_create"], jira.calls["fetch"]) == (3, 2)


def test_created_issue_not_confirmed_stays_pending_and_is_found_later(env, store, monkeypatch) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    real = jira.fetch
    monkeypatch.setattr(
        jira, "fetch", lambda ids, fields: [i for i in real(ids, fields) if i["id"] != ids[0]]
    )
    with pytest.raises(SyncError, match="1 of 2"):
        up().upsert(recs)
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert sorted(lk.state for lk in links.values()) == [LinkState.LINKED, LinkState.PENDING]
    monkeypatch.setattr(jira, "fetch", real)
    counts = up().upsert(recs)
    assert (counts.linked, counts.created) == (1, 0)
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
