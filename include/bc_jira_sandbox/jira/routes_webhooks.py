"""Jira REST v3 dynamic webhooks of an OAuth 2.0 app: register, list, delete, refresh (30-day expiry)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bc_jira_sandbox.jira.api import (
    WEBHOOK,
    Call,
    JiraReply,
    JiraRoute,
)
from bc_jira_sandbox.jira.catalog import (
    API,
    WEBHOOK_TTL_S,
    JiraError,
    expiration_date_out,
)

api = APIRouter(route_class=JiraRoute)


# -- webhooks --------------------------------------------------------------------------------------------
@api.post(f"{API}/webhook")
def register_webhooks(call: Call = WEBHOOK) -> JiraReply:
    j = call.jira
    if (
        not isinstance(call.body, dict)
        or not isinstance(call.body.get("url"), str)
        or not isinstance(call.body.get("webhooks"), list)
    ):
        raise JiraError(400, ["url and webhooks are required."])
    if (
        j.webhook_url
        and j.webhook_url != call.body["url"]
        and any(w["expirationDate"] > int(call.sb.now().timestamp() * 1000) for w in j.webhooks.values())
    ):
        raise JiraError(400, ["Only a single URL per app is allowed to be registered."])
    j.webhook_url = call.body["url"]
    results: list[dict[str, Any]] = []
    expires = int((call.sb.now().timestamp() + WEBHOOK_TTL_S) * 1000)
    for wh in call.body["webhooks"]:
        if not isinstance(wh, dict) or not wh.get("events") or not isinstance(wh.get("jqlFilter"), str):
            results.append({"errors": ["events and jqlFilter are required."]})
            continue
        why = j.webhook_jql_error(wh["jqlFilter"])
        if why:
            results.append({"errors": [why]})
            continue
        wid = j.next_webhook_id
        j.next_webhook_id += 1
        j.webhooks[wid] = {
            "id": wid,
            "events": list(wh["events"]),
            "jqlFilter": wh["jqlFilter"],
            "expirationDate": expires,
            "url": call.body["url"],
            **({"fieldIdsFilter": list(wh["fieldIdsFilter"])} if wh.get("fieldIdsFilter") else {}),
        }
        results.append({"createdWebhookId": wid})
    return JiraReply(200, {"webhookRegistrationResult": results})


@api.get(f"{API}/webhook")
def list_webhooks(call: Call = WEBHOOK) -> JiraReply:
    start = int(call.request.query_params.get("startAt", 0))
    limit = int(call.request.query_params.get("maxResults", 100))
    form = getattr(call.jira, "expiration_date_format", "epoch_ms")
    values = [
        {**w, "expirationDate": expiration_date_out(w["expirationDate"], form)}
        for _, w in sorted(call.jira.webhooks.items())
    ]
    page = values[start : start + limit]
    return JiraReply(
        200,
        {
            "startAt": start,
            "maxResults": limit,
            "total": len(values),
            "isLast": start + limit >= len(values),
            "values": page,
        },
    )


@api.delete(f"{API}/webhook")
def delete_webhooks(call: Call = WEBHOOK) -> JiraReply:
    if not isinstance(call.body, dict) or not isinstance(call.body.get("webhookIds"), list):
        raise JiraError(400, ["webhookIds is required."])
    for wid in call.body["webhookIds"]:
        call.jira.webhooks.pop(int(wid), None)
    return JiraReply(202, None)


@api.put(f"{API}/webhook/refresh")
def refresh_webhooks(call: Call = WEBHOOK) -> JiraReply:
    if not isinstance(call.body, dict) or not isinstance(call.body.get("webhookIds"), list):
        raise JiraError(400, ["webhookIds is required."])
    expires = int((call.sb.now().timestamp() + WEBHOOK_TTL_S) * 1000)
    for wid in call.body["webhookIds"]:
        if int(wid) in call.jira.webhooks:
            call.jira.webhooks[int(wid)]["expirationDate"] = expires
    return JiraReply(
        200,
        {"expirationDate": expiration_date_out(expires, getattr(call.jira, "expiration_date_format", ""))},
    )
