"""Jira fields and screens: lookups, values, field selection and the checks of a create/edit."""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox.jira.adf import as_stored, validate_adf
from bc_jira_sandbox.jira.base import JiraBase
from bc_jira_sandbox.jira.catalog import (
    _KEEP,
    CUSTOM_TYPE_PREFIX,
    CUSTOM_TYPES,
    NAVIGABLE,
    OFF_SCREEN,
    SCREEN_SYSTEM_FIELDS,
    jira_ts,
)
from bc_jira_sandbox.jira.priorities import by_id, priority_json, resolve

if TYPE_CHECKING:
    from collections.abc import Callable


class FieldsMixin(JiraBase):
    """Fields, screens and field checks of :class:`JiraState`."""

    def screen(self, type_id: str, which: str) -> set[str]:
        """Field ids on the create or edit screen of an issue type."""
        screens = self.__dict__.get("screens")
        if screens is None:  # state saved before screens existed: every field on every screen
            return set(SCREEN_SYSTEM_FIELDS) | {f["id"] for f in self.fields if f["custom"]}
        return screens[type_id][which]

    def off_screen(self, type_id: str, keys: Any, which: str) -> dict[str, str]:
        """Jira's error for every field of a create/edit that is not on that screen (400, in ``errors``)."""
        screen = self.screen(type_id, which)
        return {
            k: OFF_SCREEN.format(k)
            for k in keys
            if k not in ("project", "issuetype", "comment") and k not in screen
        }

    def set_field_type(self, fd: dict[str, Any], kind: str | None, searcher: Any) -> None:
        """Change a custom field's type and/or searcher (``searcher`` None: not searchable, no JQL clause)."""
        if kind is not None:
            fd["schema"]["type"] = CUSTOM_TYPES[kind][0]
            fd["schema"]["custom"] = CUSTOM_TYPE_PREFIX + kind
        if searcher is not _KEEP:
            fd["searchable"] = searcher is not None
            fd["clauseNames"] = [f"cf[{fd['schema']['customId']}]", fd["name"]] if searcher else []
        self.__dict__.pop("_field_memo", None)  # clause names changed in place

    def create_meta_fields(self, type_id: str) -> list[dict[str, Any]]:
        """``FieldCreateMetadata`` of an issue type's create screen (GET createmeta/{p}/issuetypes/{id})."""
        screen = self.screen(type_id, "create")
        out: list[dict[str, Any]] = []
        ops = {"labels": ["add", "set", "remove"], "issuetype": []}
        required = {"summary", "project", "issuetype"}
        for fd in self.fields:
            fid = fd["id"]
            if fid not in ("issuetype", "project") and fid not in screen:
                continue
            out.append(
                {
                    "fieldId": fid,
                    "key": fd["key"],
                    "name": fd["name"],
                    "required": fid in required,
                    "hasDefaultValue": fid == "reporter",
                    "operations": ops.get(fid, ["set"]),
                    "schema": dict(fd.get("schema") or {"type": "string"}),
                }
            )
        out.sort(key=lambda m: m["fieldId"] not in ("issuetype", "project"))  # stable: then field order
        return out

    def field(self, ident: str) -> dict[str, Any] | None:
        """A field by id, name or clause name (``cf[10042]``), case-insensitive."""
        low = ident.lower()
        # Memo (JQL evaluates this per clause per issue): rebuilt when the field list is replaced or grows.
        memo = self.__dict__.get("_field_memo")
        stamp = (id(self.fields), len(self.fields))
        if memo is None or memo[0] != stamp:
            memo = (stamp, {})
            self.__dict__["_field_memo"] = memo
        if low in memo[1]:
            return memo[1][low]
        found = None
        for f in self.fields:
            if low in (f["id"].lower(), f["name"].lower()) or low in (c.lower() for c in f["clauseNames"]):
                found = f
                break
        memo[1][low] = found
        return found

    def field_values(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Every field of an issue as the API shows it."""
        f = rec["fields"]
        out: dict[str, Any] = {
            "summary": f["summary"],
            "description": f.get("description"),
            "issuetype": self.issue_type_json(self.issue_type(f["issuetype"])),
            "project": self.project_json(project=self.project_by(f.get("project") or self.project["id"])),
            "status": self.status_json(self.status(f["status"])),
            "labels": list(f.get("labels", [])),
            "assignee": self.user_json(self.user(f["assignee"])) if f.get("assignee") else None,
            "reporter": self.user_json(self.user(f["reporter"])) if f.get("reporter") else None,
            "created": jira_ts(rec["created"]),
            "updated": jira_ts(rec["updated"]),
            "issuelinks": self.issuelinks_json(rec),
            "attachment": self.attachments_json(rec),
            # set when the status category changes (To Do -> Done, Done -> In Progress), not within a category
            "statuscategorychangedate": jira_ts(rec.get("category_changed") or rec["created"]),
        }
        out["duedate"] = f.get("duedate")
        prio = by_id(f["priority"]) if f.get("priority") else None
        out["priority"] = priority_json(self.url(), prio) if prio else None
        out["statusCategory"] = out["status"]["statusCategory"]
        for fd in self.fields:
            if fd["custom"]:
                out[fd["id"]] = f.get(fd["id"])
        return out

    def select_fields(self, fields: list[str] | str | None, values: dict[str, Any]) -> list[str]:
        if fields is None:
            return list(values)
        items = [x.strip() for x in (fields.split(",") if isinstance(fields, str) else fields) if x.strip()]
        chosen: list[str] = []
        for item in items:
            if item == "*all":
                chosen.extend(values)
            elif item == "*navigable":
                chosen.extend(k for k in values if k in NAVIGABLE or k.startswith("customfield_"))
            elif item.startswith("-") or item in ("id", "key"):
                continue
            else:
                fd = self.field(item)
                if fd is not None and fd["id"] in values:
                    chosen.append(fd["id"])
        excluded = {self.field(i[1:])["id"] for i in items if i.startswith("-") and self.field(i[1:])}
        return [c for c in dict.fromkeys(chosen) if c not in excluded]

    # -- writes ----------------------------------------------------------------------------------------------
    def _check_fields(
        self, fields: dict[str, Any], *, creating: bool, errors: dict[str, str]
    ) -> dict[str, Any]:
        """Validate and normalise ``fields`` of a create/edit; fills ``errors`` like Jira does."""
        out: dict[str, Any] = {}
        for fid, value in fields.items():
            check = _SYSTEM_CHECKS.get(fid, FieldsMixin._custom_value)
            try:
                out[fid] = check(self, fid, value)
            except _Invalid as exc:
                errors[fid] = str(exc)
        if creating:
            for req, msg in (
                ("project", "Specify a valid project ID or key"),
                ("issuetype", "Specify an issue type"),
                ("summary", "You must specify a summary of the issue."),
            ):
                if req not in fields and req not in errors:
                    errors[req] = msg
        return out

    def _project_value(self, fid: str, value: Any) -> Any:
        ident = (
            str((value or {}).get("id") or (value or {}).get("key") or "")
            if isinstance(value, dict)
            else str(value)
        )
        project = self.project_by(ident)
        if project is None:
            raise _Invalid("Specify a valid project ID or key")
        return project["id"]

    def _issuetype_value(self, fid: str, value: Any) -> Any:
        ident = (
            str((value or {}).get("id") or (value or {}).get("name") or "") if isinstance(value, dict) else ""
        )
        t = self.issue_type(ident) if ident else None
        if t is None:
            raise _Invalid("Specify a valid issue type")
        return t[0]

    def _summary_value(self, fid: str, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid("You must specify a summary of the issue.")
        if len(value) > 255:
            raise _Invalid("Summary must be less than 255 characters.")
        if "\n" in value:
            raise _Invalid("The summary is invalid because it contains newline characters.")
        return value

    def _adf_value(self, fid: str, value: Any) -> Any:
        why = None if value is None else validate_adf(value)
        if why:
            raise _Invalid(why)
        return as_stored(value)

    def _labels_value(self, fid: str, value: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(x, str) and x and " " not in x for x in value):
            raise _Invalid("Labels must be a list of strings without spaces.")
        return list(dict.fromkeys(value))

    def _user_value(self, fid: str, value: Any) -> Any:
        acct = (value or {}).get("accountId") or (value or {}).get("id") if isinstance(value, dict) else None
        if value is None:
            return None
        if acct is None or self.user(str(acct)) is None:
            raise _Invalid(f"User '{acct}' does not exist or cannot be {fid}.")
        return str(acct)

    def _duedate_value(self, fid: str, value: Any) -> Any:
        """``duedate``: "YYYY-MM-DD" or null (the REST field takes a date, not a date-time)."""
        if value is None:
            return None
        if not isinstance(value, str) or not _DATE.match(value):
            raise _Invalid(f"Error parsing date string: {value}")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _Invalid(f"Error parsing date string: {value}") from None
        return value

    def _priority_value(self, fid: str, value: Any) -> Any:
        """``priority``: ``{"id"}`` or ``{"name"}`` of a priority in the project's scheme."""
        try:
            return resolve(value, self.project["id"])
        except ValueError as exc:
            raise _Invalid(str(exc)) from None

    def _custom_value(self, fid: str, value: Any) -> Any:
        fd = self.field(fid) if fid.startswith("customfield_") else None
        if fd is None or not fd["custom"]:
            raise _Invalid(f"Field '{fid}' cannot be set. It is not on the appropriate screen, or unknown.")
        kind = fd["schema"]["custom"].rsplit(":", 1)[-1]
        if value is None:
            return None
        if kind == "textarea":
            # Spec createIssue: "any textarea type custom fields (multi-line text fields) take Atlassian
            # Document Format content. Single line custom fields (textfield) accept a string".
            return self._adf_value(fid, value)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _Invalid(f"Operation value must be a number ({fd['name']})")
            return float(value)
        if not isinstance(value, str):
            raise _Invalid(f"Operation value must be a string ({fd['name']})")
        if len(value) > 255:
            raise _Invalid(f"{fd['name']}: text is too long (maximum 255 characters)")
        return value


class _Invalid(ValueError):
    """A field value Jira refuses; the message is the field's entry in ``errors``."""


# How each system field's value is checked and normalised (custom fields: FieldsMixin._custom_value).
_SYSTEM_CHECKS: dict[str, Callable[[FieldsMixin, str, Any], Any]] = {
    "project": FieldsMixin._project_value,
    "issuetype": FieldsMixin._issuetype_value,
    "summary": FieldsMixin._summary_value,
    "description": FieldsMixin._adf_value,
    "labels": FieldsMixin._labels_value,
    "assignee": FieldsMixin._user_value,
    "reporter": FieldsMixin._user_value,
    "duedate": FieldsMixin._duedate_value,
    "priority": FieldsMixin._priority_value,
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
