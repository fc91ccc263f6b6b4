"""A headless Chromium driven through Debian's ``chromedriver`` (W3C WebDriver over HTTP, no Selenium needed).

Tests use it to click what a user clicks (inside the Airflow UI's iframes too) and to see where the click
went: the top page's URL, new windows, the element that appeared.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import IN_CI
from tests.support.api_server import free_port

if TYPE_CHECKING:
    from pathlib import Path

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


def need_browser() -> None:
    """Skip a browser test on a machine without Chromium; under CI=true fail instead (it must not skip)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        reason = (
            "chromium/chromedriver not installed (`make services`: apt-get install chromium chromium-driver)"
        )
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser test must not skip)")
        pytest.skip(reason)


class Browser:
    """One chromedriver process and one headless session; ``close()`` ends both."""

    def __init__(self, profile: Path, *, width: int = 1400, height: int = 820) -> None:
        assert CHROMEDRIVER, "chromium and chromedriver must be installed"
        assert CHROMIUM, "chromium and chromedriver must be installed"
        self.port = free_port()
        self._proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self._base}/status", timeout=2).json()["value"]["ready"]:
                    break
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.2)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}",
        ]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        resp = requests.post(
            f"{self._base}/session", json={"capabilities": {"alwaysMatch": caps}}, timeout=60
        ).json()
        assert "sessionId" in resp.get("value", {}), resp
        self._session = f"{self._base}/session/{resp['value']['sessionId']}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, f"{self._session}{path}", json=body, timeout=60)
        value = resp.json().get("value")
        if resp.status_code >= 400:
            raise RuntimeError(f"webdriver {method} {path}: {value}")
        return value

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self._call("GET", "/url")

    def find(self, css: str, timeout: float = 20.0) -> str:
        """The element id of the first match, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def find_text(self, text: str | tuple[str, ...], css: str = "a, button", timeout: float = 20.0) -> str:
        """The first visible element matching ``css`` whose text is ``text`` (what a user reads, or what a
        screen reader says of an icon button: its ``aria-label``; a tuple: any of them), waiting for it."""
        script = (
            "const [css, texts] = arguments;"
            "return [...document.querySelectorAll(css)].find(e => e.getClientRects().length > 0 && "
            "(texts.includes(e.innerText.trim()) || texts.includes(e.getAttribute('aria-label')))) || null;"
        )
        texts = [text] if isinstance(text, str) else list(text)
        found = self.wait(lambda: self.run(script, css, texts), timeout=timeout, what=f"{css} {text!r}")
        return found[ELEMENT]

    @property
    def text(self) -> str:
        """The visible text of the current document (``innerText``)."""
        return self.run("return document.body ? document.body.innerText : ''")

    def click(self, element: str) -> None:
        self._call("POST", f"/element/{element}/click", {})

    def clear(self, element: str) -> None:
        self._call("POST", f"/element/{element}/clear", {})

    def type_text(self, element: str, text: str) -> None:
        """Key presses into the element, as a user types (React sees each input event)."""
        self._call("POST", f"/element/{element}/value", {"text": text})

    def element(self, script: str, *args: Any) -> str:
        """The element id of what ``script`` returns (a DOM element found by JavaScript)."""
        found = self.run(script, *args)
        assert isinstance(found, dict), f"no element from {script!r}: {found!r}"
        assert ELEMENT in found, f"no element from {script!r}: {found!r}"
        return found[ELEMENT]

    def attribute(self, element: str, name: str) -> str | None:
        return self._call("GET", f"/element/{element}/attribute/{name}")

    def frame(self, element: str | None) -> None:
        """Switch into an iframe (its element id), or back to the top document (None)."""
        self._call("POST", "/frame", {"id": None if element is None else {ELEMENT: element}})

    def run(self, script: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    @property
    def windows(self) -> list[str]:
        return self._call("GET", "/window/handles")

    @property
    def window(self) -> str:
        return self._call("GET", "/window")

    def switch_window(self, handle: str) -> None:
        self._call("POST", "/window", {"handle": handle})

    def wait(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.25)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            requests.delete(self._session, timeout=20)
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
