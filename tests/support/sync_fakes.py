"""Fakes for the sync's tests: an in-memory Jira with search lag and lost answers, a BC record source,
a clock, the record and config builders."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from bc_jira.config import FieldNames, parse_config
from bc_jira.hooks.jira_bulk import BulkCreateResult, BulkFailure
from bc_jira.http import ClientError, NotFoundError, TransportError
from bc_jira.mapping import field_ids

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
            {
                "id": i,
                "key": self.issues[i]["key"],
                "fields": {f: self.issues[i]["fields"].get(f) for f in fields},
            }
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


class FakeBC:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.queries: list[tuple] = []
        self.expands: list[str | None] = []

    def iter_modified(
        self, entity_set, since, until=None, *, extra_filter=None, page_size=None, select=None, expand=None
    ):
        self.queries.append((entity_set, since, until, extra_filter))
        self.expands.append(expand)
        for r in self.records:
            yield dict(r, **{"@odata.etag": 'W/"1"'})


def sandbox_cfg(airflow_conns: dict[str, str], **over: Any) -> Any:
    import json

    doc = json.loads(airflow_conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    doc.update(over)
    return parse_config(doc)


def hook_issue_id(jira: Any, key: str) -> str:
    return str(jira.hook.client.get_json(f"issue/{key}", params={"fields": "summary"})["id"])
