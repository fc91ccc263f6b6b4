"""``reject_statuses``: default, configured, validated (every problem with its fix)."""

from __future__ import annotations

import pytest

from bc_jira.config import DEFAULT_REJECT_STATUSES, ConfigError, default_config_document, parse_config


def test_default_is_todays_list() -> None:
    cfg = parse_config({"project_key": "FIN"})
    assert cfg.reject_statuses == DEFAULT_REJECT_STATUSES
    assert cfg.reject_statuses_configured is None
    for name in ("Rejected", "declined", "WON'T DO", "Cancelled", "canceled", "Not approved"):
        assert cfg.is_reject_status(name)
    assert not cfg.is_reject_status("Done")
    assert parse_config(default_config_document()).reject_statuses == DEFAULT_REJECT_STATUSES


def test_configured_list_replaces_the_default() -> None:
    cfg = parse_config({"project_key": "FIN", "reject_statuses": [" Abgelehnt ", "Declined", "declined"]})
    assert cfg.reject_statuses == ("Abgelehnt", "Declined")
    assert cfg.is_reject_status("abgelehnt")
    assert not cfg.is_reject_status("Rejected")
    assert parse_config({"project_key": "FIN", "reject_statuses": []}).reject_statuses == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Rejected", "reject_statuses: must be a list of Jira status names"),
        ({"a": 1}, "reject_statuses: must be a list of Jira status names"),
        (["Rejected", ""], "reject_statuses[1]: '' is not a status name"),
        (["Rejected", 3], "reject_statuses[1]: 3 is not a status name"),
        (["  "], "reject_statuses[0]: '  ' is not a status name"),
        (["x" * 256], "reject_statuses[0]: longer than a Jira status name can be"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"project_key": "FIN", "reject_statuses": value})
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
