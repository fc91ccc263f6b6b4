"""The root middleware that lets the Connections list's Test button reach our hooks on Airflow 3.3."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from bc_jira.web.connection_test import PortlessConnectionTest, normalised_test_body

LIST_BODY = {  # what Airflow 3.3.2's Test button posts for a stored connection without a port
    "conn_type": "business_central",
    "connection_id": "bc_default",
    "description": "",
    "extra": "{}",
    "host": "",
    "login": "cid",
    "password": "***",
    "port": 0,
    "schema": "",
}


def test_port_zero_is_dropped_for_our_types_only() -> None:
    out = normalised_test_body(json.dumps(LIST_BODY).encode())
    assert out is not None
    assert json.loads(out) == {k: v for k, v in LIST_BODY.items() if k != "port"}
    assert json.loads(normalised_test_body(json.dumps({**LIST_BODY, "conn_type": "jira_cloud"}).encode()))
    for body in (
        {**LIST_BODY, "conn_type": "http"},  # not ours: Airflow decides
        {**LIST_BODY, "port": 443},  # a real port is a real destination
        {**LIST_BODY, "port": False},
        {k: v for k, v in LIST_BODY.items() if k != "port"},
        [LIST_BODY],
    ):
        assert normalised_test_body(json.dumps(body).encode()) is None, body
    assert normalised_test_body(b"{not json") is None


def _echo_app() -> TestClient:
    app = FastAPI()

    @app.post("/api/v2/connections/test")
    async def test(request: Request) -> dict[str, object]:
        return {"body": json.loads(await request.body()), "length": request.headers.get("content-length")}

    @app.post("/api/v2/connections")
    async def other(request: Request) -> dict[str, object]:
        return {"body": json.loads(await request.body())}

    app.add_middleware(PortlessConnectionTest)
    return TestClient(app)


def test_the_middleware_rewrites_the_test_request_and_its_length() -> None:
    client = _echo_app()
    got = client.post("/api/v2/connections/test", json=LIST_BODY).json()
    assert "port" not in got["body"]
    assert got["body"]["password"] == "***"
    assert int(got["length"]) == len(json.dumps(got["body"]).encode())


def test_the_middleware_leaves_other_requests_alone() -> None:
    client = _echo_app()
    assert client.post("/api/v2/connections", json=LIST_BODY).json()["body"]["port"] == 0
    http = {**LIST_BODY, "conn_type": "http"}
    assert client.post("/api/v2/connections/test", json=http).json()["body"]["port"] == 0
    big = {**LIST_BODY, "extra": json.dumps({"x": "y" * 300_000})}  # over MAX_BODY: streamed through as is
    assert client.post("/api/v2/connections/test", json=big).json()["body"]["port"] == 0
