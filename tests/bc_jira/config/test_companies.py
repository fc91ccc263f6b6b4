"""``companies`` in bc_jira_config: parsing with every problem at once, identity, keys, overrides."""

from __future__ import annotations

import pytest

from bc_jira.config import ConfigError, parse_config
from bc_jira.config.companies import (
    CompanyError,
    ConnectionFacts,
    company_key,
    resolve_company,
    single_company,
    watermark_key,
)
from bc_jira.setup.companies import check_companies
from bc_jira.sync.companies import company_refs, resolve
from bc_jira.sync.lookup import company_clause, in_company

US = "11111111-1111-4111-8111-111111111111"
CA = "22222222-2222-4222-8222-222222222222"
DEFAULT = ConnectionFacts("production", US)


def _cfg(companies: object, **extra: object):
    return parse_config({"project_key": "FIN", "companies": companies, **extra})


def test_without_companies_the_connection_company_keeps_todays_names() -> None:
    cfg = parse_config({"project_key": "FIN"})
    assert cfg.companies == ()
    assert company_refs(cfg) == [{"index": -1, "label": ""}]
    one = single_company(DEFAULT)
    assert (one.default, one.store_key, one.watermark_key("vendors")) == (
        True,
        "",
        "bc_jira_watermark_vendors",
    )
    assert one.config(cfg) is cfg  # no company field, no label: issues as before


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(
            [
                {"name": "CRONUS USA"},
                {"id": "not-a-guid", "project_key": "ca", "colour": "red"},
                {"name": "cronus usa"},
                {"id": CA, "connection": "bc ca", "selection": {"vendors": {"blocked": ["Nope"]}}},
                {},
                "CRONUS",
            ]
        )
    text = "\n".join(err.value.problems)
    assert "companies[1].id: 'not-a-guid' is not a company id" in text
    assert "companies[1].project_key: 'ca' is not a Jira project key" in text
    assert "companies[1].colour: unknown key" in text
    assert "companies[2]: the same company as companies[0] ('cronus usa' on bc_default)" in text
    assert "companies[3].connection: 'bc ca' is not an Airflow connection id" in text
    assert "companies[3].selection.vendors.blocked[0]: 'Nope' is not a BC blocked value" in text
    assert 'companies[4]: needs "id"' in text
    assert "companies[5]: must be an object" in text
    with pytest.raises(ConfigError, match="companies: must be a non-empty list"):
        _cfg([])
    with pytest.raises(ConfigError, match="the same company as companies"):
        _cfg([{"id": US}, {"id": US.upper()}])


def test_the_current_company_listed_again_is_the_default_one() -> None:
    """An existing deployment adding ``companies`` (its company + a new one): the current one keeps its rows,
    Variables and issues; the other gets its own key, Variables, label and field value."""
    cfg = _cfg([{"id": US.upper(), "name": "CRONUS USA"}, {"name": "CRONUS Canada", "project_key": "CA"}])
    names = {"bc_default": {"CRONUS Canada": CA}}
    us = resolve(cfg, 0, facts=lambda conn: DEFAULT, names=lambda: names)
    ca = resolve(cfg, 1, facts=lambda conn: DEFAULT, names=lambda: names)
    assert (us.default, us.store_key, us.watermark_key("purchase_invoices")) == (
        True,
        "",
        "bc_jira_watermark_purchase_invoices",
    )
    assert not ca.default
    assert ca.store_key == ca.key == company_key("bc_default", "production", CA)
    assert len(ca.key) == 8
    assert ca.watermark_key("vendors") == f"bc_jira_watermark_vendors__{ca.key}"
    assert watermark_key("vendors", ca.key) == ca.watermark_key("vendors")
    ca_cfg, us_cfg = ca.config(cfg), us.config(cfg)
    assert (ca_cfg.project_key, us_cfg.project_key) == ("CA", "FIN")
    assert ca_cfg.labels == ("bc-jira", f"bc-company-{ca.key}")
    assert us_cfg.company is not None
    assert (us_cfg.company.default, us_cfg.company.name) == (True, "CRONUS USA")
    # the same GUID in another environment (a copy of the company) is another company, another key
    assert company_key("bc_default", "sandbox", US) != us.key
    with pytest.raises(CompanyError, match="run the bc_jira_connect DAG"):
        resolve(cfg, 1, facts=lambda conn: DEFAULT, names=dict)


