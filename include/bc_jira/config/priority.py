"""``priority_rules``: which Jira priority an issue gets, first matching rule wins.

A rule names a priority (by its Jira name; ``bc_jira_connect`` checks it exists in the project's priority
scheme) and one or both conditions: the record's amount is at least ``amount_at_least`` (the entity's amount
field, e.g. ``totalAmountIncludingTax``), its due date is at most ``due_within_days`` days away (invoices;
an overdue invoice matches too). ``entities`` limits a rule to some entities (default: every entity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bc_jira.entities import ENTITIES, SPECS

if TYPE_CHECKING:
    from collections.abc import Mapping

_RULE_KEYS = {"priority", "amount_at_least", "due_within_days", "entities"}
_EXAMPLE = '{"priority": "Highest", "amount_at_least": 50000}'
MAX_DAYS = 3650


@dataclass(frozen=True)
class PriorityRule:
    priority: str
    amount_at_least: Decimal | None = None
    due_within_days: int | None = None
    entities: tuple[str, ...] = ENTITIES

    def applies(self, entity: str, record: Mapping[str, Any], today: date) -> bool:
        """All of the rule's conditions hold for the record (a missing amount or due date: no match)."""
        if entity not in self.entities:
            return False
        s = SPECS[entity]
        if self.amount_at_least is not None:
            amount = _decimal(record.get(s.amount_field))
            if amount is None or amount < self.amount_at_least:
                return False
        if self.due_within_days is not None:
            due = _date(record.get(s.due_date_field)) if s.due_date_field else None
            if due is None or (due - today).days > self.due_within_days:
                return False
        return True


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _date(value: Any) -> date | None:
    """A BC Edm.Date; BC's blank date ``0001-01-01`` is no date."""
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _amount(value: Any, path: str, problems: list[str]) -> Decimal | None:
    if value is None:
        return None
    amount = None if isinstance(value, bool | str) else _decimal(value)
    if amount is None or not amount.is_finite() or amount < 0:
        problems.append(
            f"{path}: must be a number of at least 0 (an amount in the document's currency), e.g. 50000"
        )
        return None
    return amount


def _days(value: Any, path: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DAYS:
        problems.append(
            f"{path}: must be a whole number of days from 0 to {MAX_DAYS} (0: due today or overdue), e.g. 3"
        )
        return None
    return value


def _entities(value: Any, path: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ENTITIES
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or any(v not in ENTITIES for v in value):
        problems.append(f"{path}: must be a non-empty list of entities among {', '.join(ENTITIES)}")
        return ENTITIES
    return tuple(dict.fromkeys(value))


def _rule(value: Any, path: str, problems: list[str]) -> PriorityRule | None:
    if not isinstance(value, dict):
        problems.append(f"{path}: must be an object such as {_EXAMPLE}")
        return None
    before = len(problems)
    problems += [
        f"{path}.{k}: unknown key; allowed keys are {', '.join(sorted(_RULE_KEYS))}"
        for k in sorted(set(value) - _RULE_KEYS)
    ]
    name = value.get("priority")
    if not isinstance(name, str) or not name.strip():
        problems.append(f'{path}.priority: must be the name of a Jira priority, e.g. "High"')
    amount = _amount(value.get("amount_at_least"), f"{path}.amount_at_least", problems)
    days = _days(value.get("due_within_days"), f"{path}.due_within_days", problems)
    entities = _entities(value.get("entities"), f"{path}.entities", problems)
    if value.get("amount_at_least") is None and value.get("due_within_days") is None:
        problems.append(
            f"{path}: give amount_at_least and/or due_within_days (a rule without one matches all)"
        )
    if days is not None and not any(SPECS[e].due_date_field for e in entities):
        problems.append(
            f"{path}.due_within_days: none of {', '.join(entities)} has a due date; "
            'limit the rule to "entities": ["purchase_invoices"]'
        )
    if len(problems) > before:
        return None
    return PriorityRule(str(name).strip(), amount, days, entities)


def parse_priority_rules(value: Any, problems: list[str]) -> tuple[PriorityRule, ...]:
    """The ``priority_rules`` list (absent or null: no rules, Jira's default priority)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"priority_rules: must be a list of rules such as [{_EXAMPLE}]")
        return ()
    rules = [_rule(v, f"priority_rules[{i}]", problems) for i, v in enumerate(value)]
    return tuple(r for r in rules if r is not None)


def priority_for(
    rules: tuple[PriorityRule, ...], entity: str, record: Mapping[str, Any], today: date
) -> str | None:
    """The first matching rule's priority name, or None (the issue keeps whatever priority it has)."""
    return next((r.priority for r in rules if r.applies(entity, record, today)), None)
