"""``python -m bc_jira_sandbox serve|airflow-env``: run the sandbox, or print Airflow settings aimed at it."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import threading
import time
from typing import Any

import requests

from bc_jira_sandbox.core import Options, Sandbox

log = logging.getLogger("bc_jira_sandbox")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bc_jira_sandbox.app import create_app

    started = time.monotonic()
    options = Options(
        latency_ms=args.latency_ms,
        notify_delay_s=args.notify_delay_s,
        search_lag_s=args.search_lag_s,
        seed=args.seed,
        data_file=args.data,
        seed_vendors=args.seed_vendors,
        seed_invoices=args.seed_invoices,
        seed_orders=args.seed_orders,
        companies=args.companies,
    )
    sb = Sandbox(options)
    sb.base_url = f"http://{args.host}:{args.port}"
    app = create_app(sb)
    if args.data:

        def saver() -> None:
            while True:
                time.sleep(1.0)
                sb.save_if_dirty()

        threading.Thread(target=saver, name="sandbox-saver", daemon=True).start()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http="h11",
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    log.warning(
        "bc-jira sandbox on %s (%s BC companies, counts %s each) ready in %.2f s",
        sb.base_url,
        len(sb.bc_companies),
        sb.bc.counts(),
        time.monotonic() - started,
    )
    try:
        server.run()
    finally:
        sb.save()
    return 0


def sandbox_config(base_url: str, creds: dict[str, Any]) -> dict[str, Any]:
    """``bc_jira_config`` for this sandbox (the demo stores it in Admin > Variables, not in the env)."""
    return {"project_key": creds["project_key"], "bc_web_client_url": f"{base_url}/bc-web"}


def airflow_env_lines(base_url: str, creds: dict[str, Any]) -> list[str]:
    """The ``export`` lines that aim an Airflow at a running sandbox (one connection per service + config)."""
    bc = {
        "conn_type": "business_central",
        "login": creds["bc_client_id"],
        "password": creds["bc_client_secret"],
        "extra": {
            "tenant_id": creds["tenant_id"],
            "environment": creds["environment"],
            "company_id": creds["company_id"],
            "api_url": f"{base_url}/v2.0",
            "authority_url": base_url,
            "client_state": creds["bc_client_state"],
        },
    }
    jira = {
        "conn_type": "jira_cloud",
        "login": creds["atlassian_client_id"],
        "password": creds["atlassian_client_secret"],
        "extra": {
            "auth": "oauth2",
            "site_url": creds["site_url"],
            "redirect_uri": creds["redirect_uri"],
            "auth_url": base_url,
            "api_url": base_url,
            "webhook_secret": creds["webhook_secret"],
            "refresh_token": creds["refresh_token"],
        },
    }
    config = sandbox_config(base_url, creds)
    # AIRFLOW_VAR_* for scripts and tests; it shadows a Variable saved in the UI (the first task warns).
    return [
        f"export AIRFLOW_CONN_BC_DEFAULT={shlex.quote(json.dumps(bc))}",
        f"export AIRFLOW_CONN_JIRA_DEFAULT={shlex.quote(json.dumps(jira))}",
        f"export AIRFLOW_VAR_BC_JIRA_CONFIG={shlex.quote(json.dumps(config))}",
    ]


def _airflow_env(args: argparse.Namespace) -> int:
    base_url = f"http://{args.host}:{args.port}"
    try:
        resp = requests.get(f"{base_url}/_sandbox/credentials", timeout=5)
        resp.raise_for_status()
    except requests.RequestException as exc:
        print(
            f"no sandbox answers on {base_url}: start one with "
            f"`python -m bc_jira_sandbox serve --port {args.port}` ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 1
    print("\n".join(airflow_env_lines(base_url, resp.json())))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bc_jira_sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run every emulated service in one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8990)
    serve.add_argument("--seed-vendors", type=int, default=25)
    serve.add_argument("--seed-invoices", type=int, default=60)
    serve.add_argument("--seed-orders", type=int, default=12)
    serve.add_argument(
        "--companies", type=int, default=1, help="BC companies in the environment, each with its own data"
    )
    serve.add_argument("--latency-ms", type=int, default=0, help="added to every API call")
    serve.add_argument("--notify-delay-s", type=float, default=30.0, help="BC notification batching delay")
    serve.add_argument("--search-lag-s", type=float, default=2.0, help="how long Jira search lags writes")
    serve.add_argument(
        "--seed", type=int, default=42, help="random seed: same seed, same data and credentials"
    )
    serve.add_argument("--data", default=None, help="persist state to this file (default: in memory)")
    serve.add_argument("--log-level", default="warning")
    env = sub.add_parser("airflow-env", help="print export lines aiming Airflow at a running sandbox")
    env.add_argument("--host", default="127.0.0.1")
    env.add_argument("--port", type=int, default=8990)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return _serve(args) if args.command == "serve" else _airflow_env(args)


if __name__ == "__main__":
    sys.exit(main())
