"""Jira issue attachments: the upload and reading an issue's attachments (a part of ``JiraCloudHook``).

``POST /rest/api/3/issue/{issueIdOrKey}/attachments`` (addAttachment in the Jira OpenAPI document):
multipart/form-data with the file in a part named ``file``, and ``X-Atlassian-Token: no-check`` (without it
Jira blocks the request with 403, its XSRF check). The answer is a list of ``Attachment`` objects; Jira
answers 200 with an empty list when no part is named ``file``, so an empty answer is an error here.
A POST is never repeated after a lost answer (``bc_jira.http``): the caller looks for the file by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from urllib3 import encode_multipart_formdata

from bc_jira.http import ApiError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bc_jira.http import ApiClient


class JiraAttachmentsMixin:
    """The attachment calls of :class:`bc_jira.hooks.jira.JiraCloudHook` (its ``client``)."""

    if TYPE_CHECKING:

        @property
        def client(self) -> ApiClient: ...

        def bulk_fetch_issues(
            self, issue_ids: Sequence[int | str], fields: Sequence[str]
        ) -> list[dict[str, Any]]: ...

    def add_attachment(
        self, issue_id_or_key: str, file_name: str, data: bytes, mime_type: str
    ) -> dict[str, Any]:
        """Upload one file; returns Jira's ``Attachment`` (id, filename, size, mimeType, content)."""
        body, content_type = encode_multipart_formdata({"file": (file_name, data, mime_type)})
        resp = self.client.request(
            "POST",
            f"issue/{quote(issue_id_or_key, safe='')}/attachments",
            data=body,
            headers={"Content-Type": content_type, "X-Atlassian-Token": "no-check"},
        )
        answer = resp.json() if resp.content else []
        if not isinstance(answer, list) or not answer:
            raise ApiError(
                "jira",
                "POST",
                resp.url,
                resp.status_code,
                "no_attachment",
                "Jira stored no attachment (the answer listed none)",
            )
        return dict(answer[0])

    def issue_attachments(self, issue_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Issue id -> its attachments (``fields.attachment``), read with ``POST /issue/bulkfetch`` (100 per
        call; it reads the issues themselves, so a file uploaded a moment ago is already listed)."""
        out: dict[str, list[dict[str, Any]]] = {}
        ids = list(dict.fromkeys(str(i) for i in issue_ids))
        for issue in self.bulk_fetch_issues(ids, ["attachment"]):
            atts = list((issue.get("fields") or {}).get("attachment") or [])
            out[str(issue["id"])] = atts
            out[str(issue.get("key"))] = atts
        return out
