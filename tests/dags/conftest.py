"""Fixtures shared by the DAG tests (the plain helpers they use live in ``tests/support/outbound.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.support.outbound import prepare_outbound

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import SandboxProcess


@pytest.fixture
def outbound(
    sandbox: SandboxProcess,
    airflow_conns: dict[str, str],
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> dict[str, Any]:
    """Sandbox seeded with a few of each; config with small batches; field ids discovered; clean state."""
    return prepare_outbound(sandbox, airflow_conns, monkeypatch, tmp_path)
