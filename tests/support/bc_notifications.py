"""BC change-notification bodies as BC sends them, posted straight into the intake (no web server)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bc_jira.edges import intake

if TYPE_CHECKING:
    from bc_jira.store import StateStore

CS = "client-state-secret-123"
COMPANY = "6f1c7b9a-0000-4000-8000-000000000001"


def bc_item(
    entity: str = "purchaseInvoices",
    rid: str = "AAAA0000-1111-2222-3333-444455556666",
    change: str = "updated",
    when: str = "2026-03-01T10:00:00.123Z",
    state: str = CS,
) -> dict[str, Any]:
    return {
        "subscriptionId": "sub-1",
        "clientState": state,
        "expirationDateTime": "2026-03-04T10:00:00Z",
        "resource": f"api/v2.0/companies({COMPANY})/{entity}({rid})",
        "changeType": change,
        "lastModifiedDateTime": when,
    }


def bc_post(store: StateStore, items: list[Any], client_state: str | None = CS) -> intake.IntakeResult:
    return intake.handle_bc_notification(
        {}, json.dumps({"value": items}).encode(), client_state=client_state, store=store
    )
