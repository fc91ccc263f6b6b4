"""The sandbox's shared machinery over real HTTP: faults, latency, stats, clock, credentials, airflow-env."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import SandboxProcess


def test_credentials_are_stable_and_complete(sandbox):
    creds = sandbox.control("GET", "/_sandbox/credentials")
    for key in (
        "tenant_id",
        "company_id",
        "bc_client_id",
        "bc_client_secret",
        "bc_client_state",
        "atlassian_client_id",
        "atlassian_client_secret",
        "cloud_id",
        "site_url",
        "refresh_token",
        "webhook_secret",
        "project_key",
    ):
        assert creds[key], key
    sandbox.reset()
    again = sandbox.control("GET", "/_sandbox/credentials")
    assert {k: again[k] for k in ("tenant_id", "cloud_id", "bc_client_secret")} == {
        k: creds[k] for k in ("tenant_id", "cloud_id", "bc_client_secret")
    }


def test_airflow_env_prints_connections_for_this_sandbox(sandbox):
    env = sandbox.env()
    assert set(env) == {"AIRFLOW_CONN_BC_DEFAULT", "AIRFLOW_CONN_JIRA_DEFAULT", "AIRFLOW_VAR_BC_JIRA_CONFIG"}
    bc = json.loads(env["AIRFLOW_CONN_BC_DEFAULT"])
    jira = json.loads(env["AIRFLOW_CONN_JIRA_DEFAULT"])
    assert bc["conn_type"] == "business_central"
    assert bc["extra"]["api_url"] == f"{sandbox.url}/v2.0"
    assert bc["extra"]["tenant_id"] == sandbox.creds["tenant_id"]
    assert jira["conn_type"] == "jira_cloud"
    assert jira["extra"]["auth"] == "oauth2"
    assert jira["extra"]["webhook_secret"] == sandbox.creds["webhook_secret"]
    assert json.loads(env["AIRFLOW_VAR_BC_JIRA_CONFIG"])["project_key"] == "FIN"


def test_airflow_env_without_sandbox_says_how_to_start_one():
    import subprocess
    import sys

    from tests.conftest import _free_port

    port = _free_port()
    out = subprocess.run(
        [sys.executable, "-m", "bc_jira_sandbox", "airflow-env", "--port", str(port)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert f"serve --port {port}" in out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize("kind", ["429", "503"])
def test_throttling_faults_carry_retry_after(sandbox, kind):
    sandbox.faults(rules=[{"kind": kind, "path": "/v2.0/", "count": 1, "retry_after": 3}])
    resp = requests.get(f"{sandbox.url}/v2.0/x/production/api/v2.0/companies", timeout=5)
    assert resp.status_code == int(kind)
    assert resp.headers["Retry-After"] == "3"
    assert "error" in resp.json()  # BC's error shape
    # count=1: the next call is not faulted any more
    again = requests.get(f"{sandbox.url}/v2.0/x/production/api/v2.0/companies", timeout=5)
    assert again.status_code != int(kind)


def test_fault_path_pattern_only_hits_matching_calls(sandbox):
    sandbox.faults(**{"500": 1.0, "path": "/ex/jira/"})
    jira = requests.get(f"{sandbox.url}/ex/jira/abc/rest/api/3/myself", timeout=5)
    assert jira.status_code == 500
    assert jira.json()["errorMessages"]
    other = requests.get(f"{sandbox.url}/v2.0/x/production/api/v2.0/companies", timeout=5)
    assert other.status_code != 500
    assert sandbox.stats()["faults"] == {"500": 1}


def test_timeout_fault_makes_the_client_time_out(sandbox):
    sandbox.faults(rules=[{"kind": "timeout", "path": "/v2.0/", "timeout_s": 2, "count": 1}])
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{sandbox.url}/v2.0/x/production/api/v2.0/companies", timeout=(2, 0.5))


def test_bad_fault_kind_is_a_clear_400(sandbox):
    resp = requests.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [{"kind": "404"}]}, timeout=5)
    assert resp.status_code == 400
    assert "unknown fault kind" in resp.text


def test_latency_is_added_to_api_calls_not_control_calls(sandbox):
    sandbox.options(latency_ms=300)
    start = time.monotonic()
    requests.get(f"{sandbox.url}/v2.0/x/production/api/v2.0/companies", timeout=5)
    api = time.monotonic() - start
    start = time.monotonic()
    sandbox.stats()
    control = time.monotonic() - start
    assert api >= 0.3
    assert control < 0.3


def test_stats_count_per_method_and_route_template(sandbox):
    for _ in range(3):
        requests.get(f"{sandbox.url}/_sandbox/health", timeout=5)  # control calls are not counted
    requests.get(f"{sandbox.url}/nope/at/all", timeout=5)
    calls = sandbox.stats()["calls"]
    assert calls == {"GET (unmatched)": 1}


def test_clock_moves_forward(sandbox):
    before = sandbox.control("POST", "/_sandbox/clock", {"advance_s": 0})
    after = sandbox.control("POST", "/_sandbox/clock", {"advance_s": 86400})
    assert after["offset_s"] - before["offset_s"] == 86400
    sandbox.reset()
    assert sandbox.control("POST", "/_sandbox/clock", {})["offset_s"] == 0


def test_data_file_persists_across_restarts(tmp_path):
    data = tmp_path / "sandbox.pickle"
    first = SandboxProcess("--data", str(data), "--seed", "7")
    try:
        first.control("POST", "/_sandbox/clock", {"advance_s": 1234})
        creds = first.creds
        time.sleep(1.5)  # the saver thread flushes once a second
    finally:
        first.stop()
    assert data.exists()
    second = SandboxProcess("--data", str(data), "--seed", "7")
    try:
        assert second.creds["tenant_id"] == creds["tenant_id"]
        assert second.control("POST", "/_sandbox/clock", {})["offset_s"] == 1234
    finally:
        second.stop()


def test_drop_after_commit_applies_the_write_and_loses_the_answer(airflow_conns, sandbox):
    from bc_jira.entra import clear_token_cache
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.http import TransportError

    clear_token_cache()
    hook = BusinessCentralHook()
    vendor = next(v for v in hook.iter_records("vendors") if v["blocked"] == "")
    sandbox.faults(rules=[{"kind": "drop_after_commit", "method": "PATCH", "path": "/vendors", "count": 1}])
    with pytest.raises(TransportError, match="not retried"):
        hook.set_vendor_blocked(vendor["id"], "All", vendor["@odata.etag"])
    assert hook.get_record("vendors", vendor["id"])["blocked"] == "All"  # committed although the answer died
    assert sandbox.stats()["faults"] == {"drop_after_commit": 1}


def test_seed_draft_invoices_adds_only_drafts(sandbox):
    before = sandbox.control("POST", "/_sandbox/reset", {"vendors": 5, "invoices": 0, "orders": 0})
    assert before["counts"]["invoices"] == 0
    after = sandbox.control("POST", "/_sandbox/seed", {"draft_invoices": 40})
    assert after["counts"]["invoices"] == 40
    records = sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")
    items = records["value"] if isinstance(records, dict) else records
    assert {r["status"] for r in items} == {"Draft"}


# -- Jira rate limiting (https://developer.atlassian.com/cloud/jira/platform/rate-limiting) -------------

RESET_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$"  # yyyy-MM-ddTHH:mmZ, as Atlassian documents it


def _reset_at(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def _myself(sandbox: SandboxProcess) -> requests.Response:
    c = sandbox.control("GET", "/_sandbox/credentials")
    return requests.get(
        f"{sandbox.url}/site/rest/api/3/myself", auth=(c["jira_email"], c["jira_api_token"]), timeout=10
    )


def test_jira_429_fault_asks_to_wait_minutes_with_jira_headers(sandbox):
    sandbox.faults(rules=[{"kind": "429", "path": "/rest/api/3/", "count": 1, "retry_after": 300}])
    before = datetime.now(UTC)
    resp = _myself(sandbox)
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "300"
    assert resp.headers["RateLimit-Reason"] == "jira-quota-tenant-based"
    reset = resp.headers["X-RateLimit-Reset"]
    assert re.match(RESET_RE, reset)
    # request time + Retry-After, at minute precision, never earlier than asked
    assert before + timedelta(seconds=300) - timedelta(minutes=1) < _reset_at(reset)
    assert _reset_at(reset) <= before + timedelta(seconds=300 + 61)
    assert resp.json()["errorMessages"]  # Jira's error shape
    assert _myself(sandbox).status_code == 200  # count=1


def test_throttling_fault_without_retry_after_sends_none(sandbox):
    sandbox.faults(rules=[{"kind": "429", "path": "/rest/api/3/", "count": 1, "retry_after": None}])
    resp = _myself(sandbox)
    assert resp.status_code == 429
    assert "Retry-After" not in resp.headers


def test_rate_budget_warns_near_the_limit_then_refuses_then_refills(sandbox):
    sandbox.control(
        "POST", "/_sandbox/rate_limit", {"limit": 10, "window_s": 3, "reason": "jira-burst-based"}
    )
    answers = [_myself(sandbox) for _ in range(11)]
    assert [r.status_code for r in answers] == [200] * 10 + [429]
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in answers[:10]]
    assert remaining == list(range(9, -1, -1))
    assert all(r.headers["X-RateLimit-Limit"] == "10" for r in answers)
    # "near the limit": successful answers once less than 20% of the budget is left
    near = [r.headers.get("X-RateLimit-NearLimit") for r in answers[:10]]
    assert near == [None] * 8 + ["true", "true"]
    assert "X-RateLimit-Reset" not in answers[0].headers
    assert re.match(RESET_RE, answers[9].headers["X-RateLimit-Reset"])
    assert all("RateLimit-Reason" not in r.headers for r in answers[:10])
    refused = answers[10]
    assert refused.headers["RateLimit-Reason"] == "jira-burst-based"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert re.match(RESET_RE, refused.headers["X-RateLimit-Reset"])
    assert sandbox.stats()["faults"] == {"rate_limit": 1}
    # a BC call is not charged to Jira's budget
    bc = requests.get(f"{sandbox.url}/v2.0/x/production/api/v2.0/companies", timeout=5)
    assert bc.status_code != 429
    assert "X-RateLimit-Limit" not in bc.headers
    time.sleep(int(refused.headers["Retry-After"]))
    again = _myself(sandbox)
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "9"
    sandbox.control("POST", "/_sandbox/rate_limit", {})
    assert "X-RateLimit-Limit" not in _myself(sandbox).headers


def test_rate_budget_429_can_come_without_retry_after(sandbox):
    sandbox.control("POST", "/_sandbox/rate_limit", {"limit": 0, "window_s": 60, "retry_after": False})
    resp = _myself(sandbox)
    assert resp.status_code == 429
    assert "Retry-After" not in resp.headers
    assert re.match(RESET_RE, resp.headers["X-RateLimit-Reset"])


def test_rate_budget_bad_settings_are_a_clear_400(sandbox):
    resp = requests.post(f"{sandbox.url}/_sandbox/rate_limit", json={"limit": "x", "window_s": 1}, timeout=5)
    assert resp.status_code == 400
    assert "limit" in resp.text
