"""The HTTP edge of the Jira routes: authentication per scope, the body, the lock, errors and spec checks.

Every Jira REST route is a :class:`JiraRoute` and depends on one of :data:`READ`, :data:`WRITE`,
:data:`USER` or :data:`WEBHOOK` (FastAPI ``Depends``), which authenticate the caller (OAuth bearer under
``/ex/jira/{cloudId}``, basic auth under ``/site``) and read the JSON body; the endpoint then runs under the
sandbox lock, and its :class:`JiraReply` (or the :class:`JiraError` it raised) is checked against the
official OpenAPI document when ``POST /_sandbox/jira/options {"validate": true}`` is on.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from bc_jira_sandbox import atlassian
from bc_jira_sandbox.deps import SANDBOX, get_sandbox
from bc_jira_sandbox.jira.catalog import API, JiraError
from bc_jira_sandbox.openapi import SpecViolation, get_validator

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from bc_jira_sandbox.core import Sandbox
    from bc_jira_sandbox.jira.state import JiraState

log = logging.getLogger(__name__)

_SCOPES = {
    "read": "read:jira-work",
    "write": "write:jira-work",
    "user": "read:jira-user",
    "webhook": "manage:jira-webhook",
}


@dataclass
class Call:
    """One authenticated Jira request: the sandbox, the acting user and the (validated) JSON body."""

    sb: Sandbox
    request: Request
    actor: dict[str, Any]
    body: Any

    @property
    def jira(self) -> JiraState:
        """Looked up on every use: the state is replaced on load."""
        return self.sb.jira


class JiraReply(Response):
    """A Jira answer whose ``payload`` the route checks against the spec before it is sent."""

    def __init__(self, status: int, payload: Any = None) -> None:
        self.payload = payload
        if payload is None:
            super().__init__(status_code=status)
        else:
            content = json.dumps(
                payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
            )
            super().__init__(content.encode("utf-8"), status_code=status, media_type="application/json")


class AuthFailure(Exception):
    """The caller is not let in: ``response`` is the gateway's (OAuth) or Jira's (basic) answer, as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def authenticate(sb: Sandbox, request: Request, scope: str) -> dict[str, Any]:
    """The acting user; raises :class:`AuthFailure` (401 gateway style for OAuth, Jira style for basic)."""
    header = request.headers.get("authorization")
    cloud_id = request.path_params.get("cloudId")
    if cloud_id is None:  # the /site root: basic auth with the API token
        want = (
            "Basic "
            + base64.b64encode(f"{sb.creds['jira_email']}:{sb.creds['jira_api_token']}".encode()).decode()
        )
        if not header or not hmac.compare_digest(header, want):
            raise AuthFailure(
                JSONResponse(
                    {
                        "errorMessages": ["Client must be authenticated to access this resource."],
                        "errors": {},
                    },
                    status_code=401,
                )
            )
        return sb.jira.users[0]
    rec = atlassian.check_access_token(sb, header)
    if rec is None:
        raise AuthFailure(JSONResponse({"code": 401, "message": "Unauthorized"}, status_code=401))
    if cloud_id != sb.creds["cloud_id"]:
        raise AuthFailure(
            JSONResponse(
                {"code": 404, "message": "Site not found or not accessible with this token"}, status_code=404
            )
        )
    if _SCOPES[scope] not in rec["scopes"]:
        raise AuthFailure(
            JSONResponse({"code": 401, "message": "Unauthorized; scope does not match"}, status_code=401)
        )
    return sb.jira.users[0]


async def read_body(sb: Sandbox, request: Request) -> Any:
    """The JSON body of a POST/PUT/DELETE (None when empty); a 400 when it is not JSON or not to spec."""
    if request.method not in ("POST", "PUT", "DELETE"):
        return None
    raw = await request.body()
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise JiraError(400, ["Unexpected character: the request body is not valid JSON."]) from None
    if sb.jira.validate:
        _validate_request(sb, request, body)
    return body


def jira_call(scope: str, *, multipart: bool = False) -> Callable[..., Awaitable[Call]]:
    """The dependency of a route needing ``scope``: authenticate, no basic auth on webhooks, read the body
    (``multipart``: the uploaded files, see :func:`bc_jira_sandbox.jira.attachments.read_files`)."""

    async def dependency(request: Request, sb: Sandbox = SANDBOX) -> Call:
        actor = authenticate(sb, request, scope)
        if request.path_params.get("cloudId") is None and request.url.path.startswith(f"/site{API}/webhook"):
            raise JiraError(403, ["Only Connect and OAuth 2.0 apps can use this operation."])
        if multipart:
            from bc_jira_sandbox.jira.attachments import read_files

            return Call(sb, request, actor, await read_files(sb, request))
        return Call(sb, request, actor, await read_body(sb, request))

    return dependency


READ = Depends(jira_call("read"))
WRITE = Depends(jira_call("write"))
UPLOAD = Depends(jira_call("write", multipart=True))
USER = Depends(jira_call("user"))
WEBHOOK = Depends(jira_call("webhook"))

_LOCKED: set[Callable[..., Any]] = set()


def _locked(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` run under the sandbox lock, marking the state dirty when it returns."""
    if endpoint in _LOCKED:
        return endpoint

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        call = next(v for v in kwargs.values() if isinstance(v, Call))
        with call.sb.lock:
            out = endpoint(*args, **kwargs)
            call.sb.mark_dirty()
        return out

    _LOCKED.add(run)
    return run


class JiraRoute(APIRoute):
    """A Jira REST route: locked endpoint, JiraError as Jira's ErrorCollection, answers checked to spec."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _locked(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except AuthFailure as exc:
                return exc.response
            except JiraError as exc:
                response = JiraReply(exc.status, exc.body)
            sb = get_sandbox(request)
            if isinstance(response, JiraReply) and sb.jira.validate:
                _validate_response(sb, request, response.status_code, response.payload)
            return response

        return route


def query_list(rq: Request, name: str) -> list[str] | None:
    """An array query parameter as Jira reads it: repeated (``fields=summary&fields=status``, OpenAPI's form
    style) or comma-separated (the spec: "This parameter accepts a comma-separated list"), or both mixed."""
    raw = rq.query_params.getlist(name)
    if not raw:
        return None
    return [x.strip() for v in raw for x in v.split(",") if x.strip()]


def query_int(rq: Request, name: str, default: int) -> int:
    """An integer query parameter; a 400 (never a 500) when it is not a number."""
    raw = rq.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise JiraError(400, [f"The '{name}' parameter must be a number, got '{raw[:50]}'."]) from None


def query_ints(rq: Request, name: str) -> list[int] | None:
    vals = query_list(rq, name)
    if vals is None:
        return None
    try:
        return [int(v) for v in vals]
    except ValueError:
        raise JiraError(400, [f"The '{name}' parameter must be a list of numbers."]) from None


def _validate_response(sb: Sandbox, request: Request, status: int, body: Any) -> None:
    # The ISO expirationDate is the spec's own example form, not its schema: validate it as exactly that.
    example_forms = getattr(sb.jira, "expiration_date_format", "epoch_ms") == "iso"
    try:
        get_validator(example_forms=example_forms).validate_response(
            request.method, request.url.path, status, body
        )
    except (SpecViolation, KeyError) as exc:
        sb.stats.bump("jira.spec_violations")
        log.error("sandbox Jira response violates the spec: %s", exc)


def _validate_request(sb: Sandbox, request: Request, body: Any) -> None:
    try:
        get_validator().validate_request(request.method, request.url.path, body)
    except SpecViolation as exc:
        raise JiraError(400, [str(exc)[:1000]]) from None
