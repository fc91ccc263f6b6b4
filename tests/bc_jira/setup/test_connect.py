"""bc_jira_connect's checks against the sandbox: every field setup problem, paged createmeta."""

from __future__ import annotations

from tests.support.sync_fakes import sandbox_cfg


def test_connect_names_every_field_setup_problem_with_its_fix(sandbox_jira, airflow_conns) -> None:
    """Each way real Jira would refuse the creates or the search (field off a create screen, a Paragraph or
    text field where text or a number is needed, no searcher) is one problem naming the field and the fix."""
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import connect_checks
    from bc_jira.sync.jira_ops import JiraOps

    cfg = sandbox_cfg(
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
    assert not res.created
    assert "not on the appropriate screen" in res.failed[0].errors[fields["BC Vendor"]]


def test_connect_reads_every_createmeta_page(sandbox_jira, airflow_conns, monkeypatch) -> None:
    """createmeta is paged (startAt/maxResults/total): a field on a later page still counts as on screen."""
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup import connect as ob

    monkeypatch.setattr(ob, "CREATEMETA_PAGE", 2)
    before = sandbox_jira.stats()["calls"]
    key = "GET /ex/jira/{cloudId}/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"
    rep = ob.connect_checks(sandbox_cfg(airflow_conns), JiraCloudHook().client)
    assert rep.problems == []
    pages = int(sandbox_jira.stats()["calls"].get(key, 0)) - int(before.get(key, 0))
    assert pages >= 3 * 6  # three issue types, a dozen fields or more each, two per page


def test_connect_with_companies_checks_the_company_field_and_each_companys_project(
    sandbox_jira, airflow_conns
) -> None:
    """With ``companies``: BC Company is discovered and checked on the screens like the six others (this
    raised KeyError 'company' before), and a company's own project_key is checked like project_key."""
    import dataclasses

    from bc_jira.config.companies import parse_companies
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup.connect import connect_checks

    problems: list[str] = []
    entries = parse_companies([{"name": "CRONUS US", "project_key": "CA"}, {"name": "CRONUS CA"}], problems)
    assert problems == []
    cfg = dataclasses.replace(sandbox_cfg(airflow_conns), companies=entries)
    client = JiraCloudHook().client
    rep = connect_checks(cfg, client)
    assert [p for p in rep.problems if p.startswith("companies[0].project_key CA: project_key: Jira project")]
    sandbox_jira.control("POST", "/_sandbox/jira/projects", {"key": "CA", "name": "CRONUS US approvals"})
    rep = connect_checks(cfg, client)
    assert rep.problems == []
    assert rep.fields["BC Company"].startswith("customfield_")
    sandbox_jira.control(
        "POST",
        "/_sandbox/jira/screen",
        {"issue_type": "Invoice", "screen": "create", "remove": ["BC Company"]},
    )
    rep = connect_checks(cfg, client)
    assert any("'BC Company'" in p and "create screen" in p for p in rep.problems), rep.problems
