"""``priority_rules`` parsing: every problem named with its key path and the fix; nothing half-parsed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bc_jira.config import ConfigError, PriorityRule, parse_config


def _parse(rules: object) -> tuple[PriorityRule, ...]:
    return parse_config({"project_key": "FIN", "priority_rules": rules}).priority_rules


def test_rules_parse_in_order_with_their_conditions() -> None:
    rules = _parse(
        [
            {"priority": "Highest", "amount_at_least": 50000},
            {"priority": "High", "due_within_days": 3, "entities": ["purchase_invoices"]},
            {"priority": "Medium", "amount_at_least": 1000.5, "due_within_days": 0},
        ]
    )
    assert [r.priority for r in rules] == ["Highest", "High", "Medium"]
    assert rules[0].amount_at_least == Decimal("50000")
    assert rules[0].entities == ("purchase_invoices", "vendors", "purchase_orders")
    assert (rules[1].due_within_days, rules[1].entities) == (3, ("purchase_invoices",))
    assert rules[2].amount_at_least == Decimal("1000.5")
    assert _parse(None) == ()
    assert parse_config({"project_key": "FIN"}).priority_rules == ()


def test_every_bad_rule_is_named_with_its_fix() -> None:
    with pytest.raises(ConfigError) as err:
        _parse(
            [
                {"priority": "High", "amount": 5},
                {"priority": "High", "amount_at_least": "lots"},
                {"priority": "High", "amount_at_least": -1},
                {"priority": "High", "due_within_days": -2},
                {"priority": "High", "due_within_days": 1.5},
                {"priority": "", "amount_at_least": 1},
                {"priority": "High"},
                "High",
                {"priority": "High", "due_within_days": 2, "entities": ["vendors"]},
                {"priority": "High", "amount_at_least": 1, "entities": ["invoices"]},
            ]
        )
    text = str(err.value)
    for expected in (
        "priority_rules[0].amount: unknown key; allowed keys are amount_at_least, due_within_days, entities, "
        "priority",
        "priority_rules[1].amount_at_least: must be a number of at least 0",
        "priority_rules[2].amount_at_least: must be a number of at least 0",
        "priority_rules[3].due_within_days: must be a whole number of days from 0 to 3650",
        "priority_rules[4].due_within_days: must be a whole number of days",
        'priority_rules[5].priority: must be the name of a Jira priority, e.g. "High"',
        "priority_rules[6]: give amount_at_least and/or due_within_days",
        "priority_rules[7]: must be an object such as",
        'priority_rules[8].due_within_days: none of vendors has a due date; limit the rule to "entities": '
        '["purchase_invoices"]',
        "priority_rules[9].entities: must be a non-empty list of entities among purchase_invoices, vendors, "
        "purchase_orders",
    ):
        assert expected in text, (expected, text)
    assert "priority_rules[0]: give amount_at_least" in text  # 'amount' is not a condition
    assert len(err.value.problems) == 11


def test_not_a_list() -> None:
    with pytest.raises(ConfigError, match="priority_rules: must be a list of rules"):
        _parse({"priority": "High", "amount_at_least": 1})
