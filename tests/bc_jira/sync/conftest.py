"""Fixtures of the sync's tests: real SQLite state stores and an upserter over the in-memory Jira."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from bc_jira.config import parse_config
from bc_jira.store import AuditRow, Link, StateStore
from bc_jira.sync.base import RunInfo
from bc_jira.sync.upsert import Upserter
from tests.support.sync_fakes import IDS, Clock, FakeJira

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def stores(tmp_path: Path) -> Any:
    """(make a store by name, Link, AuditRow): each store its own SQLite file."""

    def make(name: str) -> StateStore:
        s = StateStore.from_url(f"sqlite:///{tmp_path}/{name}.db")
        s.ensure_schema()
        return s

    return make, Link, AuditRow


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
