"""Make the Connections list's Test button reach our hooks on Airflow 3.3.

The cause of the "The host or port to test differs from the stored connection" 400: the UI's Test button
posts ``port: Number(connection.port)``, which is ``0`` for a connection without a port (ours never have
one: the field is hidden), while the stored port is NULL. ``POST /api/v2/connections/test`` treats ``""``
as unset but not ``0``, sees another destination, and refuses to reuse the stored secrets the UI sent as
``***``; the UI shows only "Bad Request". Fixed upstream in the route (apache/airflow#73298, after 3.3.2).

Until then the plugin installs this root middleware: for a test request of *our* connection types only, a
``port`` of ``0`` is dropped from the body, which is what the upstream fix does (nothing addresses port 0,
and our types address no port at all). Everything else passes through untouched, so Airflow's own checks
(credentials to another host, permissions) still apply.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

OUR_CONN_TYPES = frozenset({"business_central", "jira_cloud"})
TEST_PATH = "/api/v2/connections/test"
MAX_BODY = 256 * 1024  # a connection body is a few KB; anything larger passes through unread


def normalised_test_body(body: bytes) -> bytes | None:
    """The body to test with instead (``port: 0`` dropped for our types), or None to keep it as is."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("conn_type") not in OUR_CONN_TYPES:
        return None
    port = data.get("port")
    if "port" not in data or isinstance(port, bool) or port != 0:
        return None
    del data["port"]
    return json.dumps(data).encode()


def is_test_request(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope.get("method") == "POST"
        and scope.get("path", "").endswith(TEST_PATH)
    )


class PortlessConnectionTest:
    """ASGI middleware applying :func:`normalised_test_body` to ``POST /api/v2/connections/test``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_test_request(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_BODY:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay(chunks, receive, message, done=False), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        if more or size > MAX_BODY:  # too large to be ours: hand over what was read (then the rest)
            await self.app(scope, _replay(chunks, receive, None, done=not more), send)
            return
        new = normalised_test_body(b"".join(chunks))
        if new is None:
            await self.app(scope, _replay(chunks, receive, None, done=True), send)
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(new)).encode()))
        await self.app({**scope, "headers": headers}, _replay([new], receive, None, done=True), send)


def _replay(chunks: list[bytes], receive: Receive, pending: Message | None, *, done: bool) -> Receive:
    """A ``receive`` that yields what was already read, then defers to the real one."""
    queue: list[Message] = [
        {"type": "http.request", "body": c, "more_body": not (done and i == len(chunks) - 1)}
        for i, c in enumerate(chunks)
    ]
    if pending is not None:
        queue.append(pending)

    async def replay() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replay
