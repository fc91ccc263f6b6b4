"""Every file in dags/ imports cleanly: no import error, no deprecation warning, the contract's DAG ids."""

from __future__ import annotations

import warnings

import pytest

from tests.conftest import REPO

CONTRACT_DAG_IDS = {
    "bc_purchase_invoices_to_jira",
    "bc_vendors_to_jira",
    "bc_purchase_orders_to_jira",
    "jira_transitions_to_bc",
    "bc_subscriptions_renewal",
    "jira_webhooks_refresh",
    "bc_jira_connect",
}


@pytest.fixture(scope="module")
def dagbag_and_warnings():
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(REPO / "dags"))
    return bag, caught


def test_no_import_errors(dagbag_and_warnings):
    bag, _ = dagbag_and_warnings
    assert bag.import_errors == {}


def test_no_deprecation_warnings_from_our_code(dagbag_and_warnings):
    _, caught = dagbag_and_warnings
    ours = [
        w
        for w in caught
        if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
        or "Deprecat" in w.category.__name__
    ]
    ours = [w for w in ours if str(REPO) in str(w.filename) or "bc_jira" in str(w.filename)]
    assert ours == [], [f"{w.filename}:{w.lineno} {w.message}" for w in ours]


def test_contract_dag_ids_present(dagbag_and_warnings):
    bag, _ = dagbag_and_warnings
    present = set(bag.dag_ids)
    assert present >= CONTRACT_DAG_IDS, f"missing: {sorted(CONTRACT_DAG_IDS - present)}"


def test_every_dag_is_documented_tagged_and_retried(dagbag_and_warnings):
    bag, _ = dagbag_and_warnings
    for dag_id in sorted(CONTRACT_DAG_IDS & set(bag.dag_ids)):
        dag = bag.dags[dag_id]
        assert dag.doc_md, f"{dag_id}: doc_md missing or too thin"
        assert len(dag.doc_md) > 80, f"{dag_id}: doc_md missing or too thin"
        assert "bc-jira" in dag.tags, f"{dag_id}: tag 'bc-jira' missing"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: no retries"


def test_no_task_splits_its_result_into_one_xcom_per_key(dagbag_and_warnings):
    """A task annotated ``-> dict`` would get an inferred multiple_outputs: one extra XCom row per key (nobody
    reads them), and Airflow refuses the default company's key ``""``. Every task pushes one XCom."""
    bag, _ = dagbag_and_warnings
    split = [
        f"{dag_id}.{task.task_id}"
        for dag_id in sorted(CONTRACT_DAG_IDS & set(bag.dag_ids))
        for task in bag.dags[dag_id].tasks
        if getattr(task, "multiple_outputs", False)
    ]
    assert split == []
