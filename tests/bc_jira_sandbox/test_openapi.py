"""The OpenAPI validator: operation lookup, $ref resolution, OpenAPI ``nullable``, clear messages."""

from __future__ import annotations

import pytest

from bc_jira_sandbox.openapi import OpenApiValidator, SpecViolation, get_validator


@pytest.fixture(scope="module")
def v() -> OpenApiValidator:
    return get_validator()


def test_vendored_spec_is_the_official_one(v: OpenApiValidator) -> None:
    assert v.spec["info"]["title"] == "The Jira Cloud platform REST API"
    assert v.spec["info"]["version"].endswith("57a0ca5b4a0bb0ac5f3fee4764acb1c14e4d7e71")


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/ex/jira/abc/rest/api/3/issue/bulk", "/rest/api/3/issue/bulk"),
        ("PUT", "/site/rest/api/3/issue/FIN-1", "/rest/api/3/issue/{issueIdOrKey}"),
        ("POST", "/rest/api/3/issue/FIN-1/transitions", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
        ("POST", "/ex/jira/abc/rest/api/3/search/jql", "/rest/api/3/search/jql"),
        ("PUT", "/rest/api/3/webhook/refresh", "/rest/api/3/webhook/refresh"),
        ("GET", "/rest/api/3/project/FIN/statuses", "/rest/api/3/project/{projectIdOrKey}/statuses"),
    ],
)
def test_operation_lookup_prefers_literal_segments(
    v: OpenApiValidator, method: str, path: str, template: str
) -> None:
    assert v.operation(method, path)[0] == template


def test_unknown_operation(v: OpenApiValidator) -> None:
    with pytest.raises(KeyError, match="no operation"):
        v.operation("PATCH", "/rest/api/3/search/jql")


def test_response_schema_refs_are_resolved(v: OpenApiValidator) -> None:
    ok = {
        "issues": [{"id": "1", "key": "FIN-1", "fields": {"status": {"statusCategory": {"id": 3}}}}],
        "isLast": True,
    }
    v.validate_response("POST", "/rest/api/3/search/jql", 200, ok)
    with pytest.raises(SpecViolation) as err:
        v.validate_response(
            "POST",
            "/rest/api/3/search/jql",
            200,
            {"issues": [{"id": 10000}], "total": 1, "nextPageToken": None},
        )
    text = str(err.value)
    assert "'total' was unexpected" in text
    assert "issues/0/id" in text
    assert "nextPageToken" in text


def test_bulk_create_shapes(v: OpenApiValidator) -> None:
    body = {
        "issues": [{"id": "1", "key": "FIN-1", "self": "x"}],
        "errors": [
            {
                "status": 400,
                "failedElementNumber": 1,
                "elementErrors": {"errorMessages": [], "errors": {"a": "b"}},
            }
        ],
    }
    v.validate_response("POST", "/rest/api/3/issue/bulk", 201, body)
    v.validate_response("POST", "/rest/api/3/issue/bulk", 400, {"issues": [], "errors": body["errors"]})
    with pytest.raises(SpecViolation, match="failedElementNumber"):
        v.validate_response("POST", "/rest/api/3/issue/bulk", 201, {"errors": [{"failedElementNumber": "1"}]})


def test_requests_are_checked(v: OpenApiValidator) -> None:
    v.validate_request(
        "POST",
        "/rest/api/3/webhook",
        {
            "url": "https://x",
            "webhooks": [
                {"events": ["jira:issue_updated"], "jqlFilter": "project = FIN", "fieldIdsFilter": ["status"]}
            ],
        },
    )
    with pytest.raises(SpecViolation, match="'url' is a required property"):
        v.validate_request("POST", "/rest/api/3/webhook", {"webhooks": []})
    with pytest.raises(SpecViolation, match="is not one of"):
        v.validate_request(
            "POST",
            "/rest/api/3/webhook",
            {"url": "x", "webhooks": [{"events": ["issue_moved"], "jqlFilter": "project = FIN"}]},
        )
    with pytest.raises(SpecViolation, match="reconcileIssues"):
        v.validate_request(
            "POST", "/rest/api/3/search/jql", {"jql": "project = FIN", "reconcileIssues": ["1"]}
        )


