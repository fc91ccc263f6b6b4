"""The ``companies`` section of ``bc_jira_config``: which BC companies one deployment syncs, and their keys.

Why a module of its own: a company is more than a config entry. Its *identity* is (BC connection,
environment, company GUID): two environments can hold copies of one company with the same GUID, and one
environment holds several companies. From the identity comes a short stable *key* (8 hex characters of its
SHA-256) used in labels (``bc-company-<key>``), Variable names and logs. The *default* company (the
``bc_default`` connection's own ``company_id``) keeps today's names everywhere: store rows with the empty
company key, the Variables ``bc_jira_watermark_<entity>`` and issues without a company value, so an existing
deployment that adds ``companies`` (listing its current company and a new one) keeps its links and issues.

Parsing (:func:`parse_companies`) is pure; resolving an entry to a :class:`Company` (:func:`resolve_company`)
needs the connection's environment and, for an entry given by name, the id ``bc_jira_connect`` resolved
(Variable ``bc_jira_bc_companies``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bc_jira.config.model import _PROJECT_KEY_RE, AssigneeRule, Selection
from bc_jira.entities import ENTITIES, spec
from bc_jira.failfast import ConnectionConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from bc_jira.config.model import Config

DEFAULT_BC_CONN = "bc_default"
COMPANIES_VARIABLE_KEY = "bc_jira_bc_companies"  # written by bc_jira_connect: {conn id: {name: id}}
COMPANY_LABEL_PREFIX = "bc-company-"
DEFAULT_COMPANY_FIELD = "BC Company"
_ENTRY_KEYS = frozenset({"id", "name", "connection", "project_key", "selection", "assignees", "labels"})
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CONN_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")


@dataclass(frozen=True)
class CompanyEntry:
    """One entry of ``companies`` as written (not resolved: a name still needs its id)."""

    index: int
    company_id: str | None  # lowercase GUID, when given
    name: str | None
    connection: str = DEFAULT_BC_CONN
    project_key: str | None = None
    selection: Mapping[str, Selection] = dataclasses.field(default_factory=dict)
    assignees: tuple[AssigneeRule, ...] | None = None  # None: the global rules
    labels: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"companies[{self.index}]"

    def describe(self) -> str:
        what = self.company_id or repr(self.name)
        return f"{what} on {self.connection}"


@dataclass(frozen=True)
class CompanyScope:
    """What the sync of one record needs to know about its company (``Config.company``); None: single mode."""

    key: str
    name: str
    default: bool

    @property
    def label(self) -> str:
        return f"{COMPANY_LABEL_PREFIX}{self.key}"


@dataclass(frozen=True)
class Company:
    """A resolved company: its identity, its key and its overrides."""

    connection: str
    environment: str
    company_id: str
    name: str
    default: bool
    entry: CompanyEntry | None = None  # None: no ``companies`` section (the connection's company)

    @property
    def key(self) -> str:
        return company_key(self.connection, self.environment, self.company_id)

    @property
    def store_key(self) -> str:
        """The ``company`` column of the store: empty for the default company (its rows from before)."""
        return "" if self.default else self.key

    @property
    def label(self) -> str:
        """How logs and task labels name it: its name and key."""
        return f"{self.name} ({self.key})" if self.name else self.key

    def watermark_key(self, entity: str) -> str:
        """``bc_jira_watermark_<entity>`` for the default company, ``…__<key>`` for the others."""
        return watermark_key(entity, self.store_key)

    def config(self, cfg: Config) -> Config:
        """The global config with this company's overrides merged over it (single mode: ``cfg`` itself)."""
        if self.entry is None:
            return cfg
        e = self.entry
        changes: dict[str, Any] = {
            "company": CompanyScope(self.key, self.name or self.key, self.default),
            "labels": tuple(dict.fromkeys((*cfg.labels, *e.labels, f"{COMPANY_LABEL_PREFIX}{self.key}"))),
        }
        if e.project_key:
            changes["project_key"] = e.project_key
        if e.assignees is not None:
            changes["assignees"] = e.assignees
        for entity, sel in e.selection.items():
            changes[entity] = dataclasses.replace(cfg.entity(entity), selection=sel)
        return dataclasses.replace(cfg, **changes)


def company_key(connection: str, environment: str, company_id: str) -> str:
    """8 hex characters of the identity's SHA-256: short, stable while the identity is."""
    ident = f"{connection}|{environment.casefold()}|{company_id.casefold()}"
    return hashlib.sha256(ident.encode()).hexdigest()[:8]


def watermark_key(entity: str, store_key: str = "") -> str:
    base = spec(entity).watermark_key
    return f"{base}__{store_key}" if store_key else base


# -- parsing ------------------------------------------------------------------------------------------------


def _entry_selection(value: Any, path: str, problems: list[str]) -> dict[str, Selection]:
    from bc_jira.config.sections import _selection

    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be an object keyed by entity ({', '.join(ENTITIES)})")
        return {}
    out = {}
    for entity, sel in value.items():
        if entity not in ENTITIES:
            problems.append(f"{path}.{entity}: unknown entity; use one of {', '.join(ENTITIES)}")
            continue
        out[entity] = _selection(sel, entity, f"{path}.{entity}", problems)
    return out


def _entry_identity(
    value: Mapping[str, Any], path: str, problems: list[str]
) -> tuple[str | None, str | None]:
    cid, name = value.get("id"), value.get("name")
    if cid is None and name is None:
        problems.append(f'{path}: needs "id" (the company GUID from BC\'s GET companies) or "name"')
    if cid is not None and (not isinstance(cid, str) or not _GUID_RE.match(cid)):
        problems.append(f"{path}.id: {cid!r} is not a company id; use the GUID BC lists under GET companies")
        cid = None
    if name is not None and (not isinstance(name, str) or not name.strip()):
        problems.append(f"{path}.name: must be the company's name in BC, e.g. 'CRONUS Canada'")
        name = None
    return (cid.lower() if isinstance(cid, str) else None), (name.strip() if isinstance(name, str) else None)


