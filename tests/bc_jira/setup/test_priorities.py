"""bc_jira_connect's priority checks against the sandbox: names in the project's scheme, due date and priority
on the create screen, each problem with its fix."""

from __future__ import annotations

from tests.support.sync_fakes import sandbox_cfg


def test_priority_names_are_checked_against_the_projects_scheme(sandbox_jira, airflow_conns) -> None:
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import connect_checks

    client = JiraCloudHook().client
    good = sandbox_cfg(
        airflow_conns,
        priority_rules=[
            {"priority": "Highest", "amount_at_least": 50000},
            {"priority": "High", "due_within_days": 3, "entities": ["purchase_invoices"]},
        ],
    )
    assert connect_checks(good, client).problems == []
    bad = sandbox_cfg(
        airflow_conns,
        priority_rules=[
            {"priority": "high", "due_within_days": 3, "entities": ["purchase_invoices"]},
            {"priority": "Critical", "amount_at_least": 1},
            {"priority": "Highest", "amount_at_least": 50000},
        ],
    )
    probs = connect_checks(bad, client).problems
    assert len(probs) == 2, "\n".join(probs)
    assert probs[0].startswith(
        "priority_rules[0].priority: 'high' is not a priority of the priority scheme "
        "'Default Priority Scheme' of project FIN"
    )
    assert probs[0].endswith("write it as 'High' (Jira matches priority names exactly)")
    assert probs[1].startswith("priority_rules[1].priority: 'Critical' is not a priority")
    assert (
        "use one of 'Highest', 'High', 'Medium', 'Low', 'Lowest', or add 'Critical' to the scheme" in probs[1]
    )


def test_due_date_and_priority_must_be_on_the_create_screen(sandbox_jira, airflow_conns) -> None:
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import connect_checks

    client = JiraCloudHook().client
    cfg = sandbox_cfg(
        airflow_conns,
        priority_rules=[{"priority": "High", "amount_at_least": 1, "entities": ["purchase_orders"]}],
    )
    ctl = sandbox_jira.control
    ctl("POST", "/_sandbox/jira/screen", {"issue_type": "Invoice", "screen": "create", "remove": ["duedate"]})
    ctl(
        "POST",
        "/_sandbox/jira/screen",
        {"issue_type": "Purchase Order", "screen": "create", "remove": ["priority"]},
    )
    ctl(
        "POST",
        "/_sandbox/jira/screen",
        {"issue_type": "Vendor", "screen": "create", "remove": ["priority", "duedate"]},
    )
    probs = connect_checks(cfg, client).problems
    assert len(probs) == 2, "\n".join(probs)  # vendors: neither field is set, so neither is needed
    assert probs[0].startswith(
        "entities.purchase_invoices: Due date is not on the create screen of issue type 'Invoice'"
    )
    assert probs[1].startswith(
        "entities.purchase_orders: Priority is not on the create screen of issue type 'Purchase Order'"
    )