def test_company_overrides_merge_over_the_global_config() -> None:
    cfg = _cfg(
        [
            {
                "id": CA,
                "connection": "bc_canada",
                "selection": {"purchase_invoices": {"status": ["Open"]}},
                "assignees": [{"vendor_number": "V1", "account_id": "acc-ca"}],
                "labels": ["canada"],
            }
        ],
        labels=["bc-jira", "ap"],
        assignees=[{"vendor_number": "V1", "account_id": "acc-us"}],
    )
    ca = resolve_company(cfg.companies[0], ConnectionFacts("production", None), DEFAULT, {})
    assert not ca.default  # another connection: never the default company, even with the same GUID
    merged = ca.config(cfg)
    assert merged.purchase_invoices.selection.values == ("Open",)
    assert merged.vendors.selection == cfg.vendors.selection
    assert [r.account_id for r in merged.assignees] == ["acc-ca"]
    assert merged.labels == ("bc-jira", "ap", "canada", f"bc-company-{ca.key}")
    with pytest.raises(ConfigError, match=r"companies\[0\].assignees\[0\]: needs exactly one of"):
        _cfg([{"id": CA, "assignees": [{"account_id": "x"}]}])


def test_connect_resolves_names_and_reports_unknown_ones() -> None:
    cfg = _cfg(
        [
            {"name": "CRONUS USA"},
            {"id": CA},
            {"name": "Nowhere"},
            {"name": "Other", "connection": "bc_missing"},
        ]
    )
    listed = {
        "bc_default": [{"id": US, "name": "CRONUS USA"}, {"id": "33333333-3333-4333-8333-333333333333"}]
    }
    rep = check_companies(cfg.companies, lambda conn: listed.get(conn))
    assert rep.resolved == {"bc_default": {"CRONUS USA": US}}
    text = "\n".join(rep.problems)
    assert f"companies[1].id: no company {CA} in bc_default's environment" in text
    assert "companies[2].name: no company named 'Nowhere'" in text
    assert "companies[3].connection: BC connection 'bc_missing' does not exist" in text


def test_lookup_keeps_a_record_id_to_its_company() -> None:
    """Same GUID in two companies: each finds only its issue; legacy issues (no company label) are the
    default company's."""
    legacy = {"fields": {"labels": ["bc-jira"]}}
    us_new = {"fields": {"labels": ["bc-jira", "bc-company-aaaa1111"]}}
    ca = {"fields": {"labels": ["bc-jira", "bc-company-bbbb2222"]}}
    assert [in_company(i, "bc-company-aaaa1111", True) for i in (legacy, us_new, ca)] == [True, True, False]
    assert [in_company(i, "bc-company-bbbb2222", False) for i in (legacy, us_new, ca)] == [False, False, True]
    assert company_clause("bc-company-bbbb2222", False) == ' AND labels = "bc-company-bbbb2222"'
    assert company_clause("bc-company-aaaa1111", True) == ""


def test_the_jira_webhook_filter_and_the_poll_cover_every_companys_project() -> None:
    """A company with its own project_key: the Jira webhook's JQL and the write-back's safety-net poll must
    reach its issues too (they named project_key only, so a Done in CA never woke the write-back)."""
    from bc_jira.config.companies import project_clause, project_keys
    from bc_jira.edges.webhooks import transitions_jql

    assert transitions_jql(project_keys(parse_config({"project_key": "FIN"})), ["Invoice"]) == (
        'project = FIN AND issuetype IN ("Invoice")'  # unchanged without companies: no re-registration
    )
    cfg = _cfg([{"id": US, "project_key": "CA"}, {"id": CA}, {"name": "CRONUS GB", "project_key": "CA"}])
    assert project_keys(cfg) == ("FIN", "CA")
    assert transitions_jql(project_keys(cfg), ["Invoice", "Vendor"]) == (
        'project IN (FIN, CA) AND issuetype IN ("Invoice", "Vendor")'
    )
    assert project_clause(["FIN", "CA"], lambda k: f'"{k}"') == 'project IN ("FIN", "CA")'
