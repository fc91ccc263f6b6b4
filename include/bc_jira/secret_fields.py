"""Which connection extras are secrets, and teaching Airflow's secrets masker the names it would not hide.

Airflow redacts a connection's extra by key name (``[core] sensitive_var_conn_names`` plus built-in
substrings such as ``secret`` and ``token``): the API and the UI's forms show ``***`` for those, tasks'
logs mask their values, and a saved form merges ``***`` back to the stored value. A declared password field
(``format: password`` in ``conn-fields``) is only masked while typing; ``client_state`` matches no built-in
name, so the API used to return it in plain text. The names come from the provider's declarations (one home).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from bc_jira.provider import BUSINESS_CENTRAL, JIRA_CLOUD

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)


def declared_secret_extras(*conn_types: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    """Connection type -> the extras its form declares as password fields."""
    out: dict[str, tuple[str, ...]] = {}
    for ct in conn_types:
        fields = ct["conn-fields"]
        assert isinstance(fields, dict)
        out[str(ct["connection-type"])] = tuple(
            name for name, spec in fields.items() if spec["schema"].get("format") == "password"
        )
    return out


SECRET_EXTRAS = declared_secret_extras(BUSINESS_CENTRAL, JIRA_CLOUD)
ALL_SECRET_EXTRAS = tuple(sorted({n for names in SECRET_EXTRAS.values() for n in names}))


class _Masker(Protocol):
    """The part of Airflow's ``SecretsMasker`` used here."""

    sensitive_variables_fields: list[str]

    def should_hide_value_for_key(self, name: str) -> bool: ...


def _airflow_maskers() -> list[_Masker]:
    """The api-server's and the task SDK's masker (separate singletons in Airflow 3.3)."""
    maskers: list[_Masker] = []
    for module in ("airflow._shared.secrets_masker", "airflow.sdk._shared.secrets_masker"):
        try:
            mod = __import__(module, fromlist=["_secrets_masker"])
            maskers.append(mod._secrets_masker())
        except (ImportError, AttributeError):
            continue
    return maskers


def missing_names(masker: _Masker, names: Iterable[str] = ALL_SECRET_EXTRAS) -> list[str]:
    """The names this masker would show in plain text."""
    return [n for n in names if not masker.should_hide_value_for_key(n)]


def register_with_airflow() -> list[str]:
    """Add our secret extras the maskers do not hide yet; returns what was added (idempotent).

    Called where our code loads: the plugin (api-server: API, UI forms, Test) and ``bc_jira.hooks`` (tasks).
    Without a masker to teach, say which setting does the same.
    """
    maskers = _airflow_maskers()
    if not maskers:
        log.warning(
            "bc-jira: Airflow's secrets masker was not found; set [core] sensitive_var_conn_names = %s "
            "so the UI and the API redact these connection extras",
            ",".join(ALL_SECRET_EXTRAS),
        )
        return []
    added: list[str] = []
    for masker in maskers:
        for name in missing_names(masker):
            if name in masker.sensitive_variables_fields:
                continue  # known, but Airflow hides nothing ([core] hide_sensitive_var_conn_fields off)
            masker.sensitive_variables_fields = [*masker.sensitive_variables_fields, name]
            if name not in added:
                added.append(name)
    return added
