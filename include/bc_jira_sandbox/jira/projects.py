"""Several Jira projects on one site: the seeded one (``creds["project_key"]``) and those an admin adds.

Why: a connector deployment may send each BC company to its own project (``companies[].project_key``), so the
sandbox must hold more than one. A Jira admin creates a project in the UI or with ``POST /rest/api/3/project``
(https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-projects/#api-rest-api-3-project-post);
here ``POST /_sandbox/jira/projects {"key": "CA", "name": "Canada Approvals"}`` does it. Every project shares
the site's issue types, workflow, fields, screens and default priority scheme (a new project uses the shared
schemes unless an admin picks others). Issue keys are numbered per project (``CA-1``, ``CA-2`` …), as in Jira.
A project key is 2-10 uppercase letters/digits starting with a letter (Jira's default key pattern,
https://support.atlassian.com/jira-cloud-administration/docs/edit-a-projects-details/).
"""

from __future__ import annotations

import re
from typing import Any

from bc_jira_sandbox.jira.base import JiraBase

PROJECT_KEY_RE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


class ProjectsMixin(JiraBase):
    """The site's projects; ``self.project`` stays the seeded (first) one."""

    def all_projects(self) -> dict[str, dict[str, Any]]:
        """id -> project (state saved before projects existed: the one project)."""
        projects = self.__dict__.get("projects")
        if projects is None:
            projects = self.__dict__["projects"] = {self.project["id"]: self.project}
        return projects

    def project_by(self, ident: str) -> dict[str, Any] | None:
        """The project with that id or key (keys compare as Jira does: case-sensitively upper)."""
        return next((p for p in self.all_projects().values() if ident in (p["id"], p["key"])), None)

    def add_project(self, key: str, name: str) -> dict[str, Any]:
        """A project as an admin creates it; ValueError(message) when the key is taken or invalid."""
        if not PROJECT_KEY_RE.match(key):
            raise ValueError(
                "Project keys must start with an uppercase letter, followed by one or more uppercase "
                "alphanumeric characters."
            )
        if self.project_by(key) is not None:
            raise ValueError(f"Project '{key}' uses this project key.")
        projects = self.all_projects()
        pid = str(max(int(i) for i in projects) + 1)
        project = {"id": pid, "key": key, "name": name or key}
        projects[pid] = project
        return project

    def next_issue_key(self, project_id: str) -> str:
        """The next key in that project (the seeded project keeps its counter ``next_issue_num``)."""
        if project_id == self.project["id"]:
            num = self.next_issue_num
            self.next_issue_num += 1
        else:
            nums: dict[str, int] = self.__dict__.setdefault("issue_nums", {})
            num = nums.get(project_id, 1)
            nums[project_id] = num + 1
        return f"{self.all_projects()[project_id]['key']}-{num}"
