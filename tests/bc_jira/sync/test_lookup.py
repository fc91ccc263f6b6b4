"""The record-id lookup against the sandbox's Jira search (words, phrases, exact values)."""

from __future__ import annotations

from bc_jira.mapping import field_ids
from bc_jira.sync.upsert import Upserter
from tests.support.sync_fakes import hook_issue_id, sandbox_cfg


def test_record_id_lookup_finds_the_exact_issue_by_phrase(sandbox_jira, airflow_conns) -> None:
    """Jira's ``~`` matches words (the sandbox tokenises like it): the lookup asks for the GUID as a phrase
    and keeps only an exact field value: neither a look-alike GUID nor a value merely holding it is taken."""
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.sync.jira_ops import JiraOps
    from bc_jira.sync.lookup import _text_phrase

    sandbox_jira.options(search_lag_s=0)
    cfg = sandbox_cfg(airflow_conns)
    hook = JiraCloudHook()
    jira = JiraOps(hook)
    ids = field_ids(cfg.fields, {f["name"]: f["id"] for f in hook.client.get_json("field") if f["custom"]})
    rid = ids.record_id
    g = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    values = {
        "look-alike": g[:-1] + "2",  # a different GUID sharing four of its five words
        "prefix": g[:23],  # the GUID's first words: a phrase of them matches g itself too
        "holder": f"copy of {g} (old)",  # holds the whole phrase: Jira finds it, exact comparison drops it
        "glued": "x" + g,  # a substring match would find it; Jira's words do not
        "target": g,
    }
    made = {}
    for label, value in values.items():
        res = jira.bulk_create(
            [
                {
                    "fields": {
                        "project": {"key": cfg.project_key},
                        "issuetype": {"name": "Invoice"},
                        "summary": label,
                        rid: value,
                    }
                }
            ]
        )
        made[label] = res.created[0][1]["key"]
    up = Upserter(cfg=cfg, entity="purchase_invoices", ids=ids, jira=jira, store=None)

    raw = jira.search(
        f'project = "{cfg.project_key}" AND cf[{rid.split("_")[1]}] ~ {_text_phrase(g)}', ["key"]
    )
    assert {i["key"] for i in raw} == {made["target"], made["holder"]}  # what Jira answers to the phrase
    assert up._find([g]) == {g: {"id": hook_issue_id(jira, made["target"]), "key": made["target"]}}
    prefix = up._find([g[:23]])  # Jira answers prefix, holder and target; only the exact value counts
    assert [v["key"] for v in prefix.values()] == [made["prefix"]]
    assert up._find(["3f2504e0"]) == {}
    both = up._find([g, values["look-alike"]])
    assert {k: v["key"] for k, v in both.items()} == {
        g: made["target"],
        values["look-alike"]: made["look-alike"],
    }
