"""Fixtures of the state-store tests: a fresh database per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from bc_jira.store import StateStore
from tests.support.store_db import fresh_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return fresh_url(request, request.param)


@pytest.fixture
def store(url: str) -> StateStore:
    return StateStore.from_url(url)
