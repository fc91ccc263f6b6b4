from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pytest

from bc_jira.config import (
    BLANK,
    ConfigError,
    Selection,
    decode_enum,
    default_config_document,
    encode_enum,
    parse_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def test_minimal_document_gets_every_default() -> None:
    cfg = parse_config('{"project_key": "FIN"}')
    assert cfg.project_key == "FIN"
    assert cfg.batch_size == 200
    assert cfg.overlap_seconds == 120
    assert cfg.search_settle_seconds == 60
    assert cfg.purchase_invoices.selection == Selection("status", ("Draft",))
    assert cfg.vendors.selection == Selection("blocked", ("Payment", "All"))
    assert cfg.purchase_orders.selection == Selection("status", ("In_x0020_Review",))
    assert cfg.purchase_invoices.done_action == "post"
    assert cfg.vendors.done_action == "unblock"
    assert cfg.purchase_orders.done_action == "none"
    assert cfg.purchase_invoices.issue_type == "Invoice"
    assert cfg.purchase_orders.issue_type == "Purchase Order"
    assert cfg.fields.record_id == "BC Record Id"
    assert cfg.fields.document_number == "BC Document No."
    assert cfg.entity("vendors").entity_set == "vendors"
    assert cfg.entity("purchase_orders").entity_set == "purchaseOrders"


def test_default_document_round_trips() -> None:
    doc = default_config_document("FIN", "https://businesscentral.dynamics.com/t/production")
    cfg = parse_config(json.dumps(doc))
    assert cfg == parse_config(doc)
    assert cfg.purchase_orders.selection.values == ("In_x0020_Review",)
    assert cfg.bc_web_client_url == "https://businesscentral.dynamics.com/t/production"


def test_every_problem_is_listed_with_key_and_fix() -> None:
    bad = {
        "project_key": "fin",
        "batch_size": 5000,
        "overlap_seconds": -1,
        "search_settle_seconds": "10",
        "bogus": 1,
        "labels": ["has space"],
        "fields": {"amount": "", "nope": "x"},
        "bc_web_client_url": "ftp://x",
        "assignees": [{"vendor_number": "V1"}, {"purchaser": "AH", "email": "not-an-email"}, "x"],
        "entities": {
            "purchase_invoices": {"done_action": "unblock", "selection": {"status": ["Drafts"]}},
            "vendors": {"enabled": "yes", "summary_template": "{nope}"},
            "purchase_orders": {"issue_type": "", "selection": {"blocked": ["All"]}},
            "customers": {},
        },
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(bad)
    msg = str(exc.value)
    expected_paths = [
        "project_key:",
        "batch_size:",
        "overlap_seconds:",
        "search_settle_seconds:",
        "bogus: unknown key",
        "labels[0]:",
        "fields.amount:",
        "fields.nope:",
        "bc_web_client_url:",
        "assignees[0]:",
        "assignees[1].email:",
        "assignees[2]:",
        "entities.purchase_invoices.done_action:",
        "entities.purchase_invoices.selection.status[0]: 'Drafts'",
        "entities.vendors.enabled:",
        "entities.vendors.summary_template: unknown placeholder {nope}",
        "entities.purchase_orders.issue_type:",
        "entities.purchase_orders.selection:",
        "entities.customers: unknown entity",
    ]
    for path in expected_paths:
        assert path in msg, path
    assert len(exc.value.problems) >= len(expected_paths)
    # the fix is named, not just the problem
    assert "use one of post, none" in msg
    assert "1 to 1000" in msg


@pytest.mark.parametrize("raw", [None, "", "{not json", "[1]"])
def test_unreadable_documents(raw) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert "bc_jira_config" in str(exc.value)


def test_selection_accepts_readable_and_encoded_enum_values() -> None:
    cfg = parse_config(
        {
            "project_key": "FIN",
            "entities": {
                "purchase_orders": {"selection": {"status": ["In Review", "Draft"]}},
                "vendors": {"selection": {"blocked": "All"}},
                "purchase_invoices": {"selection": {"status": ["In_x0020_Review"]}},
            },
        }
    )
    sel = cfg.purchase_orders.selection
    assert sel.values == ("In_x0020_Review", "Draft")
    assert sel.matches({"status": "In_x0020_Review"})
    assert sel.matches({"status": "In Review"})
    assert not sel.matches({"status": "Open"})
    assert sel.odata_filter() == "status eq 'In_x0020_Review' or status eq 'Draft'"
    assert cfg.vendors.selection.matches({"blocked": "All"})
    assert not cfg.vendors.selection.matches({"blocked": BLANK})
    assert not cfg.vendors.selection.matches({"blocked": " "})


def test_enum_codec() -> None:
    assert encode_enum("In Review") == "In_x0020_Review"
    assert encode_enum(" ") == BLANK
    assert encode_enum("") == BLANK
    assert decode_enum("In_x0020_Review") == "In Review"
    assert decode_enum(BLANK) == ""
    assert decode_enum(None) == ""


def test_assignee_rules() -> None:
    cfg = parse_config(
        {
            "project_key": "FIN",
            "assignees": [
                {"vendor_number": "V0001", "account_id": "acc-1"},
                {"purchaser": "ah", "email": "ap@example.com"},
            ],
        }
    )
    r1, r2 = cfg.assignees
    assert r1.applies({"vendorNumber": "v0001"}, "purchase_invoices")
    assert r1.applies({"number": "V0001"}, "vendors")
    assert not r1.applies({"vendorNumber": "V0002"}, "purchase_invoices")
    assert r2.applies({"purchaser": "AH"}, "purchase_orders")
    assert cfg.emails() == ("ap@example.com",)


def test_config_is_frozen() -> None:
    cfg = parse_config({"project_key": "FIN"})
    with pytest.raises(AttributeError):
        cfg.batch_size = 3  # type: ignore[misc]


def test_done_action_and_transition() -> None:
    cfg = parse_config(
        {
            "project_key": "FIN",
            "entities": {
                "purchase_invoices": {"done_action": "none", "resolved_transition": "Done", "enabled": False},
            },
        }
    )
    assert cfg.purchase_invoices.done_action == "none"
    assert cfg.purchase_invoices.resolved_transition == "Done"
    assert cfg.purchase_invoices.enabled is False
    with pytest.raises(ConfigError, match="resolved_transition"):
        parse_config({"project_key": "FIN", "entities": {"vendors": {"resolved_transition": ""}}})


def test_sandbox_airflow_env_config_is_valid() -> None:
    from bc_jira_sandbox.__main__ import airflow_env_lines

    creds = {
        k: "x"
        for k in (
            "bc_client_id",
            "bc_client_secret",
            "tenant_id",
            "environment",
            "company_id",
            "bc_client_state",
            "atlassian_client_id",
            "atlassian_client_secret",
            "site_url",
            "redirect_uri",
            "webhook_secret",
            "refresh_token",
        )
    }
    creds["project_key"] = "FIN"
    line = next(x for x in airflow_env_lines("http://127.0.0.1:1", creds) if "BC_JIRA_CONFIG" in x)
    import shlex

    cfg = parse_config(shlex.split(line.partition("=")[2])[0])
    assert cfg.project_key == "FIN"
    assert cfg.bc_web_client_url == "http://127.0.0.1:1/bc-web"


def test_rate_limit_settings_default_and_validated() -> None:
    cfg = parse_config('{"project_key": "FIN"}')
    assert (cfg.rate_limit.max_inline_wait_seconds, cfg.rate_limit.max_defer_seconds) == (120, 3900)
    doc = {"project_key": "FIN", "rate_limit": {"max_inline_wait_seconds": 5, "max_defer_seconds": 0}}
    assert parse_config(doc).rate_limit.max_defer_seconds == 0
    bad = {
        "project_key": "FIN",
        "rate_limit": {"max_inline_wait_seconds": -1, "max_defer_seconds": "1h", "x": 1},
    }
    with pytest.raises(ConfigError) as ei:
        parse_config(bad)
    problems = ei.value.problems
    assert any(p.startswith("rate_limit.max_inline_wait_seconds: -1") for p in problems)
    assert any(p.startswith("rate_limit.max_defer_seconds: '1h'") for p in problems)
    assert any(p.startswith("rate_limit.x: unknown key") for p in problems)
    with pytest.raises(ConfigError, match="rate_limit: must be an object"):
        parse_config({"project_key": "FIN", "rate_limit": 60})


def test_duplicate_transition() -> None:
    assert parse_config({"project_key": "FIN"}).duplicate_transition is None
    assert (
        parse_config({"project_key": "FIN", "duplicate_transition": " Done "}).duplicate_transition == "Done"
    )
    for bad in ("", "  ", 3, ["Done"]):
        with pytest.raises(ConfigError, match=r"duplicate_transition: must be a Jira transition"):
            parse_config({"project_key": "FIN", "duplicate_transition": bad})


def _run_one_task(dag_id: str, fn: Callable[[], object], tmp_dir: Path) -> tuple[str, list[str]]:
    """Run ``fn`` as the only task of a real ``dag.test()``; its state and what bc_jira.config logged."""
    import datetime as dt

    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG, task

    from tests.support.airflow_runs import sync_dags

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("bc_jira.config")
    logger.addHandler(handler)
    try:
        with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) as dag:
            task(task_id="load")(fn)()
        sync_dags()  # the dags-folder bundle row the DAG belongs to
        bag = DagBag(dag_folder=str(tmp_dir))
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)  # dag.test() needs the DAG serialized
        run = dag.test()
    finally:
        logger.removeHandler(handler)
    return str(run.state), records


