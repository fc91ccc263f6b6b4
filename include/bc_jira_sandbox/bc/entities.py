"""BC API v2.0 entities from the vendored field list (names, types, enums), BC's constants and its error."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse

SPEC: dict[str, Any] = json.loads(
    Path(__file__).parent.parent.joinpath("bc-api-v2-entities.json").read_text()
)
PROPS: dict[str, list[dict[str, Any]]] = {k: v["properties"] for k, v in SPEC["entities"].items()}
FIELDS: dict[str, dict[str, dict[str, Any]]] = {k: {p["name"]: p for p in v} for k, v in PROPS.items()}
ENTITY_TYPE: dict[str, str] = {k: v["entity_type"] for k, v in SPEC["entities"].items()}
ENUMS: dict[str, list[str]] = {k: [m["json"] for m in v] for k, v in SPEC["enums"].items()}
READ_ONLY: dict[str, set[str]] = {
    k: {p["name"] for p in v if p.get("read_only_in_al_page") or p["name"] == "id"} for k, v in PROPS.items()
}

DOCUMENTS = ("vendors", "purchaseInvoices", "purchaseOrders")
LINES = {"purchaseInvoices": "purchaseInvoiceLines", "purchaseOrders": "purchaseOrderLines"}
WEBHOOK_ENTITIES = {"vendors", "purchaseInvoices"}  # purchaseOrders is not in the documented list
SPACE = "_x0020_"
NULL_GUID = "00000000-0000-0000-0000-000000000000"
BLANK_DATE = "0001-01-01"
MAX_PAGE = 20000
SUBSCRIPTION_TTL = timedelta(days=3)
MAX_SUBSCRIPTIONS = 200
COLLECTION_THRESHOLD = 1000
MAX_ATTEMPTS = 5
HANDSHAKE_TIMEOUT_S = 5.0
# Learn: "BC issues a request to the notificationUrl, passing a validationToken parameter on the query string"
# (dev-itpro/api-reference/v2.0/dynamics-subscriptions.md); the HTTP method is not stated.
HANDSHAKE_METHODS = ("POST", "GET")
RETRY_DELAYS_S = {0: 60, 1: 60, 2: 60, 3: 600, 4: 6000}  # BC GetDelayTimeForAttempt; 5+ -> 60000 s
LOCAL_CURRENCY = "DKK"

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class BcError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            status_code=self.status,
            headers=self.headers,
            content={"error": {"code": self.code, "message": self.message}},
        )


def _bad(message: str) -> BcError:
    return BcError(400, "BadRequest", message)


def ts(dt: datetime) -> str:
    """Edm.DateTimeOffset as BC writes it: UTC, up to millisecond precision, trailing zeros dropped, ``Z``."""
    dt = dt.astimezone(UTC)
    ms = dt.microsecond // 1000
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms:
        text += f".{ms:03d}".rstrip("0")
    return text + "Z"


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def encode_enum(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return SPACE if value in ("", " ") else value.replace(" ", SPACE)


def _etag(record_id: str, version: int) -> str:
    digits = str(int(hashlib.sha256(f"{record_id}:{version}".encode()).hexdigest(), 16))[:20]
    inner = f"'{len(digits)};{digits};00;'"
    return f'W/"{base64.b64encode(inner.encode()).decode()}"'


def _blank(entity: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in PROPS[entity]:
        fmt = p.get("format")
        if p.get("enum"):
            out[p["name"]] = ENUMS[p["enum"]][0]
        elif fmt == "uuid":
            out[p["name"]] = NULL_GUID
        elif fmt == "date":
            out[p["name"]] = BLANK_DATE
        elif fmt == "date-time":
            out[p["name"]] = "0001-01-01T00:00:00Z"
        elif p["json_type"] == "number" or p["json_type"] == "integer":
            out[p["name"]] = 0
        elif p["json_type"] == "boolean":
            out[p["name"]] = False
        else:
            out[p["name"]] = ""
    return out


_BLANKS = {k: _blank(k) for k in PROPS}


def checked_value(entity: str, name: str, value: Any, *, api: bool) -> Any:
    """``value`` for field ``name`` as BC stores it, or the BcError BC answers (unknown or read-only field,
    wrong JSON type or enum member, string too long). ``api=False``: a BC user's change (plain enum names)."""
    prop = FIELDS[entity].get(name)
    if prop is None:
        raise BcError(
            400,
            "BadRequest_PropertyNotFound",
            f"The property '{name}' does not exist on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'. "
            "Make sure to only use property names that are defined by the type.",
        )
    if api and name in READ_ONLY[entity]:
        raise BcError(
            400,
            "BadRequest_MethodNotAllowed" if name == "id" else "Application_FieldNotEditable",
            f"The property '{name}' is read-only.",
        )
    if prop.get("enum"):
        if not api:
            value = encode_enum(value)
        if value not in ENUMS[prop["enum"]]:
            raise BcError(
                400,
                "BadRequest",
                f"Cannot convert the literal '{value}' to the expected type 'Microsoft.NAV.{prop['enum']}'.",
            )
    else:
        edm = _EDM_TYPES.get(prop["json_type"])
        if edm is not None and not isinstance(value, edm[0]):
            raise BcError(400, "BadRequest", f"Cannot convert the literal '{value}' to '{edm[1]}'.")
    max_len = prop.get("max_length")
    if max_len and isinstance(value, str) and len(value) > max_len:
        raise BcError(
            400,
            "Application_StringExceededLength",
            f"The length of the string is {len(value)}, but it must be less than or equal to "
            f"{max_len} characters. Value: {value}",
        )
    return value


# JSON type -> (the Python types accepted, the Edm type named in BC's error)
_EDM_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "number": ((int, float), "Edm.Decimal"),
    "boolean": (bool, "Edm.Boolean"),
    "string": (str, "Edm.String"),
}
