"""``reopen_transition``: parsed like the other transition keys, checked against the workflow by connect."""

from __future__ import annotations

import pytest

from bc_jira.config import ConfigError, default_config_document, parse_config
from bc_jira.setup.connect import workflow_problems

STATUSES = [
    {"name": "To Do", "statusCategory": {"key": "new"}},
    {"name": "Done", "statusCategory": {"key": "done"}},
]


def test_default_is_to_do_null_leaves_the_issue_and_names_are_trimmed() -> None:
    assert parse_config({"project_key": "FIN"}).reopen_transition == "To Do"
    assert parse_config({"project_key": "FIN", "reopen_transition": None}).reopen_transition is None
    assert (
        parse_config({"project_key": "FIN", "reopen_transition": " Backlog "}).reopen_transition == "Backlog"
    )
    assert parse_config(default_config_document()).reopen_transition == "To Do"


@pytest.mark.parametrize("bad", ["", "  ", 3, ["To Do"]])
def test_a_bad_value_is_named_with_its_fix(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"reopen_transition: must be a Jira transition or status name"):
        parse_config({"project_key": "FIN", "reopen_transition": bad})


def test_connect_reports_a_reopen_status_the_workflow_does_not_have() -> None:
    cfg = parse_config({"project_key": "FIN", "reopen_transition": "Backlog"})
    problems = workflow_problems(cfg, cfg.entity("vendors"), STATUSES, [])
    assert any("reopen_transition: no status 'Backlog'" in p and "To Do" in p for p in problems)
    ok = parse_config({"project_key": "FIN"})
    assert not [p for p in workflow_problems(ok, ok.entity("vendors"), STATUSES, []) if "reopen" in p]
    off = parse_config({"project_key": "FIN", "reopen_transition": None})
    assert not [p for p in workflow_problems(off, off.entity("vendors"), [STATUSES[1]], []) if "reopen" in p]