@pytest.fixture
def db_config_variable(
    airflow_db: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], None]]:
    """Save ``bc_jira_config`` in the metadata DB (as Admin > Variables does); removed afterwards."""
    from airflow.models import Variable

    import bc_jira.config as config

    monkeypatch.setattr(config, "_shadow_checked", False)
    yield lambda value: Variable.set(config.VARIABLE_KEY, value)
    Variable.delete(config.VARIABLE_KEY)


def test_an_env_var_shadowing_the_ui_variable_is_logged_by_the_first_task(
    db_config_variable: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bc_jira.config import ENV_VARIABLE, load_config

    db_config_variable(json.dumps({"project_key": "UIV"}))
    monkeypatch.setenv(ENV_VARIABLE, json.dumps({"project_key": "ENV"}))
    seen: list[str] = []
    state, logged = _run_one_task(
        "t_config_shadowed", lambda: seen.append(load_config().project_key), tmp_path
    )
    assert state == "success", "Airflow reads the env var first"
    assert seen == ["ENV"], "Airflow reads the env var first"
    assert any(ENV_VARIABLE in m and "shadows" in m and "Admin > Variables" in m for m in logged), logged


def test_no_shadow_warning_when_only_the_ui_variable_exists(
    db_config_variable: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bc_jira.config import ENV_VARIABLE, load_config

    db_config_variable(json.dumps({"project_key": "UIV"}))
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    seen: list[str] = []
    state, logged = _run_one_task(
        "t_config_ui_only", lambda: seen.append(load_config().project_key), tmp_path
    )
    assert state == "success"
    assert seen == ["UIV"]
    assert not any("shadows" in m for m in logged), logged


def test_a_broken_json_ui_variable_fails_the_task_with_a_clear_message(
    db_config_variable: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bc_jira.config import ENV_VARIABLE, load_config

    db_config_variable('{"project_key": "FIN",}')
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    errors: list[str] = []

    def load() -> None:
        try:
            load_config()
        except ConfigError as exc:
            errors.append(str(exc))
            raise

    state, _ = _run_one_task("t_config_broken", load, tmp_path)
    assert state == "failed"
    assert errors, errors
    assert "not valid JSON" in errors[0], errors
    assert "line 1" in errors[0], errors
