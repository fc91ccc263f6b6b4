"""Validate Jira payloads against the official OpenAPI document (request and response schemas per operation).

The sandbox is only worth something if its answers look like Jira's; this module lets the sandbox (optionally)
and the tests check every body against the vendored spec ``jira-platform-openapi-v3.json``, ``$ref`` resolved.
OpenAPI 3.0 ``nullable`` is translated to a JSON-Schema ``null`` type; everything else is Draft 4 compatible.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

SPEC_ENV = "BC_JIRA_OPENAPI_SPEC"
_SPEC_NAME = "jira-platform-openapi-v3.json"
_API_PREFIX = re.compile(r"^.*?(?=/rest/api/3/)")


# Where the spec's own examples contradict its schema, the example's form, exactly.
# ``Webhook.expirationDate`` and ``WebhooksExpirationDate.expirationDate`` are ``integer``/``int64`` in the
# schemas, while the examples of GET /rest/api/3/webhook and PUT /rest/api/3/webhook/refresh (and
# Atlassian's reference page) give "2019-06-01T12:42:30.000+0000". A known deviation, used only by a
# sandbox told to answer in that form (``get_validator(example_forms=True)``); every other rule of the
# schema still applies.
_EXAMPLE_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$"}
EXAMPLE_FORMS: dict[tuple[str, str], dict[str, Any]] = {
    ("Webhook", "expirationDate"): _EXAMPLE_DATE,
    ("WebhooksExpirationDate", "expirationDate"): _EXAMPLE_DATE,
}


class SpecViolation(AssertionError):
    """A body does not match the spec's schema; the message lists each error with its JSON path."""


def spec_path() -> Path:
    """The vendored spec: ``$BC_JIRA_OPENAPI_SPEC``, else the copy shipped inside this package."""
    env = os.environ.get(SPEC_ENV)
    return Path(env) if env else Path(__file__).with_name(_SPEC_NAME)


def _nullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into JSON Schema, recursively."""
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items()}
        if out.pop("nullable", False):
            if "type" in out:
                types = out["type"] if isinstance(out["type"], list) else [out["type"]]
                out["type"] = [*types, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
            if "$ref" in out or "allOf" in out:
                out = {"anyOf": [{"type": "null"}, out]}
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


class OpenApiValidator:
    """Finds the operation for ``METHOD /.../rest/api/3/...`` and validates bodies against its schemas."""

    def __init__(self, spec: dict[str, Any], *, example_forms: bool = False) -> None:
        self.spec = spec
        self._components = {"schemas": _nullable(spec.get("components", {}).get("schemas", {}))}
        if example_forms:
            for (schema, prop), alternative in EXAMPLE_FORMS.items():
                props = self._components["schemas"][schema]["properties"]
                props[prop] = {"anyOf": [props[prop], alternative]}
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in spec.get("paths", {}):
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            self._routes.append((re.compile(f"^{regex}$"), template))
        # literal segments beat parameters: /issue/bulk must not match /issue/{issueIdOrKey}
        self._routes.sort(key=lambda r: (r[1].count("{"), -len(r[1])))
        self._validators: dict[str, Draft4Validator] = {}

    # -- lookup ----------------------------------------------------------------------------------------------
    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """``(path template, operation)`` for a concrete request path (any prefix before /rest/api/3)."""
        path = _API_PREFIX.sub("", path.split("?", 1)[0])
        for regex, template in self._routes:
            if regex.match(path):
                op = self.spec["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        raise KeyError(f"no operation {method.upper()} {path} in the Jira OpenAPI spec")

    def request_schema(self, method: str, path: str) -> dict[str, Any] | None:
        _, op = self.operation(method, path)
        content = op.get("requestBody", {}).get("content", {})
        return content.get("application/json", {}).get("schema")

    def response_schema(self, method: str, path: str, status: int) -> dict[str, Any] | None:
        """The schema of that status (or ``default``); None when the spec declares no JSON body for it."""
        _, op = self.operation(method, path)
        responses = op.get("responses", {})
        resp = responses.get(str(status)) or responses.get("default")
        if resp is None:
            raise SpecViolation(
                f"{method.upper()} {path}: status {status} is not a documented response "
                f"(documented: {', '.join(sorted(responses))})"
            )
        return resp.get("content", {}).get("application/json", {}).get("schema")

    # -- validation ------------------------------------------------------------------------------------------
    def _validator(self, schema: dict[str, Any]) -> Draft4Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            root = {"components": self._components, "allOf": [_nullable(schema)]}
            self._validators[key] = Draft4Validator(root)
        return self._validators[key]

    def check(self, schema: dict[str, Any] | None, body: Any, what: str) -> None:
        if schema is None:
            return
        errors = sorted(
            self._validator(schema).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]
        )
        if errors:
            lines = [
                f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
                for e in errors[:10]
            ]
            raise SpecViolation(f"{what} does not match the Jira OpenAPI spec:\n" + "\n".join(lines))

    def validate_request(self, method: str, path: str, body: Any) -> None:
        self.check(self.request_schema(method, path), body, f"request body of {method.upper()} {path}")

    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        schema = self.response_schema(method, path, status)
        if schema and body is None:
            raise SpecViolation(f"{method.upper()} {path} -> {status}: the spec expects a JSON body")
        self.check(schema, body, f"response {status} of {method.upper()} {path}")


@cache
def _spec() -> dict[str, Any]:
    with open(spec_path(), encoding="utf-8") as fh:
        return json.load(fh)


@cache
def get_validator(example_forms: bool = False) -> OpenApiValidator:
    """The validator for the vendored spec, loaded once per process (the file is 2.4 MB).

    ``example_forms``: also accept, exactly, the forms in ``EXAMPLE_FORMS`` (the spec's examples).
    """
    return OpenApiValidator(_spec(), example_forms=example_forms)
