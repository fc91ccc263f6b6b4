"""BC webhook notifications: batching per notificationUrl, delivery and BC's retry schedule."""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from bc_jira_sandbox.bc.base import BcBase
from bc_jira_sandbox.bc.entities import (
    COLLECTION_THRESHOLD,
    MAX_ATTEMPTS,
    RETRY_DELAYS_S,
    WEBHOOK_ENTITIES,
    BcError,
    parse_ts,
    ts,
)

log = logging.getLogger(__name__)


class NotificationsMixin(BcBase):
    """Subscription notifications of :class:`BcState`."""

    # -- subscriptions & notifications ----------------------------------------------------------------------
    def purge_expired(self) -> None:
        now = self.sb.now()
        for sid in [s for s, sub in self.subscriptions.items() if parse_ts(sub["expirationDateTime"]) <= now]:
            log.info("bc sandbox: subscription %s expired", sid)
            del self.subscriptions[sid]

    def subscription_entity(self, resource: str) -> tuple[str, str]:
        """(company id, entity set) from absolute, ``/api/v2.0/...`` or ``companies(...)/...`` forms."""
        m = re.search(r"companies\((?P<cid>[^)]+)\)/(?P<entity>[A-Za-z]+)/?$", resource.split("?")[0])
        if not m:
            raise BcError(
                400,
                "BadRequest",
                f"The resource '{resource}' is not valid. Use /api/v2.0/companies(<id>)/<entity set>.",
            )
        return m.group("cid").strip("'").lower(), m.group("entity")

    def notify(self, entity: str, record_id: str, change: str, when: datetime) -> None:
        if entity not in WEBHOOK_ENTITIES or not self.subscriptions:
            return
        self.purge_expired()
        for sub in self.subscriptions.values():
            if sub["_entity"] != entity or sub["_company"] != self.company["id"].lower():
                continue
            url = sub["notificationUrl"]
            batch = self.pending.get(url)
            if batch is None:
                batch = self.pending[url] = {"subs": {}, "first": {}}
                delay = float(self.sb.options.notify_delay_s)
                self.sb.schedule(delay, functools.partial(self.flush, url))
            items = batch["subs"].setdefault(sub["subscriptionId"], {})
            batch["first"].setdefault(sub["subscriptionId"], when)
            key = f"{record_id}:deleted" if change == "deleted" else record_id
            if change == "updated" and key in items:  # merged into the pending created/updated one
                items[key]["at"] = when
            else:
                items[key] = {"id": record_id, "changeType": change, "at": when}

    def _payload(self, url: str, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        value: list[dict[str, Any]] = []
        sub_ids: list[str] = []
        for sid, keyed in batch["subs"].items():
            items = list(keyed.values())
            sub = self.subscriptions.get(sid)
            if sub is None or not items:
                continue
            sub_ids.append(sid)
            resource = f"api/v2.0/companies({sub['_company']})/{sub['_entity']}"
            common = {
                "subscriptionId": sid,
                "clientState": sub.get("clientState", ""),
                "expirationDateTime": sub["expirationDateTime"],
            }
            if len(items) > COLLECTION_THRESHOLD:
                first = batch["first"][sid] - timedelta(milliseconds=50)
                has_delete = any(i["changeType"] == "deleted" for i in items)
                res = (
                    resource if has_delete else f"{resource}?$filter=lastModifiedDateTime%20gt%20{ts(first)}"
                )
                value.append(
                    {
                        **common,
                        "resource": res,
                        "changeType": "collection",
                        "lastModifiedDateTime": ts(max(i["at"] for i in items)),
                    }
                )
            else:
                value += [
                    {
                        **common,
                        "resource": f"{resource}({i['id']})",
                        "changeType": i["changeType"],
                        "lastModifiedDateTime": ts(i["at"]),
                    }
                    for i in items
                ]
        return value, sub_ids

    def flush(self, url: str) -> None:
        with self.sb.lock:
            batch = self.pending.pop(url, None)
            if not batch:
                return
            self.purge_expired()
            value, sub_ids = self._payload(url, batch)
        if value:
            self.deliver(url, value, sub_ids, 0)

    def deliver(self, url: str, value: list[dict[str, Any]], sub_ids: list[str], attempt: int) -> None:
        correlation = str(uuid.uuid4())
        body = json.dumps({"value": value}, separators=(",", ":")).encode("utf-8")
        resp = self.sb.post_json(
            url, body, {"clientRequestId": correlation, "x-ms-correlation-id": correlation}
        )
        status = None if resp is None else resp.status_code
        if status is not None and 200 <= status < 300:
            self.sb.stats.bump("bc.notifications.sent")
            self.sb.stats.bump("bc.notifications.items", len(value))
            return
        with self.sb.lock:
            if status is None or status in (408, 429) or status >= 500:
                attempt += 1
                if attempt > MAX_ATTEMPTS:
                    log.warning("bc sandbox: %s failed %s times, deleting its subscriptions", url, attempt)
                    self.sb.stats.bump("bc.subscriptions.deleted")
                    for sid in sub_ids:
                        self.subscriptions.pop(sid, None)
                    return
                scale = float(self.sb.options.notify_delay_s) / 30.0
                delay = RETRY_DELAYS_S.get(attempt - 1, 60000) * scale
                self.sb.stats.bump("bc.notifications.retried")
                self.sb.schedule(delay, functools.partial(self.deliver, url, value, sub_ids, attempt))
                return
            log.warning("bc sandbox: %s answered %s, deleting its subscriptions", url, status)
            self.sb.stats.bump("bc.subscriptions.deleted")
            for sid in sub_ids:
                self.subscriptions.pop(sid, None)
