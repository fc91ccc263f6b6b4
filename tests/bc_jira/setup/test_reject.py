"""bc_jira_connect shows ``reject_statuses`` and checks them against the project's workflows (sandbox)."""

from __future__ import annotations

from tests.support.sync_fakes import sandbox_cfg


def test_connect_shows_what_says_no_with_the_default(sandbox_jira, airflow_conns) -> None:
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import connect_checks

    rep = connect_checks(sandbox_cfg(airflow_conns), JiraCloudHook().client)
    assert rep.problems == []
    assert (
        "purchase_invoices: done statuses that say no (BC left untouched): Rejected; that run done_action "
        "'post': Done" in rep.notes
    )
    assert any(n.startswith("reject_statuses: the default (Rejected, Declined") for n in rep.notes)


def test_connect_names_a_reject_status_missing_from_the_workflow(sandbox_jira, airflow_conns) -> None:
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import ConnectError, connect_checks

    cfg = sandbox_cfg(airflow_conns, reject_statuses=["Rejected", "Declined", "In Progress"])
    rep = connect_checks(cfg, JiraCloudHook().client)
    assert rep.problems == [
        "reject_statuses[1]: no status 'Declined' in the workflow of 'Invoice' or 'Vendor', so no issue can "
        "reach it and say no with it; use the name of one of the done statuses (Done, Rejected) or remove it"
    ]
    assert any("reject_statuses[2]: 'In Progress' is not in the Done category" in n for n in rep.notes)
    assert "Declined" in str(ConnectError(rep.problems))
    # only "Declined" configured: "Rejected" now runs the done action, and connect says so
    rep = connect_checks(sandbox_cfg(airflow_conns, reject_statuses=["Declined"]), JiraCloudHook().client)
    assert len(rep.problems) == 1
    assert (
        "vendors: done statuses that say no (BC left untouched): none; that run done_action 'unblock': "
        "Done, Rejected" in rep.notes
    )
