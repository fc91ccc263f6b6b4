"""A local HTTP endpoint the sandbox delivers to: answers BC's validationToken handshake, records every
POST (BC change notifications, Jira webhooks) with its headers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Receiver:
    """``url`` takes BC notifications and Jira webhooks alike; ``posts`` holds (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handshake_or(405)

            def do_POST(self) -> None:
                if self._handshake_or(None):
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.posts.append(
                        (
                            urlsplit(self.path).path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw or b"null"),
                        )
                    )
                self._send(202, b"")

            def _handshake_or(self, status: int | None) -> bool:
                token = parse_qs(urlsplit(self.path).query).get("validationToken", [None])[0]
                if token is not None:
                    self._send(200, token.encode())
                    return True
                if status is not None:
                    self._send(status, b"")
                return False

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[Any]:
        with self._lock:
            return [body for p, _, body in self.posts if p == path]

    def wait(self, path: str, predicate: Any, timeout: float = 15.0) -> Any:
        """The first body POSTed to ``path`` for which ``predicate`` is true (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            hit = next((b for b in self.bodies(path) if predicate(b)), None)
            if hit is not None:
                return hit
            assert time.monotonic() < deadline, f"nothing matching arrived at {path}: {self.bodies(path)}"
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