def _entry_connection(value: Any, path: str, problems: list[str]) -> str:
    if value is None:
        return DEFAULT_BC_CONN
    if not isinstance(value, str) or not _CONN_RE.match(value):
        problems.append(f"{path}.connection: {value!r} is not an Airflow connection id (e.g. 'bc_canada')")
        return DEFAULT_BC_CONN
    return value


def _entry(index: int, value: Any, problems: list[str]) -> CompanyEntry | None:
    from bc_jira.config.sections import _assignees, _labels

    path = f"companies[{index}]"
    if not isinstance(value, dict):
        problems.append(f'{path}: must be an object such as {{"name": "CRONUS Canada", "project_key": "CA"}}')
        return None
    for key in sorted(set(value) - _ENTRY_KEYS):
        problems.append(f"{path}.{key}: unknown key; allowed keys are {', '.join(sorted(_ENTRY_KEYS))}")
    cid, name = _entry_identity(value, path, problems)
    project = value.get("project_key")
    if project is not None and (not isinstance(project, str) or not _PROJECT_KEY_RE.match(project)):
        problems.append(
            f"{path}.project_key: {project!r} is not a Jira project key; use the uppercase key shown in the "
            'project\'s issue keys, e.g. "CA"'
        )
        project = None
    assignees = value.get("assignees")
    rules = _assignees(assignees, problems, f"{path}.assignees") if assignees is not None else None
    return CompanyEntry(
        index=index,
        company_id=cid,
        name=name,
        connection=_entry_connection(value.get("connection"), path, problems),
        project_key=project,
        selection=_entry_selection(value.get("selection"), f"{path}.selection", problems),
        assignees=rules,
        labels=_labels(value.get("labels", []), f"{path}.labels", problems),
    )


def parse_companies(value: Any, problems: list[str]) -> tuple[CompanyEntry, ...]:
    """The ``companies`` list (None or missing: empty, the connection's one company); problems appended."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        problems.append(
            'companies: must be a non-empty list of objects such as [{"name": "CRONUS USA"}, '
            '{"id": "<company GUID>", "project_key": "CA"}], or omitted for the connection\'s company'
        )
        return ()
    entries = [e for i, v in enumerate(value) if (e := _entry(i, v, problems)) is not None]
    seen: dict[tuple[str, str], CompanyEntry] = {}
    for e in entries:
        for ident in (
            (e.connection, f"id:{e.company_id}"),
            (e.connection, f"name:{(e.name or '').casefold()}"),
        ):
            if ident[1] in ("id:None", "name:"):
                continue
            first = seen.setdefault(ident, e)
            if first is not e:
                problems.append(
                    f"{e.path}: the same company as {first.path} ({e.describe()}); list each company once"
                )
                break
    return tuple(entries)


# -- resolving ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionFacts:
    """What resolving needs of a BC connection: its environment and its own ``company_id`` (if any)."""

    environment: str
    company_id: str | None


class CompanyError(ConnectionConfigError):
    """A company cannot be synced (unknown name, missing connection, BC refuses it); names the company and the
    fix. A configuration error: its task fails at once, not retried (``bc_jira.failfast``)."""


def resolve_company(
    entry: CompanyEntry,
    facts: ConnectionFacts,
    default: ConnectionFacts,
    resolved: Mapping[str, Mapping[str, str]],
) -> Company:
    """The company an entry names. ``resolved``: Variable ``bc_jira_bc_companies`` (conn id -> name -> id).

    It is the default company when it is ``bc_default``'s own company: then its rows, Variables and issues
    are the ones the deployment had before ``companies``.
    """
    cid = entry.company_id
    if cid is None:
        names = {k.casefold(): v for k, v in (resolved.get(entry.connection) or {}).items()}
        cid = names.get((entry.name or "").casefold())
        if cid is None:
            raise CompanyError(
                f"{entry.path}: company {entry.name!r} on {entry.connection} has no resolved id; run the "
                "bc_jira_connect DAG (it looks names up with GET companies) or give its id"
            )
    is_default = (
        entry.connection == DEFAULT_BC_CONN and (default.company_id or "").casefold() == cid.casefold()
    )
    return Company(entry.connection, facts.environment, cid.lower(), entry.name or "", is_default, entry)


def single_company(default: ConnectionFacts) -> Company:
    """Without ``companies``: the connection's company, as the connector always synced it."""
    return Company(DEFAULT_BC_CONN, default.environment, (default.company_id or "").lower(), "", True, None)


def project_keys(cfg: Config) -> tuple[str, ...]:
    """Every Jira project the deployment's issues live in: ``project_key`` and the companies' own ones
    (what the Jira webhook filter and the write-back's safety-net poll must cover)."""
    return tuple(dict.fromkeys((cfg.project_key, *(e.project_key for e in cfg.companies if e.project_key))))


def project_clause(keys: Sequence[str], quote: Callable[[str], str] = str) -> str:
    """``project = FIN`` for one project (the clause of every deployment before companies, unchanged),
    ``project IN (FIN, CA)`` for several."""
    if len(keys) == 1:
        return f"project = {quote(keys[0])}"
    return f"project IN ({', '.join(quote(k) for k in keys)})"


def company_by_store_key(companies: Sequence[Company], store_key: str) -> Company | None:
    return next((c for c in companies if c.store_key == store_key), None)
