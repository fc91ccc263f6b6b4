"""``jira_cloud`` connection fields: one field per fact in the form, older layouts still read."""

from __future__ import annotations

import pytest

from bc_jira.hooks.jira_connection import settings_from_connection

SITE = "https://acme.atlassian.net"


def test_basic_auth_reads_the_forms_own_fields() -> None:
    s = settings_from_connection(
        "j",
        None,
        None,
        None,
        {"auth": "basic", "site_url": SITE, "email": "a@x.io", "api_token": "tok-12345"},
    )
    assert (s.auth, s.site_url, s.email, s.api_token) == ("basic", SITE, "a@x.io", "tok-12345")
    assert "tok-12345" not in repr(s)


def test_basic_auth_still_reads_the_older_host_login_password_layout() -> None:
    s = settings_from_connection("j", "acme.atlassian.net", "a@x.io", "tok-12345", {"auth": "basic"})
    assert (s.site_url, s.email, s.api_token) == (SITE, "a@x.io", "tok-12345")


def test_basic_auth_prefers_the_extras_over_an_oauth_client_left_in_login_password() -> None:
    s = settings_from_connection(
        "j",
        None,
        "oauth-client-id",
        "oauth-client-secret",
        {"auth": "basic", "site_url": SITE, "email": "a@x.io", "api_token": "tok-12345"},
    )
    assert (s.email, s.api_token) == ("a@x.io", "tok-12345")


def test_basic_auth_names_every_missing_field_as_the_form_labels_it() -> None:
    with pytest.raises(ValueError, match="auth=basic") as err:
        settings_from_connection("j", None, None, None, {"auth": "basic"})
    for name in ("extra.site_url", "extra.email", "extra.api_token"):
        assert name in str(err.value)


def test_oauth2_uses_login_password_as_the_client_and_ignores_host() -> None:
    s = settings_from_connection(
        "j", "ignored.example", "cid", "csecret", {"site_url": SITE + "/", "refresh_token": "rt"}
    )
    assert (s.auth, s.site_url, s.client_id, s.client_secret) == ("oauth2", SITE, "cid", "csecret")
