"""The plugin's web app under uvicorn on a free port: what the sandbox's BC and Jira call back in tests."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bc_jira.edges import shared_secrets
from bc_jira.edges.subscriptions import _norm_resource
from bc_jira.web.app import create_app

if TYPE_CHECKING:
    from bc_jira.store import StateStore


class PluginServer:
    """The plugin's FastAPI app under uvicorn on a free port (what BC and Jira call back)."""

    def __init__(
        self, store: StateStore | None, secrets: shared_secrets.Secrets | None, *, app: Any = None
    ) -> None:
        """``app``: serve this sub-app under ``/bc-jira`` instead (a page with its dependencies replaced)."""
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        from fastapi import FastAPI

        if app is None:
            app = create_app(store_factory=lambda: store, secrets_factory=lambda: secrets)
        root = FastAPI()  # mounted like the api-server mounts plugin apps (app.mount(url_prefix, subapp))
        root.mount("/bc-jira", app)
        app = root
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "plugin server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def sandbox_secrets(sandbox: Any) -> shared_secrets.Secrets:
    c = sandbox.creds
    return shared_secrets.Secrets(
        client_state=c["bc_client_state"],
        webhook_secret=c["webhook_secret"],
        jira_client_secret=c["atlassian_client_secret"],
    )


def sandbox_now(sandbox: Any) -> datetime:
    return datetime.fromisoformat(sandbox.control("POST", "/_sandbox/clock", {"advance_s": 0})["now"])


def per_resource(bc: Any) -> Counter:
    return Counter(_norm_resource(s["resource"]) for s in bc.list_subscriptions())


def wait_for(pred: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
