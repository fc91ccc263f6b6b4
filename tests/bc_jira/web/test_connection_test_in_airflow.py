"""The Test button and the connection forms in a real ``airflow api-server`` (with the plugin), against the
sandbox: ``POST /api/v2/connections/test`` as the UI's list and a form send it, then the same clicked in
Chromium. Our hooks' messages must reach the user, for right and wrong secrets, and no secret is shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from bc_jira.hooks.jira import JiraCloudHook
from bc_jira.hooks.jira_connection import JiraSettings
from bc_jira.store import StateStore
from tests.conftest import REPO
from tests.support.api_server import ApiServer, conn_env
from tests.support.webdriver import Browser, need_browser

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.conftest import SandboxProcess

pytestmark = pytest.mark.slow
DOCS = REPO / "docs"
TOAST = "[data-scope=toast][data-part=root]"
TEST_ROUTE = "/connections/test"  # under /api/v2


class Setup:
    """One api-server with Test enabled, the sandbox's two connections stored in its metadata DB."""

    def __init__(self, server: ApiServer, sandbox: SandboxProcess, state_url: str) -> None:
        self.server, self.sandbox, self.state_url = server, sandbox, state_url
        self.creds: dict[str, Any] = sandbox.control("GET", "/_sandbox/credentials")
        env = sandbox.env()
        self.stored = {
            "bc_default": json.loads(env["AIRFLOW_CONN_BC_DEFAULT"]),
            "jira_default": json.loads(env["AIRFLOW_CONN_JIRA_DEFAULT"]),
        }

    def api(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.server.url}/api/v2{path}", json=body, timeout=60)

    def store(self, conn_id: str, spec: dict[str, Any]) -> None:
        self.api("DELETE", f"/connections/{conn_id}")
        body = {
            "connection_id": conn_id,
            "conn_type": spec["conn_type"],
            "login": spec.get("login"),
            "password": spec.get("password"),
            "extra": json.dumps(spec.get("extra") or {}),
        }
        resp = self.api("POST", "/connections", body)
        assert resp.status_code == 201, resp.text

    def list_body(self, conn_id: str) -> dict[str, Any]:
        """What Airflow 3.3.2's Connections list posts on Test: the row as GET returns it, port 0."""
        row = self.api("GET", f"/connections/{conn_id}").json()
        return {
            "conn_type": row["conn_type"],
            "connection_id": row["connection_id"],
            "description": row["description"] or "",
            "extra": row["extra"] or "{}",
            "host": row["host"] or "",
            "login": row["login"] or "",
            "password": row["password"] or "",
            "port": 0,  # Number(null)
            "schema": row["schema"] or "",
        }

    def test(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resp = self.api("POST", TEST_ROUTE, body)
        return resp.status_code, resp.json()

    def ensure_jira_grant(self) -> None:
        """What ``bc_jira_connect`` does first: exchange the bootstrap refresh token into the state store."""
        store = StateStore.from_url(self.state_url)
        row = store.get_token("jira:jira_default")
        if row is not None and row.refresh_token_enc:
            return
        c, extra = self.creds, self.stored["jira_default"]["extra"]
        settings = JiraSettings(
            auth="oauth2",
            site_url=c["site_url"],
            client_id=c["atlassian_client_id"],
            client_secret=c["atlassian_client_secret"],
            redirect_uri=c["redirect_uri"],
            auth_url=extra["auth_url"],
            api_url=extra["api_url"],
            refresh_token=c["refresh_token"],
        )
        assert JiraCloudHook(settings=settings, store=store).myself()["accountId"]

    def stored_extra(self, conn_id: str) -> dict[str, Any]:
        """The stored extra in plain text, as ``airflow connections get`` reads the metadata DB."""
        out = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "connections", "get", conn_id, "-o", "json"],
            env=self.server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])[0]["extra_dejson"]