def test_nullable_and_bodyless_answers(v: OpenApiValidator) -> None:
    v.validate_response("PUT", "/rest/api/3/issue/FIN-1", 204, None)  # no content
    v.validate_response("DELETE", "/rest/api/3/webhook", 202, None)
    with pytest.raises(SpecViolation, match="emailAddress"):  # hidden email is omitted, never null
        v.validate_response("GET", "/rest/api/3/myself", 200, {"accountId": "a", "emailAddress": None})
    with pytest.raises(SpecViolation, match="not a documented response"):
        v.validate_response("GET", "/rest/api/3/myself", 418, {})


def test_nullable_translation() -> None:
    spec = {
        "paths": {
            "/rest/api/3/x": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}
                        }
                    }
                }
            }
        },
        "components": {
            "schemas": {
                "X": {
                    "type": "object",
                    "properties": {
                        "a": {"type": "string", "nullable": True},
                        "b": {"allOf": [{"$ref": "#/components/schemas/Y"}], "nullable": True},
                    },
                },
                "Y": {"type": "integer"},
            }
        },
    }
    v = OpenApiValidator(spec)
    v.validate_response("GET", "/rest/api/3/x", 200, {"a": None, "b": None})
    v.validate_response("GET", "/rest/api/3/x", 200, {"a": "s", "b": 3})
    with pytest.raises(SpecViolation):
        v.validate_response("GET", "/rest/api/3/x", 200, {"b": "three"})


def test_vendored_jira_spec_is_the_official_document() -> None:
    """The sandbox ships a copy (a fresh clone runs without shared/); it must be the vendor's, unchanged."""
    import hashlib
    from pathlib import Path

    from tests.conftest import IN_CI, REPO, SHARED_SPECS

    official = SHARED_SPECS / "jira-platform-openapi-v3.json"
    if not official.exists():
        if IN_CI:
            pytest.fail(f"{official} missing: CI lays shared/ beside the checkout")
        pytest.skip("shared/specs not present on this machine")
    vendored = Path(REPO / "include/bc_jira_sandbox/jira-platform-openapi-v3.json")
    digest = hashlib.sha256
    assert digest(vendored.read_bytes()).hexdigest() == digest(official.read_bytes()).hexdigest()


def test_example_forms_are_the_specs_own_examples_and_nothing_looser() -> None:
    """The spec's examples of GET /webhook and PUT /webhook/refresh contradict its int64 schema; the
    ``example_forms`` validator accepts exactly their form, the default one does not."""
    import json
    import re

    from bc_jira_sandbox.openapi import EXAMPLE_FORMS

    strict, examples = get_validator(), get_validator(example_forms=True)
    spec = strict.spec
    for path, method in (("/rest/api/3/webhook", "get"), ("/rest/api/3/webhook/refresh", "put")):
        example = json.loads(
            spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["example"]
        )
        with pytest.raises(SpecViolation, match="expirationDate"):
            strict.validate_response(method, path, 200, example)
        examples.validate_response(method, path, 200, example)
        stamps = [w["expirationDate"] for w in example.get("values", [example])]
        assert stamps
        assert all(re.fullmatch(EXAMPLE_FORMS[("Webhook", "expirationDate")]["pattern"], x) for x in stamps)
    for ok in (1559392950000, "2019-06-01T12:42:30.000+0000"):
        examples.validate_response("PUT", "/rest/api/3/webhook/refresh", 200, {"expirationDate": ok})
    for bad in ("2019-06-01", "tomorrow", "2019-06-01T12:42:30Z", 1.5, None):
        with pytest.raises(SpecViolation):
            examples.validate_response("PUT", "/rest/api/3/webhook/refresh", 200, {"expirationDate": bad})
