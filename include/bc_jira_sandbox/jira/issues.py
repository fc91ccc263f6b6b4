"""Jira issue writes: create, edit (with its changelog), comments and transitions."""

from __future__ import annotations

from typing import Any

from bc_jira_sandbox.jira.adf import validate_adf
from bc_jira_sandbox.jira.base import JiraBase
from bc_jira_sandbox.jira.catalog import API, STATUSES, JiraError, _as_string, jira_ts
from bc_jira_sandbox.jira.priorities import DEFAULT_PRIORITY


class IssuesMixin(JiraBase):
    """Issue writes of :class:`JiraState`."""

    def create(self, body: Any, actor: dict[str, Any]) -> dict[str, Any]:
        """Create one issue; raises JiraError(400) with the field errors."""
        if not isinstance(body, dict) or not isinstance(body.get("fields", {}), dict):
            raise JiraError(400, ["Request body must be an issue with fields."])
        fields = dict(body.get("fields") or {})
        update = body.get("update") or {}
        both = set(fields) & set(update)
        if both:
            raise JiraError(400, [], {f: "Field cannot be set in both fields and update." for f in both})
        errors: dict[str, str] = {}
        clean = self._check_fields(fields, creating=True, errors=errors)
        if "issuetype" in clean:
            errors.update(self.off_screen(clean["issuetype"], [*fields, *update], "create"))
        if errors:
            raise JiraError(400, [], errors)
        now = self.sb.now()
        iid = str(self.next_issue_id)
        self.next_issue_id += 1
        key = self.next_issue_key(clean.get("project") or self.project["id"])
        clean.setdefault("labels", [])
        clean.setdefault("reporter", actor["accountId"])
        clean.setdefault("priority", DEFAULT_PRIORITY)  # the scheme's default when the create names none
        clean["status"] = STATUSES[0][0]
        rec = {
            "id": iid,
            "key": key,
            "fields": clean,
            "created": now,
            "updated": now,
            "comments": [],
            "properties": {
                p["key"]: p.get("value")
                for p in body.get("properties", []) or []
                if isinstance(p, dict) and "key" in p
            },
            "search_visible_after": now.timestamp() + self.sb.options.search_lag_s,
            "search_snapshot": None,
        }
        self.issues[iid] = rec
        self.keys[key] = iid
        self._fire(rec, "jira:issue_created", "issue_created", actor, [])
        return {"id": iid, "key": key, "self": self.url(f"{API}/issue/{iid}")}

    def _touch(self, rec: dict[str, Any]) -> None:
        """Before a write: remember what search shows now; the new state becomes searchable after the lag."""
        now = self.sb.now()
        rec["search_snapshot"] = self.search_view(rec, reconciled=False)
        rec["search_visible_after"] = now.timestamp() + self.sb.options.search_lag_s
        rec["updated"] = now

    def _change_items(self, rec: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
        items = []
        for fid, value in new.items():
            old = rec["fields"].get(fid)
            if old == value:
                continue
            fd = self.field(fid)
            item: dict[str, Any] = {
                "field": fd["name"] if fd else fid,
                "fieldId": fid,
                "fieldtype": "custom" if fid.startswith("customfield_") else "jira",
            }
            if fid == "status":
                item.update(
                    {
                        "field": "status",
                        "from": old,
                        "fromString": self.status(old)[1],
                        "to": value,
                        "toString": self.status(value)[1],
                    }
                )
            elif fid in ("assignee", "reporter"):
                item.update(
                    {
                        "from": old,
                        "to": value,
                        "fromString": (self.user(old) or {}).get("displayName") if old else None,
                        "toString": (self.user(value) or {}).get("displayName") if value else None,
                    }
                )
            elif fid == "description":
                item.update({"from": None, "fromString": None, "to": None, "toString": "(ADF)"})
            else:
                item.update({"fromString": _as_string(old), "toString": _as_string(value)})
            items.append({k: v for k, v in item.items() if v is not None})
        return items

    def edit(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> None:
        """Apply an edit (``fields``, ``update`` operations); a 400 with all field errors changes nothing."""
        new, comments = self._plan_edit(rec, body)
        items = self._change_items(rec, new)
        if not items and not comments:
            return
        self._touch(rec)
        rec["fields"].update(new)
        for c in comments:
            self._add_comment(rec, c, actor)
        if items:
            self._fire(rec, "jira:issue_updated", "issue_updated", actor, items)

    def _plan_edit(self, rec: dict[str, Any], body: Any) -> tuple[dict[str, Any], list[Any]]:
        """(the new field values, the comments to add) of an edit, or the JiraError Jira answers."""
        if not isinstance(body, dict):
            raise JiraError(400, ["Request body must be a JSON object."])
        fields = dict(body.get("fields") or {})
        update = body.get("update") or {}
        both = set(fields) & set(update)
        if both:
            raise JiraError(400, [], {f: "Field cannot be set in both fields and update." for f in both})
        for locked in ("project", "issuetype", "status"):
            if locked in fields:
                raise JiraError(
                    400,
                    [],
                    {
                        locked: f"Field '{locked}' cannot be set. It is not on the "
                        "appropriate screen, or unknown."
                    },
                )
        errors: dict[str, str] = {}
        new = self._check_fields(fields, creating=False, errors=errors)
        comments: list[Any] = []
        for fid, ops in update.items():
            if not isinstance(ops, list):
                errors[fid] = "Update operations must be a list."
                continue
            for op in ops:
                self._plan_update_op(rec, fid, op, new, comments, errors)
        errors.update(self.off_screen(rec["fields"]["issuetype"], [*fields, *update], "edit"))
        if errors:
            raise JiraError(400, [], errors)
        return new, comments

    def _plan_update_op(
        self,
        rec: dict[str, Any],
        fid: str,
        op: Any,
        new: dict[str, Any],
        comments: list[Any],
        errors: dict[str, str],
    ) -> None:
        """One ``update`` operation (``{"add": ...}`` etc.) into ``new``/``comments``, or into ``errors``."""
        if not isinstance(op, dict) or len(op) != 1:
            errors[fid] = "Each update operation needs exactly one of set/add/remove/edit."
            return
        verb, value = next(iter(op.items()))
        if fid == "comment" and verb == "add":
            why = validate_adf((value or {}).get("body") if isinstance(value, dict) else None)
            if why:
                errors["comment"] = why
            else:
                comments.append(value["body"])
        elif fid == "labels" and verb in ("add", "remove", "set"):
            new["labels"] = _label_op(list(new.get("labels", rec["fields"].get("labels", []))), verb, value)
        elif verb == "set":
            new.update(self._check_fields({fid: value}, creating=False, errors=errors))
        else:
            errors[fid] = f"Operation '{verb}' is not supported for field '{fid}'."

    def _add_comment(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> dict[str, Any]:
        now = self.sb.now()
        cid = str(self.next_comment_id)
        self.next_comment_id += 1
        c = {"id": cid, "body": body, "author": actor["accountId"], "created": now}
        rec["comments"].append(c)
        return c

    def comment_json(self, rec: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
        author = self.user_json(self.user(c["author"]), details=True)
        return {
            "self": self.url(f"{API}/issue/{rec['id']}/comment/{c['id']}"),
            "id": c["id"],
            "author": author,
            "body": c["body"],
            "updateAuthor": author,
            "created": jira_ts(c["created"]),
            "updated": jira_ts(c["created"]),
            "jsdPublic": True,
        }

    def add_comment(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise JiraError(400, ["Comment body must be a JSON object."])
        why = validate_adf(body.get("body"))
        if why:
            raise JiraError(400, [] if why.startswith("Operation") else ["INVALID_INPUT"], {"comment": why})
        self._touch(rec)
        c = self._add_comment(rec, body["body"], actor)
        return self.comment_json(rec, c)

    def transitions(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": tid,
                "name": name,
                "to": self.status_json((sid, name, cat, tid)),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "looped": False,
            }
            for sid, name, cat, tid in STATUSES
            if sid != rec["fields"]["status"]
        ]

    def transition(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> None:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("transition"), dict)
            or not body["transition"].get("id")
        ):
            raise JiraError(400, ["Missing 'transition' identifier"])
        tid = str(body["transition"]["id"])
        target = next((s for s in STATUSES if s[3] == tid and s[0] != rec["fields"]["status"]), None)
        if target is None:
            raise JiraError(400, [f"Transition id '{tid}' is not valid for this issue."])
        fields = body.get("fields") or {}
        if fields:
            raise JiraError(
                400,
                [],
                {
                    f: f"Field '{f}' cannot be set. It is not on the appropriate screen, or unknown."
                    for f in fields
                },
            )
        comments = []
        for op in (body.get("update") or {}).get("comment", []) or []:
            value = op.get("add") if isinstance(op, dict) else None
            why = validate_adf((value or {}).get("body") if isinstance(value, dict) else None)
            if why:
                raise JiraError(400, [], {"comment": why})
            comments.append(value["body"])
        self._move(rec, target, actor, comments)

    def _move(
        self,
        rec: dict[str, Any],
        target: tuple[str, str, str, str],
        actor: dict[str, Any],
        comments: list[Any] | None = None,
    ) -> None:
        items = self._change_items(rec, {"status": target[0]})
        self._touch(rec)
        if self.status(rec["fields"]["status"])[2] != target[2]:
            rec["category_changed"] = self.sb.now()
        rec["fields"]["status"] = target[0]
        for c in comments or []:
            self._add_comment(rec, c, actor)
        self._fire(rec, "jira:issue_updated", "issue_generic", actor, items)


def _label_op(labels: list[str], verb: str, value: Any) -> list[str]:
    """The labels after one ``set``/``add``/``remove`` operation (adding a present label changes nothing)."""
    if verb == "set":
        return list(value or [])
    if verb == "add" and value not in labels:
        labels.append(value)
    elif verb == "remove" and value in labels:
        labels.remove(value)
    return labels
