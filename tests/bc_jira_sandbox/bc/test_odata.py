"""The pure OData parts: a field value checked like BC; a page cut by key order, $skip/$skiptoken, $top."""

from __future__ import annotations

import pytest

from bc_jira_sandbox.bc.entities import BcError, checked_value
from bc_jira_sandbox.bc.odata import ListQuery, _orderby, _token_encode, page_of


def _query(**over: object) -> ListQuery:
    base: dict[str, object] = {
        "pred": None,
        "select": None,
        "order": _orderby("vendors", "number"),
        "expand": [],
        "top": None,
        "skip": None,
        "size": 2,
        "honoured": False,
        "token": None,
    }
    base.update(over)
    return ListQuery(**base)  # type: ignore[arg-type]


ROWS = [{"id": f"{i:08d}-0000-0000-0000-000000000000", "number": f"V{i:03d}"} for i in (3, 1, 2, 5, 4)]


def test_page_of_orders_by_key_and_says_whether_more_follow() -> None:
    page, served, more = page_of("vendors", _query(), ROWS)
    assert [r["number"] for r in page] == ["V001", "V002"]
    assert (served, more) == (0, True)


def test_page_of_continues_after_the_skiptoken_key_and_honours_top() -> None:
    order = _orderby("vendors", "number")
    first, _, _ = page_of("vendors", _query(), ROWS)
    token = _token_encode("vendors", order, first[-1], 2)
    page, served, more = page_of("vendors", _query(token=token, top=3), ROWS)
    assert [r["number"] for r in page] == ["V003"]
    assert (served, more) == (2, False)
    page, _, _ = page_of("vendors", _query(skip=3, size=10), ROWS)
    assert [r["number"] for r in page] == ["V004", "V005"]


def test_checked_value_refuses_like_bc() -> None:
    assert checked_value("vendors", "displayName", "ACME", api=True) == "ACME"
    with pytest.raises(BcError) as unknown:
        checked_value("vendors", "nope", 1, api=True)
    assert unknown.value.code == "BadRequest_PropertyNotFound"
    with pytest.raises(BcError) as read_only:
        checked_value("vendors", "id", "x", api=True)
    assert read_only.value.code == "BadRequest_MethodNotAllowed"
    with pytest.raises(BcError) as wrong_type:
        checked_value("vendors", "displayName", 5, api=True)
    assert "Edm.String" in wrong_type.value.message
