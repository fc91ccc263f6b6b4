"""Jira webhooks: which fire on a change, and their delivery (JWT for app webhooks, HMAC for admin ones)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from bc_jira_sandbox.jira.base import JiraBase
from bc_jira_sandbox.jira.catalog import DELIVERY_JWT_TTL_S, WEBHOOK_RETRY_DELAYS_S
from bc_jira_sandbox.jira.jql import JqlError, jql_fields, parse_jql


class WebhooksMixin(JiraBase):
    """Webhook firing and delivery of :class:`JiraState`."""

    # -- webhooks --------------------------------------------------------------------------------------------
    WEBHOOK_FIELDS = {"issuekey", "key", "project", "issuetype", "type", "status", "assignee", "reporter"}

    def webhook_jql_error(self, jql: str) -> str | None:
        try:
            where, order = parse_jql(jql)
        except JqlError as exc:
            return str(exc)
        if order:
            return "The clause ORDER BY is unsupported"
        for fname, op in jql_fields(where):
            low = fname.lower()
            if (
                low not in self.WEBHOOK_FIELDS
                and not low.startswith("issue.property")
                and not low.startswith("cf[")
            ):
                return f"The clause {fname} is unsupported"
            if op not in ("=", "!=", "in", "not in"):
                return f"The operator '{op}' is unsupported"
        return None

    def _fire(
        self,
        rec: dict[str, Any],
        event: str,
        type_name: str,
        actor: dict[str, Any],
        items: list[dict[str, Any]],
    ) -> None:
        """Queue deliveries for the webhooks whose event, JQL and field filter match this change."""
        now_ms = int(self.sb.now().timestamp() * 1000)
        values = self.field_values(rec)
        matched = []
        for wid, wh in sorted(self.webhooks.items()):
            if wh["expirationDate"] <= now_ms or event not in wh["events"]:
                continue
            if (
                event == "jira:issue_updated"
                and wh.get("fieldIdsFilter")
                and not {i.get("fieldId") for i in items} & set(wh["fieldIdsFilter"])
            ):
                continue
            try:
                if not self.matches(parse_jql(wh["jqlFilter"])[0], rec, values):
                    continue
            except JqlError:
                continue
            matched.append(wid)
        admins = [
            wh
            for _, wh in sorted(self.admin_webhooks.items())
            if event in wh["events"] and self._admin_match(wh, rec, values)
        ]
        if (not matched or not self.webhook_url) and not admins:
            return
        payload: dict[str, Any] = {
            "timestamp": now_ms,
            "webhookEvent": event,
            "issue_event_type_name": type_name,
            "user": self.user_json(actor, details=True),
            "issue": self.issue_json(rec, "*all"),
        }
        if items:
            self.next_change_id += 1
            payload["changelog"] = {"id": str(self.next_change_id), "items": items}
        if matched and self.webhook_url:
            # matchedWebhookIds: only on REST-registered webhooks (https://developer.atlassian.com/cloud/jira/platform/webhooks/)
            body = json.dumps({**payload, "matchedWebhookIds": matched}).encode()
            self._schedule_delivery(self.webhook_url, body, self._next_ident(), 0, auth=("jwt", None))
        for wh in admins:
            body = json.dumps(payload).encode()
            self._schedule_delivery(wh["url"], body, self._next_ident(), 0, auth=("hmac", wh.get("secret")))

    def _next_ident(self) -> str:
        ident = str(self.next_delivery)
        self.next_delivery += 1
        return ident

    def _admin_match(self, wh: dict[str, Any], rec: dict[str, Any], values: dict[str, Any]) -> bool:
        if not wh.get("jqlFilter"):
            return True
        try:
            return bool(self.matches(parse_jql(wh["jqlFilter"])[0], rec, values))
        except JqlError:
            return False

    def delivery_jwt(self) -> str:
        """The bearer token Jira sends with a dynamic (OAuth 2.0 app) webhook: HS256 with the app's client
        secret, ``iat`` and a short ``exp``. Atlassian documents no claim set beyond that (
        https://nango.dev/docs/api-integrations/jira/webhooks: "Jira signs dynamic webhook requests
        (/rest/api/3/webhook) with a bearer JWT in the Authorization header, using your app's client
        secret"), so no other claim is invented here. Wall-clock time: the token is about the HTTP exchange,
        not the sandbox's simulated clock.
        """
        now = int(time.time())

        def seg(obj: dict[str, Any]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .rstrip(b"=")
                .decode()
            )

        signing = (
            f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg({'iat': now, 'exp': now + DELIVERY_JWT_TTL_S})}"
        )
        sig = hmac.new(self.sb.creds["atlassian_client_secret"].encode(), signing.encode(), hashlib.sha256)
        return f"{signing}.{base64.urlsafe_b64encode(sig.digest()).rstrip(b'=').decode()}"

    def _schedule_delivery(
        self,
        url: str,
        body: bytes,
        ident: str,
        attempt: int,
        delay: float = 0.0,
        *,
        auth: tuple[str, str | None],
    ) -> None:
        sb = self.sb

        def send() -> None:
            headers = {
                "X-Atlassian-Webhook-Identifier": ident,
                "X-Atlassian-Webhook-Flow": "Primary",
                "User-Agent": "Atlassian Webhook HTTP Client",
                "Content-Type": "application/json",
            }
            kind, secret = auth
            if kind == "jwt":  # a fresh token per attempt (its exp is short)
                headers["Authorization"] = f"Bearer {self.delivery_jwt()}"
            elif secret:  # admin webhook created with a secret; without one Jira sends no signature
                sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature"] = f"sha256={sig}"
            if attempt:
                headers["X-Atlassian-Webhook-Retry"] = str(attempt)
            resp = sb.post_json(url, body, headers)
            sb.stats.bump("jira.webhooks.sent")
            status = resp.status_code if resp is not None else None
            with sb.lock:
                self.deliveries.append(
                    {"id": ident, "url": url, "attempt": attempt, "status": status, "auth": auth[0]}
                )
                del self.deliveries[:-200]
            retry = status is None or status in (408, 409, 425, 429) or status >= 500
            if retry and attempt < len(WEBHOOK_RETRY_DELAYS_S):
                sb.stats.bump("jira.webhooks.retried")
                self._schedule_delivery(
                    url, body, ident, attempt + 1, WEBHOOK_RETRY_DELAYS_S[attempt], auth=auth
                )

        sb.schedule(delay, send)
