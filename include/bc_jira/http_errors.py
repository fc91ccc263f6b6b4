"""The error bodies of Business Central (OData), Jira, Entra and Atlassian OAuth, read as (code, message).

Pure functions over a response: ``ApiClient`` turns the result into its typed errors. Messages are cut to
``MAX_MESSAGE`` characters; scrubbing secrets out of them is the error's job (``bc_jira.redact``).
"""

from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

MAX_MESSAGE = 500


def error_details(resp: requests.Response) -> tuple[str | None, str]:
    """Extract (code, message) from the error body shapes of BC, Jira and Entra/Atlassian."""
    text = resp.text or ""
    try:
        body = resp.json()
    except ValueError:
        return None, (text.strip()[:MAX_MESSAGE] or resp.reason or "")
    found = _body_details(body) if isinstance(body, dict) else None
    return found if found is not None else (None, jsonlib.dumps(body)[:MAX_MESSAGE])


def _body_details(body: dict[str, Any]) -> tuple[str | None, str] | None:
    """(code, message) of a JSON error object; None when it has none of the known shapes."""
    err = body.get("error")
    if isinstance(err, dict):  # BC / OData: {"error": {"code", "message"}}
        return err.get("code"), str(err.get("message") or "")
    if isinstance(err, str):  # Entra / Atlassian OAuth: {"error", "error_description"}
        return err, str(body.get("error_description") or body.get("message") or "")
    msgs, errs = body.get("errorMessages"), body.get("errors")
    if msgs is not None or errs is not None:  # Jira: {"errorMessages": [...], "errors": {field: msg}}
        parts = [str(m) for m in (msgs or [])]
        if isinstance(errs, dict):
            parts += [f"{k}: {v}" for k, v in errs.items()]
        return ("errors" if errs else None), "; ".join(parts)
    if "message" in body:
        return body.get("code") and str(body.get("code")), str(body["message"])
    return None