@pytest.fixture(scope="module")
def airflow_ui(sandbox_server: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("conn-test")
    sandbox_server.reset()
    state = tmp / "state.db"
    env = {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        **conn_env("bc_jira_db", {"conn_type": "sqlite", "host": str(state)}),
    }
    server = ApiServer(tmp / "airflow", env, plugins=REPO / "plugins")
    try:
        setup = Setup(server, sandbox_server, f"sqlite:///{state}")
        for conn_id, spec in setup.stored.items():
            setup.store(conn_id, spec)
        yield setup
    finally:
        server.stop()


# -- the API, as the UI calls it -----------------------------------------------------------------------------


def test_the_list_body_reaches_the_bc_hook_right_and_wrong_secret(airflow_ui: Setup) -> None:
    ok = airflow_ui.test(airflow_ui.list_body("bc_default"))
    assert ok == (200, ok[1]), ok
    assert ok[1]["status"] is True, ok
    assert ok[1]["message"].startswith("Connected to Business Central environment 'production', company")
    wrong = airflow_ui.api(
        "PATCH", "/connections/bc_default", {**_patch(airflow_ui, "bc_default"), "password": "WRONG-1"}
    )
    assert wrong.status_code == 200, wrong.text
    try:
        status, body = airflow_ui.test(airflow_ui.list_body("bc_default"))
        assert status == 200, body
        assert body["status"] is False
        assert "Entra rejected the client secret" in body["message"], body
        assert "WRONG-1" not in body["message"]
    finally:
        airflow_ui.store("bc_default", airflow_ui.stored["bc_default"])


def test_a_form_body_with_its_own_secret_is_tested_as_typed(airflow_ui: Setup) -> None:
    """A body carrying a typed secret (not ``***``) is tested on its own, stored secrets not reused."""
    body = {**airflow_ui.list_body("bc_default"), "password": "TYPED-WRONG-2", "port": 0}
    status, answer = airflow_ui.test(body)
    assert status == 200, answer
    assert answer["status"] is False
    assert "Entra rejected the client secret" in answer["message"]
    right = {**body, "password": airflow_ui.creds["bc_client_secret"]}
    right["extra"] = json.dumps(airflow_ui.stored["bc_default"]["extra"])
    status, answer = airflow_ui.test(right)
    assert (status, answer["status"]) == (200, True), answer
    assert airflow_ui.creds["bc_client_secret"] not in json.dumps(answer)


def test_jira_without_a_stored_grant_says_what_to_do_and_spends_nothing(airflow_ui: Setup) -> None:
    other_site = {**airflow_ui.stored["jira_default"]}
    other_site["extra"] = {**other_site["extra"], "site_url": "https://not-yet-connected.atlassian.net"}
    airflow_ui.store("jira_other", other_site)
    before = airflow_ui.sandbox.stats()["events"].get("atlassian.token.refresh", 0)
    status, body = airflow_ui.test(airflow_ui.list_body("jira_other"))
    assert status == 200, body
    assert body["status"] is False
    assert body["message"].startswith("Not tested yet: no Jira grant is stored.")
    assert "Trigger the bc_jira_connect DAG once" in body["message"]
    assert "/bc-jira/jira/oauth/start" in body["message"]
    assert airflow_ui.sandbox.stats()["events"].get("atlassian.token.refresh", 0) == before
    airflow_ui.api("DELETE", "/connections/jira_other")


def test_jira_oauth_right_and_wrong_client_secret(airflow_ui: Setup) -> None:
    airflow_ui.ensure_jira_grant()
    events = airflow_ui.sandbox.stats()["events"]
    status, body = airflow_ui.test(airflow_ui.list_body("jira_default"))
    assert (status, body["status"]) == (200, True), body
    assert body["message"].startswith(f"Connected to Jira {airflow_ui.creds['site_url']} (cloudId ")
    assert "via OAuth 2.0" in body["message"]
    after = airflow_ui.sandbox.stats()["events"]
    assert after.get("atlassian.grant.revoked", 0) == events.get("atlassian.grant.revoked", 0) == 0
    names = [r.name for r in StateStore.from_url(airflow_ui.state_url).list_tokens("jira:")]
    assert names == ["jira:jira_default"], "nothing stored under the test's transient id"
    # The stored access token is still valid for an hour: Test refreshes the stored grant with the typed
    # secret anyway, so a wrong one fails now, and Atlassian spends no refresh token on a rejected client.
    store = StateStore.from_url(airflow_ui.state_url)
    row = store.get_token("jira:jira_default")
    assert row.expires_at > time.time() + 3000
    status, body = airflow_ui.test({**airflow_ui.list_body("jira_default"), "password": "BAD-SECRET-3"})
    assert (status, body["status"]) == (200, False), body
    assert body["message"].startswith("Atlassian rejected the OAuth client id/secret"), body
    assert "BAD-SECRET-3" not in body["message"]
    kept = store.get_token("jira:jira_default")
    assert (kept.refresh_token_enc, kept.access_token_enc) == (row.refresh_token_enc, row.access_token_enc)
    assert "last_refresh_error" not in (kept.meta or {})
    status, body = airflow_ui.test(airflow_ui.list_body("jira_default"))
    assert (status, body["status"]) == (200, True), body
    assert store.get_token("jira:jira_default").refresh_token_enc != row.refresh_token_enc  # rotated, stored
    after = airflow_ui.sandbox.stats()["events"]
    assert after.get("atlassian.grant.revoked", 0) == after.get("atlassian.token.reuse_in_leeway", 0) == 0


def _basic_spec(setup: Setup) -> dict[str, Any]:
    """A basic-auth Jira connection as the form fills it: site URL, email and API token as extras."""
    c = setup.creds
    extra = {
        "auth": "basic",
        "site_url": f"{setup.sandbox.url}/site",
        "email": c["jira_email"],
        "api_token": c["jira_api_token"],
    }
    return {"conn_type": "jira_cloud", "extra": extra}


def test_jira_basic_auth_with_the_forms_own_fields(airflow_ui: Setup) -> None:
    c = airflow_ui.creds
    spec = _basic_spec(airflow_ui)
    airflow_ui.store("jira_basic", spec)
    try:
        row = airflow_ui.api("GET", "/connections/jira_basic").json()
        assert json.loads(row["extra"])["api_token"] == "***"
        status, body = airflow_ui.test(airflow_ui.list_body("jira_basic"))
        assert (status, body["status"]) == (200, True), body
        assert "via basic auth (email + API token)" in body["message"]
        spec["extra"] = {**spec["extra"], "api_token": "BAD-TOKEN-4"}
        airflow_ui.store("jira_basic", spec)
        status, body = airflow_ui.test(airflow_ui.list_body("jira_basic"))
        assert (status, body["status"]) == (200, False), body
        assert f"Jira rejected the email/API token for {c['jira_email']}" in body["message"]
        assert "BAD-TOKEN-4" not in body["message"]
    finally:
        airflow_ui.api("DELETE", "/connections/jira_basic")


def test_every_secret_is_redacted_by_the_api(airflow_ui: Setup) -> None:
    bc = airflow_ui.api("GET", "/connections/bc_default").json()
    jira = airflow_ui.api("GET", "/connections/jira_default").json()
    assert bc["password"] == jira["password"] == "***"
    assert json.loads(bc["extra"])["client_state"] == "***"
    assert {k: v for k, v in json.loads(jira["extra"]).items() if v == "***"}.keys() == {
        "webhook_secret",
        "refresh_token",
    }
    listing = airflow_ui.api("GET", "/connections").text
    for secret in ("bc_client_state", "bc_client_secret", "atlassian_client_secret", "refresh_token"):
        assert airflow_ui.creds[secret] not in listing, secret


def test_other_types_keep_airflows_own_check(airflow_ui: Setup) -> None:
    """The middleware is scoped to our types: a portless ``http`` connection still gets Airflow's 400."""
    airflow_ui.store("plain_http", {"conn_type": "http", "login": "u", "password": "p-secret"})
    try:
        status, body = airflow_ui.test(airflow_ui.list_body("plain_http"))
        assert status == 400, body
        assert "host or port to test differs" in body["detail"]
    finally:
        airflow_ui.api("DELETE", "/connections/plain_http")


def _patch(setup: Setup, conn_id: str) -> dict[str, Any]:
    row = setup.api("GET", f"/connections/{conn_id}").json()
    return {k: row[k] for k in ("connection_id", "conn_type", "login", "password", "extra")}


# -- the same, clicked in Chromium ----------------------------------------------------------------------


def _row_button(browser: Browser, conn_id: str, label: str) -> str:
    """The row's button (waiting for the list to show the row)."""
    script = (
        "return [...document.querySelectorAll('tbody tr')]"
        ".find(r => [...r.querySelectorAll('td')].some(td => td.innerText.trim() === arguments[0]))"
        "?.querySelector(`button[aria-label='${arguments[1]}']`) || null"
    )
    browser.wait(lambda: browser.run(script, conn_id, label), timeout=30, what=f"{label} of {conn_id}")
    return browser.element(script, conn_id, label)


def _toasts(browser: Browser, expect: str) -> list[str]:
    texts = browser.run(f"return [...document.querySelectorAll('{TOAST}')].map(t => t.innerText)")
    return [t for t in texts if expect in t]


def _click_test(browser: Browser, conn_id: str, expect: str) -> str:
    """Click the row's Test button; the text of the new toast that shows ``expect``."""
    before = len(_toasts(browser, expect))
    browser.click(_row_button(browser, conn_id, "Test Connection"))
    browser.wait(
        lambda: len(_toasts(browser, expect)) > before, timeout=60, what=f"a new toast with {expect!r}"
    )
    return _toasts(browser, expect)[-1]


def _open_form(browser: Browser, conn_id: str, section: str = "Extra Fields") -> dict[str, Any]:
    """Open the row's Edit form at ``section``; its labels and its inputs (name, type, value)."""
    browser.click(_row_button(browser, conn_id, "Edit Connection"))
    browser.find("[role=dialog] input[name=login]")
    time.sleep(1)  # the extra fields render after the connection type's metadata
    trigger = (
        "return [...document.querySelectorAll('[role=dialog] button')]"
        ".find(b => b.innerText.trim() === arguments[0])"
    )
    if browser.attribute(browser.element(trigger, section), "aria-expanded") != "true":
        browser.click(browser.element(trigger, section))  # the accordion a user opens to see them
    browser.wait(
        lambda: browser.attribute(browser.element(trigger, section), "aria-expanded") == "true",
        what=f"{section} shown",
    )
    time.sleep(0.5)
    return browser.run(
        "const d = document.querySelector('[role=dialog]');"
        "return {text: [...d.querySelectorAll('label')].map(l => l.textContent.trim()).join('\\n'),"
        "inputs: [...d.querySelectorAll('input')].map("
        "i => ({name: i.name, type: i.type, value: i.value}))}"
    )


def _close_form(browser: Browser) -> None:
    browser.click(browser.find("[role=dialog] button[aria-label=Close]"))
    browser.wait(
        lambda: not browser.run("return document.querySelector('[role=dialog]')"), what="form closed"
    )


def _save_form(browser: Browser) -> None:
    browser.click(
        browser.element(
            "return [...document.querySelectorAll('[role=dialog] button')]"
            ".find(b => b.innerText.trim() === 'Save')"
        )
    )
    browser.wait(lambda: not browser.run("return document.querySelector('[role=dialog]')"), what="form saved")


def _show_secrets(browser: Browser) -> None:
    """Scroll the form so its last secret extra (masked) is in the screenshot."""
    browser.run(
        "const s = [...document.querySelectorAll('[role=dialog] input[type=password][name^=element_]')];"
        "s.length && s[s.length - 1].scrollIntoView({block: 'center'})"
    )
    time.sleep(0.3)


def _shot(browser: Browser, name: str, tmp: Path) -> None:
    browser.screenshot(tmp / name)
    if os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1":
        browser.screenshot(DOCS / name)


def _inputs(form: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {i["name"]: i for i in form["inputs"] if i["name"]}


def test_forms_and_test_button_clicked_in_the_airflow_ui(airflow_ui: Setup, tmp_path: Path) -> None:
    need_browser()
    airflow_ui.ensure_jira_grant()
    airflow_ui.store("jira_basic", _basic_spec(airflow_ui))
    browser = Browser(tmp_path / "profile", height=1000)
    try:
        browser.get(f"{airflow_ui.server.url}/connections")
        browser.wait(
            lambda: browser.run("return document.querySelectorAll('tbody tr').length >= 2"), what="rows"
        )

        # the BC form: one label per fact, every secret masked and redacted
        form = _open_form(browser, "bc_default")
        for label in ("Client ID (Entra application)", "Client secret", "Tenant ID", "Client state"):
            assert label in form["text"], form["text"]
        assert "Host" not in form["text"].splitlines()
        fields = _inputs(form)
        assert fields["password"]["type"] == fields["element_client_state"]["type"] == "password"
        assert fields["password"]["value"] == fields["element_client_state"]["value"] == "***"
        assert airflow_ui.creds["bc_client_state"] not in json.dumps(form)
        _show_secrets(browser)
        _shot(browser, "connection-form-bc.png", tmp_path)
        _close_form(browser)

        # the Jira form: one Site URL, labels per auth mode, secrets masked. Airflow's edit form shows the
        # extras a connection has: an oauth2 one shows the OAuth fields, a basic one the basic fields.
        form = _open_form(browser, "jira_default")
        text = form["text"]
        assert text.splitlines().count("Site URL") == 1, text
        for label in (
            "OAuth client ID (oauth2)",
            "OAuth client secret (oauth2)",
            "Redirect URI (oauth2)",
            "Webhook secret",
            "Bootstrap refresh token (oauth2)",
        ):
            assert label in text, (label, text)
        assert "Client ID / email" not in text
        assert "Host" not in text.splitlines()
        fields = _inputs(form)
        for name in ("password", "element_webhook_secret", "element_refresh_token"):
            assert fields[name]["type"] == "password", name
            assert fields[name]["value"] == "***", name
        _show_secrets(browser)
        _shot(browser, "connection-form-jira.png", tmp_path)
        _close_form(browser)
        form = _open_form(browser, "jira_basic")
        assert {"Site URL", "Email (basic auth)", "API token (basic auth)"} <= set(form["text"].splitlines())
        fields = _inputs(form)
        assert fields["element_api_token"]["type"] == "password"
        assert fields["element_api_token"]["value"] == "***"
        assert fields["element_email"]["value"] == airflow_ui.creds["jira_email"]
        _show_secrets(browser)
        _shot(browser, "connection-form-jira-basic.png", tmp_path)
        _close_form(browser)

        # Test from the list, right secrets: our hooks' success messages
        toast = _click_test(browser, "bc_default", "Connected to Business Central")
        assert "Test Connection Successful" in toast
        _shot(browser, "connection-test-bc.png", tmp_path)
        toast = _click_test(browser, "jira_default", "Connected to Jira")
        assert "via OAuth 2.0" in toast
        _shot(browser, "connection-test-jira.png", tmp_path)
        toast = _click_test(browser, "jira_basic", "via basic auth (email + API token)")
        assert "Test Connection Successful" in toast

        # a wrong secret typed into the form and saved: the hook's reason, not "Bad Request"
        _open_form(browser, "bc_default", "Standard Fields")
        secret = browser.find("[role=dialog] input[name=password]")
        browser.clear(secret)
        browser.type_text(secret, "WRONG-UI-SECRET-5")
        _save_form(browser)
        toast = _click_test(browser, "bc_default", "Entra rejected the client secret")
        assert "Test Connection Failed" in toast
        assert "Bad Request" not in toast
        assert "WRONG-UI-SECRET-5" not in toast
        _shot(browser, "connection-test-bc-wrong-secret.png", tmp_path)
        assert airflow_ui.stored_extra("bc_default")["client_state"] == airflow_ui.creds["bc_client_state"], (
            "saving the form kept the real client_state, not its ***"
        )

        # and the right one typed again: green
        _open_form(browser, "bc_default", "Standard Fields")
        secret = browser.find("[role=dialog] input[name=password]")
        browser.clear(secret)
        browser.type_text(secret, airflow_ui.creds["bc_client_secret"])
        _save_form(browser)
        _click_test(browser, "bc_default", "Connected to Business Central")
        assert airflow_ui.creds["bc_client_secret"] not in browser.run("return document.body.innerText")
    finally:
        browser.close()
