"""Jira issue links: link types, the links of an issue, creating a link."""

from __future__ import annotations

from typing import Any

from bc_jira_sandbox.jira.adf import validate_adf
from bc_jira_sandbox.jira.base import JiraBase
from bc_jira_sandbox.jira.catalog import API, LINK_TYPES, JiraError


class LinksMixin(JiraBase):
    """Issue links of :class:`JiraState`."""

    # -- issue links -----------------------------------------------------------------------------------------
    # How links read (https://developer.atlassian.com/cloud/jira/platform/issue-linking-model/): on issue X,
    # an entry with ``outwardIssue: Y`` reads "X <type.outward> Y", one with ``inwardIssue: Y`` reads
    # "X <type.inward> Y". POST /issueLink {inwardIssue: X, outwardIssue: Y, type: Blocks} makes "X blocks Y"
    # (observed on Jira Cloud, against the intuition of the names: mozilla/jira-bugzilla-integration#1285,
    # atlassian/atlassian-mcp-server#112).
    def _links(self) -> dict[str, dict[str, str]]:
        if "issue_links" not in self.__dict__:  # state saved by an older sandbox
            self.__dict__["issue_links"], self.__dict__["next_link_id"] = {}, 10000
        return self.issue_links

    def link_type(self, ident: Any) -> tuple[str, str, str, str] | None:
        if not isinstance(ident, dict):
            return None
        for t in LINK_TYPES:
            if (
                str(ident.get("id") or "") == t[0]
                or str(ident.get("name") or "").casefold() == t[1].casefold()
            ):
                return t
        return None

    def link_type_json(self, t: tuple[str, str, str, str]) -> dict[str, Any]:
        return {
            "id": t[0],
            "name": t[1],
            "inward": t[2],
            "outward": t[3],
            "self": self.url(f"{API}/issueLinkType/{t[0]}"),
        }

    def linked_issue_json(self, rec: dict[str, Any]) -> dict[str, Any]:
        f = rec["fields"]
        return {
            "id": rec["id"],
            "key": rec["key"],
            "self": self.url(f"{API}/issue/{rec['id']}"),
            "fields": {
                "summary": f["summary"],
                "status": self.status_json(self.status(f["status"])),
                "issuetype": self.issue_type_json(self.issue_type(f["issuetype"])),
            },
        }

    def issuelinks_json(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for lid, lk in sorted(self._links().items()):
            if rec["id"] not in (lk["inward"], lk["outward"]):
                continue
            other_id, side = (
                (lk["outward"], "outwardIssue")
                if lk["inward"] == rec["id"]
                else (lk["inward"], "inwardIssue")
            )
            other = self.issues.get(other_id)
            if other is None:
                continue
            t = next(t for t in LINK_TYPES if t[0] == lk["type"])
            out.append(
                {
                    "id": lid,
                    "self": self.url(f"{API}/issueLink/{lid}"),
                    "type": self.link_type_json(t),
                    side: self.linked_issue_json(other),
                }
            )
        return out

    def link_json(self, lid: str) -> dict[str, Any]:
        lk = self._links().get(lid)
        if lk is None or lk["inward"] not in self.issues or lk["outward"] not in self.issues:
            raise JiraError(404, ["No issue link with id '" + lid + "' exists."])
        t = next(t for t in LINK_TYPES if t[0] == lk["type"])
        return {
            "id": lid,
            "self": self.url(f"{API}/issueLink/{lid}"),
            "type": self.link_type_json(t),
            "inwardIssue": self.linked_issue_json(self.issues[lk["inward"]]),
            "outwardIssue": self.linked_issue_json(self.issues[lk["outward"]]),
        }

    def create_link(self, body: Any, actor: dict[str, Any]) -> None:
        """POST /issueLink. The spec: "If the link request duplicates a link, the response indicates that the
        issue link was created. If the request included a comment, the comment is added." (to the outward
        issue: "optionally add a comment to the from (outward) issue")."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), dict) for k in ("inwardIssue", "outwardIssue", "type")
        ):
            raise JiraError(400, ["inwardIssue, outwardIssue and type are required."])
        t = self.link_type(body["type"])
        if t is None:
            name = body["type"].get("name") or body["type"].get("id")
            raise JiraError(404, [f"No issue link type with name '{name}' found."])
        ends = []
        for side in ("inwardIssue", "outwardIssue"):
            ident = str(body[side].get("id") or body[side].get("key") or "")
            try:
                ends.append(self.issue(ident))
            except JiraError:
                raise JiraError(
                    404, [f"Issue '{ident}' does not exist or you do not have permission to see it."]
                ) from None
        inward, outward = ends
        if inward["id"] == outward["id"]:
            raise JiraError(400, ["You cannot link an issue to itself."])
        comment = body.get("comment")
        if comment is not None:
            why = validate_adf(comment.get("body") if isinstance(comment, dict) else None)
            if why:
                raise JiraError(400, [], {"comment": why})
        links = self._links()
        exists = any(
            lk["type"] == t[0] and lk["inward"] == inward["id"] and lk["outward"] == outward["id"]
            for lk in links.values()
        )
        if not exists:
            lid = str(self.next_link_id)
            self.next_link_id += 1
            links[lid] = {"type": t[0], "inward": inward["id"], "outward": outward["id"]}
            for rec in (inward, outward):
                self._touch(rec)
        if comment is not None:
            self._touch(outward)
            self._add_comment(outward, comment["body"], actor)
