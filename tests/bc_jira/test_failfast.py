"""Which errors fail a task at once (configuration, connections, credentials) and which keep their retries."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowRescheduleException

from bc_jira.config import ConfigError, parse_config
from bc_jira.failfast import ConnectionConfigError, fail_fast, fatal_message, wrapped
from bc_jira.hooks.jira_connection import settings_from_connection
from bc_jira.http import AuthError, RateLimited, ServerError, TransportError
from bc_jira.setup.connect import ConnectError


def _config_error() -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config({"project_key": "fin 1", "batch_size": "lots"})
    return info.value


def test_config_and_connection_errors_are_fatal_with_their_message() -> None:
    err = _config_error()
    assert fatal_message(err) == str(err)
    assert str(err).startswith("bc_jira_config is invalid (2 problem(s)):")
    assert fatal_message(ConnectError(["field 'BC Amount' not found"])) is not None
    msg = fatal_message(AirflowNotFoundException("The conn_id `jira_default` isn't defined"))
    assert msg is not None
    assert "define it" in msg
    auth = AuthError("Jira", "GET", "https://x/rest/api/3/myself", 401, "Unauthorized", "bad token")
    assert "credentials were refused" in str(fatal_message(auth))


def test_an_incomplete_connection_is_a_connection_config_error() -> None:
    with pytest.raises(ConnectionConfigError) as info:
        settings_from_connection("jira_default", None, "", "", {"auth": "oauth2"})
    assert str(info.value).startswith("connection 'jira_default' (auth=oauth2) is missing login (client id)")
    assert fatal_message(info.value) == str(info.value)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError still do


@pytest.mark.parametrize(
    "exc",
    [
        ServerError("BC", "GET", "https://x/v2.0/t/e/api/v2.0/companies", 503, "ServiceUnavailable", "busy"),
        RateLimited("Jira", "POST", "https://x/rest/api/3/issue/bulk", 429, None, "slow down"),
        TransportError("Jira", "GET", "https://x/rest/api/3/search/jql", None, None, "timed out"),
        RuntimeError("the state store did not answer"),
    ],
)
def test_transient_errors_keep_their_retries(exc: Exception) -> None:
    assert fatal_message(exc) is None

    @fail_fast
    def task() -> None:
        raise exc

    with pytest.raises(type(exc)):
        task()


def test_fail_fast_turns_a_config_error_into_one_clean_airflow_fail() -> None:
    err = _config_error()

    @fail_fast
    def task() -> int:
        raise err

    with pytest.raises(AirflowFailException) as info:
        task()
    assert str(info.value) == wrapped(str(err))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__  # no "during handling of the above exception" chain

    @fail_fast
    def deferring() -> None:
        raise AirflowRescheduleException(reschedule_date=None)  # type: ignore[arg-type]

    with pytest.raises(AirflowRescheduleException):
        deferring()
    assert fail_fast(lambda: 7)() == 7


def test_long_fix_texts_wrap_under_their_bullet() -> None:
    problem = "fields.amount: " + "the field must be a Number field; " * 6 + "run bc_jira_connect"
    text = wrapped(f"bc_jira_config is invalid (1 problem(s)):\n  - {problem}", width=60)
    lines = text.splitlines()
    assert lines[0] == "bc_jira_config is invalid (1 problem(s)):"
    assert lines[1].startswith("  - fields.amount: the field")
    assert len(lines) > 4
    assert all(len(line) <= 60 for line in lines)
    assert all(line.startswith("    ") and not line.startswith("     ") for line in lines[2:])
    assert " ".join(line.strip(" -") for line in lines[1:]) == problem
    assert wrapped("https://example.atlassian.net/" + "x" * 120, 60).count("\n") == 0  # URLs stay whole
