"""``make compose-check``: docker-compose.yaml is checked name by name (no Docker engine needed).

Every service it depends on, every volume, env file and ``${VAR}`` it names must exist or be declared,
and every ``AIRFLOW__SECTION__KEY`` must be a real Airflow 3.3 option (Airflow silently ignores a typo).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "airflow-init": "version",
}
INFRA_SERVICES = {"postgres", "redis"}
# Names read by the official apache/airflow image's entrypoint (docs: "Docker image > Entrypoint"),
# by the postgres image, and by Celery's dumb-init wrapper; not Airflow config options.
IMAGE_ENV = {
    "_AIRFLOW_DB_MIGRATE",
    "_AIRFLOW_WWW_USER_CREATE",
    "_AIRFLOW_WWW_USER_USERNAME",
    "_AIRFLOW_WWW_USER_PASSWORD",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "DUMB_INIT_SETSID",
}
SECRET_WORDS = ("PASSWORD", "SECRET", "FERNET", "TOKEN")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _dotenv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            out[key.strip()] = value
    return out


def _airflow_options() -> set[tuple[str, str]]:
    from airflow.configuration import conf

    return {
        (section, option)
        for section, body in conf.configuration_description.items()
        for option in body.get("options", {})
    }


def _git_ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0


def test_every_component_of_the_official_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(AIRFLOW_SERVICES) | INFRA_SERVICES
    for name, command in AIRFLOW_SERVICES.items():
        svc = services[name]
        if name == "airflow-init":
            assert svc["entrypoint"] == "/bin/bash", name
            assert svc["command"][:1] == ["-c"], name
            assert svc["command"][1].startswith(f"/entrypoint airflow {command} &&"), "migrate + admin user"
        else:
            assert svc["command"] == command, name
        assert svc.get("build") == ".", f"{name}: built from this repository (Dockerfile)"
        assert _env(svc)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        if name != "airflow-init":
            assert "healthcheck" in svc, name
            assert svc.get("restart") == "always", name
            init = services[name]["depends_on"]["airflow-init"]
            assert init["condition"] == "service_completed_successfully", name
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"], "the api-server publishes UI + webhooks"
    assert all("ports" not in s for n, s in services.items() if n != "airflow-apiserver"), "nothing else"


def test_depends_on_and_volumes_exist(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    used = set()
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
        for mount in svc.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in volumes, f"{name}: volume {source} not declared under volumes:"
                used.add(source)
    assert used == volumes, f"declared but unused volumes: {volumes - used}"
    init = REPO / "docker/postgres/10-bc-jira-db.sh"
    assert "CREATE DATABASE bc_jira" in init.read_text()
    assert init.stat().st_mode & 0o111


def test_env_files_exist_or_are_ignored_with_a_committed_example(compose: dict[str, Any]) -> None:
    seen = set()
    for svc in compose["services"].values():
        for item in svc.get("env_file") or []:
            path = item["path"] if isinstance(item, dict) else item
            seen.add(path)
    assert seen == {"bc-jira.env"}
    for path in [*seen, ".env"]:
        assert _git_ignored(path), f"{path} holds secrets: it must be git-ignored"
        assert (REPO / f"{path}.example").is_file(), f"{path}.example must be committed"


def test_every_interpolated_variable_is_declared_and_secrets_are_required(compose: dict[str, Any]) -> None:
    declared = _dotenv(REPO / ".env.example")
    text = COMPOSE.read_text()
    found = INTERPOLATION.findall(text)
    assert found
    names = {name for name, _, _ in found}
    assert names <= set(declared), f"not in .env.example: {names - set(declared)}"
    for name, op, _ in found:
        if (
            any(w in name for w in ("PASSWORD", "FERNET_KEY", "JWT_SECRET", "SECRET_KEY"))
            and name != "BC_JIRA_FERNET_KEYS"
        ):
            assert op == ":?", f"${{{name}}} must be required (:?), never defaulted"
    assert "${AIRFLOW__CORE__FERNET_KEY:?set a Fernet key}" in text
    assert declared["AIRFLOW__CORE__FERNET_KEY"] == "", "the example must not ship a usable key"
    # No literal secret anywhere: every secret-looking value is an interpolation.
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if any(w in key for w in SECRET_WORDS) or "@" in value:
                assert "${" in value or key == "AIRFLOW__CELERY__BROKER_URL", f"{name}: {key} is inline"


def test_airflow_env_var_names_are_real_config_options(compose: dict[str, Any]) -> None:
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import DEFAULT_CONN_ID
    from bc_jira.token_cipher import FERNET_KEYS_ENV

    options = _airflow_options()
    conn_ids = {BusinessCentralHook.default_conn_name, JiraCloudHook.default_conn_name, DEFAULT_CONN_ID}
    names = set(_dotenv(REPO / ".env.example")) | set(_dotenv(REPO / "bc-jira.env.example"))
    for svc in compose["services"].values():
        names |= set(_env(svc))
    unknown = []
    for name in sorted(names):
        if name.startswith("AIRFLOW__"):
            section, _, option = name[len("AIRFLOW__") :].partition("__")
            if (section.lower(), option.lower()) not in options:
                unknown.append(name)
        elif name.startswith("AIRFLOW_CONN_"):
            assert name[len("AIRFLOW_CONN_") :].lower() in conn_ids, name
        elif name.startswith("AIRFLOW_VAR_"):
            assert name == "AIRFLOW_VAR_BC_JIRA_CONFIG", name
        elif name not in IMAGE_ENV | {
            FERNET_KEYS_ENV,
            "BC_JIRA_DB_PASSWORD",
            "AIRFLOW_UID",
            "AIRFLOW_PUBLIC_URL",
            "BC_JIRA_IMAGE",
            "BC_JIRA_CONFIG",
        }:
            unknown.append(name)
    assert not unknown, f"not Airflow options / not known to the images: {unknown}"


def test_a_typo_would_be_caught() -> None:
    options = _airflow_options()
    assert ("core", "fernet_key") in options
    assert ("celery", "broker_url") in options
    assert ("core", "fernet_keys") not in options
    assert ("api", "jwt_secret") not in options


def test_connector_env_example_matches_the_provider_and_config() -> None:
    from bc_jira.config import parse_config
    from bc_jira.provider import get_provider_info

    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    env = _dotenv(REPO / "bc-jira.env.example")
    for key in ("AIRFLOW_CONN_BC_DEFAULT", "AIRFLOW_CONN_JIRA_DEFAULT"):
        conn = json.loads(env[key])
        ctype = types[conn["conn_type"]]
        assert set(conn["extra"]) <= set(ctype["conn-fields"]), f"{key}: unknown extra fields"
    assert "AIRFLOW_VAR_BC_JIRA_CONFIG" not in env, (
        "an env var would shadow the Variable in Admin > Variables"
    )
    parse_config(json.loads(env["BC_JIRA_CONFIG"]))  # raises ConfigError with every problem


def test_dockerfile_installs_this_package_on_the_pinned_airflow() -> None:
    docker = (REPO / "Dockerfile").read_text()
    pins = dict(
        line.split("==", 1)
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert f"ARG AIRFLOW_VERSION={pins['apache-airflow']}" in docker
    assert "FROM apache/airflow:${AIRFLOW_VERSION}" in docker
    assert "apache-airflow-providers-celery" in pins, "CeleryExecutor needs the celery provider"
    for path in ("requirements.txt", "pyproject.toml", "include", "dags", "plugins"):
        assert path in docker, path
        assert (REPO / path).exists(), path


def test_airflow_init_writes_bc_jira_config_into_the_metadata_db_once(
    compose: dict[str, Any], airflow_db: Path
) -> None:
    """The init script itself, with the real ``airflow`` CLI on the tests' metadata DB (the image's
    entrypoint step replaced by ``true``): the first run creates the Variable, a re-run keeps an edit."""
    from airflow.models import Variable

    script = compose["services"]["airflow-init"]["command"][1].replace("/entrypoint airflow version", "true")
    script = script.replace("$$", "$")  # compose's escape for a literal $
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_VAR_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    Variable.delete("bc_jira_config")
    try:
        first = subprocess.run(
            ["bash", "-c", script],
            env={**env, "BC_JIRA_CONFIG": '{"project_key": "FIN"}'},
            capture_output=True,
        )
        assert first.returncode == 0, first.stderr[-2000:]
        assert json.loads(Variable.get("bc_jira_config")) == {"project_key": "FIN"}
        Variable.set("bc_jira_config", '{"project_key": "EDIT"}')  # as the UI would
        again = subprocess.run(
            ["bash", "-c", script],
            env={**env, "BC_JIRA_CONFIG": '{"project_key": "FIN"}'},
            capture_output=True,
        )
        assert again.returncode == 0, again.stderr[-2000:]
        assert b"kept" in again.stdout, again.stderr[-2000:]
        assert json.loads(Variable.get("bc_jira_config")) == {"project_key": "EDIT"}
    finally:
        Variable.delete("bc_jira_config")
