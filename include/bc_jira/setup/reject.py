"""bc_jira_connect's check of ``reject_statuses`` against the workflows (``GET project/{key}/statuses``).

Shown for every issue type with a done action: which done statuses say no (BC left untouched, commented) and
which say yes (the done action runs). A configured name that no such workflow has is a problem: an issue can
never reach it, so most likely it is misspelt, and the status people do use for "no" would run the done
action. The default list is a catch-all and is only shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.config import Config, EntityConfig


def _done_names(sts: list[dict[str, Any]]) -> list[str]:
    return [str(s.get("name")) for s in sts if ((s.get("statusCategory") or {}).get("key")) == "done"]


def reject_checks(
    cfg: Config, workflows: Mapping[str, tuple[EntityConfig, list[dict[str, Any]]]], notes: list[str]
) -> list[str]:
    """Problems (configured names missing from every workflow with a done action) and notes (what says no).

    ``workflows``: entity name -> (its config, its issue type's workflow statuses)."""
    acting = {name: (e, sts) for name, (e, sts) in workflows.items() if e.done_action != "none"}
    if not acting:
        return []
    everywhere: dict[str, str] = {}  # casefolded status name -> its category key, over the acting workflows
    for _, sts in acting.values():
        for s in sts:
            everywhere[str(s.get("name") or "").casefold()] = str((s.get("statusCategory") or {}).get("key"))
    for name, (ecfg, sts) in acting.items():
        done = _done_names(sts)
        no = [d for d in done if cfg.is_reject_status(d)]
        yes = [d for d in done if not cfg.is_reject_status(d)]
        notes.append(
            f"{name}: done statuses that say no (BC left untouched): {', '.join(no) or 'none'}; that run "
            f"done_action {ecfg.done_action!r}: {', '.join(yes) or 'none'}"
        )
    configured = cfg.reject_statuses_configured
    if configured is None:
        notes.append(f"reject_statuses: the default ({', '.join(cfg.reject_statuses)})")
        return []
    types = " or ".join(repr(e.issue_type) for e, _ in acting.values())
    done_all = sorted({d for _, sts in acting.values() for d in _done_names(sts)})
    problems = []
    for i, status in enumerate(configured):
        category = everywhere.get(status.casefold())
        if category is None:
            problems.append(
                f"reject_statuses[{i}]: no status {status!r} in the workflow of {types}, so no issue can "
                f"reach it and say no with it; use the name of one of the done statuses "
                f"({', '.join(done_all) or 'none'}) or remove it"
            )
        elif category != "done":
            notes.append(
                f"reject_statuses[{i}]: {status!r} is not in the Done category; moving an issue there asks "
                "nothing of BC anyway"
            )
    return problems
