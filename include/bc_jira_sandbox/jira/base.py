"""What the parts of :class:`~bc_jira_sandbox.jira.state.JiraState` share (typed once for all of them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


class JiraBase:
    """The attributes every part of the state shares, and (for type checkers only) the methods one part
    calls on another; the parts are mixins of one class, so at run time each method has one definition."""

    sb: Sandbox
    project: dict[str, Any]
    fields: list[dict[str, Any]]
    users: list[dict[str, Any]]
    issues: dict[str, dict[str, Any]]
    keys: dict[str, str]
    next_issue_id: int
    next_issue_num: int
    next_comment_id: int
    next_change_id: int
    issue_links: dict[str, dict[str, str]]
    next_link_id: int
    webhooks: dict[int, dict[str, Any]]
    webhook_url: str | None
    admin_webhooks: dict[int, dict[str, Any]]
    deliveries: list[dict[str, Any]]
    next_delivery: int

    if TYPE_CHECKING:

        def _add_comment(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> dict[str, Any]: ...

        def _check_fields(
            self, fields: dict[str, Any], *, creating: bool, errors: dict[str, str]
        ) -> dict[str, Any]: ...

        def _fire(
            self,
            rec: dict[str, Any],
            event: str,
            type_name: str,
            actor: dict[str, Any],
            items: list[dict[str, Any]],
        ) -> None: ...

        def _touch(self, rec: dict[str, Any]) -> None: ...

        def field(self, ident: str) -> dict[str, Any] | None: ...

        def field_values(self, rec: dict[str, Any]) -> dict[str, Any]: ...

        def issue(self, id_or_key: str) -> dict[str, Any]: ...

        def issue_json(
            self,
            rec: dict[str, Any],
            fields: list[str] | str | None,
            *,
            snapshot: dict[str, Any] | None = None,
            properties: list[str] | None = None,
        ) -> dict[str, Any]: ...

        def issue_type(self, ident: str) -> tuple[str, str] | None: ...

        def issue_type_json(self, t: tuple[str, str]) -> dict[str, Any]: ...

        def issuelinks_json(self, rec: dict[str, Any]) -> list[dict[str, Any]]: ...

        def attachments_json(self, rec: dict[str, Any]) -> list[dict[str, Any]]: ...

        def matches(self, node: Any, rec: dict[str, Any], values: dict[str, Any]) -> bool: ...

        def off_screen(self, type_id: str, keys: Any, which: str) -> dict[str, str]: ...

        def project_json(
            self, full: bool = False, project: dict[str, Any] | None = None
        ) -> dict[str, Any]: ...

        def project_by(self, ident: str) -> dict[str, Any] | None: ...

        def next_issue_key(self, project_id: str) -> str: ...

        def search_view(self, rec: dict[str, Any], reconciled: bool) -> dict[str, Any] | None: ...

        def status(self, ident: str) -> tuple[str, str, str, str] | None: ...

        def status_json(self, s: tuple[str, str, str, str]) -> dict[str, Any]: ...

        def url(self, path: str = "") -> str: ...

        def user(self, account_id: str) -> dict[str, Any] | None: ...

        def user_json(self, u: dict[str, Any] | None, *, details: bool = False) -> dict[str, Any] | None: ...
