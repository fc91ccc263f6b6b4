"""The sandbox's shared machinery: state object, clock, options, stats, outbound sender, persistence.

The service modules (``entra``, ``bc``, ``atlassian``, ``jira``) hold the emulated data and routes;
this module holds what every one of them needs (faults, latency and rate limits: :mod:`.middleware`).
State classes keep their back-reference in an attribute named ``sb``: persistence pickles everything else.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import pickle
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from bc_jira_sandbox.middleware import Faults, RateLimits

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

BULK_CREATE_ORDERS = ("input", "shuffled")


@dataclass
class Options:
    """Options of ``serve``; some can be changed at run time through ``POST /_sandbox/options``."""

    latency_ms: int = 0
    notify_delay_s: float = 30.0
    search_lag_s: float = 2.0
    # Order of ``issues[]`` in a bulk-create answer: "input" or "shuffled". Atlassian does not document that
    # the answer keeps the input order (POST /rest/api/3/issue/bulk, "Bulk create issue"), so a client must
    # not rely on it; "shuffled" lets tests prove a client links created issues by value, not by position.
    bulk_create_order: str = "input"
    seed: int = 42
    data_file: str | None = None
    seed_vendors: int = 25
    seed_invoices: int = 60
    seed_orders: int = 12
    # Companies in the BC environment (bc.companies): company 1 is creds["company_id"], each has own data.
    companies: int = 1


class Stats:
    """Counts API calls per ``METHOD route-template`` and named events (token refreshes, webhooks sent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.company_calls: Counter[str] = Counter()  # BC API calls per company id

    def record_call(self, key: str) -> None:
        with self._lock:
            self.calls[key] += 1

    def record_company_call(self, company_id: str) -> None:
        with self._lock:
            self.company_calls[company_id.lower()] += 1

    def company_count(self, company_id: str) -> int:
        """BC API calls under ``companies({company_id})`` since the last reset (per-company budgets)."""
        with self._lock:
            return self.company_calls[company_id.lower()]

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.events[name] += n

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            bc = sum(v for k, v in self.calls.items() if " /v2.0/" in k)
            jira = sum(v for k, v in self.calls.items() if " /ex/jira/" in k or " /site/" in k)
            return {
                "calls": dict(self.calls),
                "events": dict(self.events),
                "faults": dict(self.faults),
                "company_calls": dict(self.company_calls),
                "totals": {"bc": bc, "jira": jira, "all": sum(self.calls.values())},
            }

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.events.clear()
            self.faults.clear()
            self.company_calls.clear()


class Scheduler:
    """One background thread running callbacks at a time; how BC batches notifications and Jira retries."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="sandbox-scheduler", daemon=True)
        self._thread.start()

    def schedule(self, delay_s: float, fn: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), fn))
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cv.wait(timeout=None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, fn = heapq.heappop(self._heap)
            # Each callback on its own thread: a slow receiver must not delay the others.
            threading.Thread(target=self._run, args=(fn,), daemon=True).start()

    @staticmethod
    def _run(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("sandbox scheduled callback failed")


def _make_creds(rng: random.Random) -> dict[str, str]:
    def guid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def secret(n: int = 32) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
        return "".join(rng.choice(alphabet) for _ in range(n))

    site = f"sandbox-{rng.randrange(1000, 9999)}"
    return {
        "tenant_id": guid(),
        "environment": "production",
        "company_id": guid(),
        "bc_client_id": guid(),
        "bc_client_secret": secret(40),
        "bc_client_state": secret(24),
        "atlassian_client_id": secret(32),
        "atlassian_client_secret": secret(64),
        "cloud_id": guid(),
        "site_name": site,
        "site_url": f"https://{site}.atlassian.net",
        "redirect_uri": "http://localhost:8080/bc-jira/jira/oauth/callback",
        "refresh_token": "",  # filled by the Atlassian module: the pre-consented grant's first token
        "webhook_secret": secret(32),
        "jira_email": "connector@example.com",
        "jira_api_token": "ATATT" + secret(40),
        "project_key": "FIN",
    }


class Sandbox:
    """Everything one sandbox process emulates; all mutable state is guarded by ``lock``."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self.lock = threading.RLock()
        self.rng = random.Random(self.options.seed)
        self.creds = _make_creds(random.Random(f"creds-{self.options.seed}"))
        self._base_url = ""
        self.clock_offset_s = 0.0
        self.stats = Stats()
        self.faults = Faults(random.Random(f"faults-{self.options.seed}"))
        self.rate_limits = RateLimits()
        self._scheduler = Scheduler()
        self._http = requests.Session()
        self._dirty = False
        # the service modules import core: import them late
        from bc_jira_sandbox.bc.state import BcState
        from bc_jira_sandbox.jira.state import JiraState

        self.bc = BcState(self)  # company 1; every company: bc_companies (bc.companies)
        self.bc_companies: list[BcState] = [self.bc]
        self.jira = JiraState(self)
        if self.options.data_file and os.path.exists(self.options.data_file):
            self.load(self.options.data_file)
        else:
            self.reset()

    # -- where it listens -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        self._base_url = url.rstrip("/")
        self._bind_site()

    def _bind_site(self) -> None:
        """Once the sandbox listens on ``base_url``, its Jira site is ``{base_url}/site``: a URL that answers.

        Real Jira serves its REST API (``{site}/rest/api/3``, basic auth) and its pages
        (``{site}/browse/KEY``) under one site URL, and accessible-resources names that URL as the site's
        ``url`` ("url": "https://your-domain.atlassian.net", https://developer.atlassian.com/cloud/oauth/
        getting-started/making-calls-to-api/). So the sandbox's site is where its basic-auth API already
        lives, accessible-resources names it, and every link the connector builds from ``site_url``
        resolves to the sandbox's issue page. Unbound (in-process, no server) the site keeps an
        ``atlassian.net`` name that never answers.
        """
        if self._base_url:
            self.creds["site_url"] = f"{self._base_url}/site"

    # -- clock -------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    def advance_clock(self, seconds: float) -> datetime:
        with self.lock:
            self.clock_offset_s += seconds
        return self.now()

    # -- data --------------------------------------------------------------------------------------------
    def reset(
        self,
        vendors: int | None = None,
        invoices: int | None = None,
        orders: int | None = None,
        companies: int | None = None,
    ) -> None:
        """Fresh data: ``companies`` (default ``options.companies``) companies, each seeded alike."""
        from bc_jira_sandbox.bc import companies as bc_companies

        n = bc_companies.check_count(self.options.companies if companies is None else companies)
        with self.lock:
            self.rng.seed(self.options.seed)
            self.clock_offset_s = 0.0
            self.faults.clear()
            self.rate_limits.clear()
            self.bc.reset()
            self.bc_companies = bc_companies.build(self, n)
            self.jira.reset()
            counts = (
                self.options.seed_vendors if vendors is None else vendors,
                self.options.seed_invoices if invoices is None else invoices,
                self.options.seed_orders if orders is None else orders,
            )
            self.seed(*counts)
            for other in self.bc_companies[1:]:  # after company 1: its data stays what it always was
                other.seed(*counts)
            self.stats.reset()
            self.mark_dirty()

    def seed(
        self,
        vendors: int = 0,
        invoices: int = 0,
        orders: int = 0,
        draft_invoices: int = 0,
        company: str | None = None,
    ) -> None:
        """Add records to one company (id or name; default company 1)."""
        from bc_jira_sandbox.bc import companies as bc_companies

        with self.lock:
            state = bc_companies.find(self, company)
            state.seed(vendors=vendors, invoices=invoices, orders=orders, draft_invoices=draft_invoices)
            self.jira.seed()
            self.mark_dirty()

    # -- background work -----------------------------------------------------------------------------------
    def schedule(self, delay_s: float, fn: Callable[[], None]) -> None:
        self._scheduler.schedule(delay_s, fn)

    def post_json(
        self, url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> requests.Response | None:
        """Send an outbound webhook; errors are logged, never raised (a sender must not crash the sandbox)."""
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        try:
            return self._http.post(url, data=body, headers=hdrs, timeout=timeout)
        except requests.RequestException as exc:
            log.warning("sandbox webhook to %s failed: %s", url, type(exc).__name__)
            return None

    def get(
        self, url: str, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> requests.Response | None:
        """An outbound GET (e.g. a handshake sent with GET); errors are logged, never raised."""
        try:
            return self._http.get(url, headers=headers or {}, timeout=timeout)
        except requests.RequestException as exc:
            log.warning("sandbox request to %s failed: %s", url, type(exc).__name__)
            return None

    # -- persistence (--data FILE) --------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    @staticmethod
    def _state_of(obj: Any) -> dict[str, Any]:
        return {k: v for k, v in obj.__dict__.items() if k != "sb"}

    def save(self, path: str | None = None) -> None:
        path = path or self.options.data_file
        if not path:
            return
        with self.lock:
            blob = pickle.dumps(
                {
                    "creds": self.creds,
                    "clock_offset_s": self.clock_offset_s,
                    "bc": self._state_of(self.bc),
                    "bc_more": [self._state_of(s) for s in self.bc_companies[1:]],
                    "jira": self._state_of(self.jira),
                }
            )
            self._dirty = False
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)

    def save_if_dirty(self) -> None:
        if self._dirty:
            self.save()

    def load(self, path: str) -> None:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
        with self.lock:
            self.creds = data["creds"]
            self._bind_site()
            self.clock_offset_s = data["clock_offset_s"]
            self.bc.__dict__.update(data["bc"])
            from bc_jira_sandbox.bc.state import BcState

            self.bc_companies = [self.bc]
            for more in data.get("bc_more", []):
                state = BcState(self, more["index"])
                state.__dict__.update(more)
                self.bc_companies.append(state)
            self.jira.__dict__.update(data["jira"])

    def public_options(self) -> dict[str, Any]:
        return asdict(self.options)


# -- ASGI middleware: latency, faults, stats ---------------------------------------------------------
