"""Bulk create behind durable intents, confirmed by reading the created issues back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bc_jira.hooks.jira import BULK_CREATE_MAX, BULK_FETCH_MAX
from bc_jira.mapping import IssueDraft, create_payload
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import UpsertBase, _chunks, _Outcome, _short
from bc_jira.sync.edits import written_hashes
from bc_jira.sync.lookup import _RECENT_CREATED

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)


class CreateMixin(UpsertBase):
    # create ------------------------------------------------------------------------------------------------
    def _create(self, drafts: list[IssueDraft], outcomes: dict[str, _Outcome]) -> int:
        failures = 0
        # one bulk-fetch read (up to BULK_FETCH_MAX ids) confirms two bulk creates
        for group in _chunks(drafts, BULK_FETCH_MAX):
            self._heartbeat()
            waiting: dict[str, tuple[IssueDraft, dict[str, Any]]] = {}
            made: list[Mapping[str, Any]] = []
            for chunk in _chunks(group, BULK_CREATE_MAX):
                payloads = [create_payload(self.cfg, d) for d in chunk]
                # the intent: if the answer is lost, the next attempt knows to look before creating again
                for d in chunk:
                    self._save_link(d, None, None, LinkState.PENDING, d.content_hash, written_hashes(d))
                self._flush_links()  # the intents are durable before Jira sees the request
                try:
                    answer = self.jira.bulk_create(payloads)
                except Exception as exc:  # noqa: BLE001 - every failure is audited; the task then fails and retries
                    failures += len(chunk)
                    for d, p in zip(chunk, payloads, strict=True):
                        outcomes[d.bc_id] = _Outcome(
                            "error",
                            reason="bulk create failed; intent kept as pending",
                            sent=p,
                            error=str(exc),
                        )
                    continue
                # failedElementNumber is documented to name the element; the order of issues[] is not.
                failed = {f.index: f for f in answer.failed}
                for i, (d, p) in enumerate(zip(chunk, payloads, strict=True)):
                    if i in failed:
                        failures += 1
                        self._save_link(d, None, None, LinkState.FAILED, "")
                        outcomes[d.bc_id] = _Outcome(
                            "error",
                            reason="Jira refused the create",
                            sent=p,
                            response={
                                "status": failed[i].status,
                                "errors": failed[i].errors,
                                "messages": failed[i].messages,
                            },
                            error=_short(str(failed[i])),
                        )
                    else:
                        waiting[d.bc_id] = (d, p)
                made.extend(issue for _, issue in answer.created)
            failures += self._link_created(waiting, made, outcomes)
            self._flush_links()
        return failures

    def _link_created(
        self,
        waiting: Mapping[str, tuple[IssueDraft, dict[str, Any]]],
        made: Sequence[Mapping[str, Any]],
        outcomes: dict[str, _Outcome],
    ) -> int:
        """Link each created issue to the record id it carries (read back, one call per 100), not by the
        position of the answer. What no created issue carries stays pending: the next attempt looks it up."""
        if not waiting:
            return 0
        fid = self.ids.record_id
        carried: dict[str, dict[str, str]] = {}
        error = "no created issue carries this record id; intent kept as pending"
        if made:
            try:
                read_back = self.jira.fetch([str(i["id"]) for i in made], [fid])
            except Exception as exc:  # noqa: BLE001 - the intents stay pending; the retry looks them up by JQL
                read_back = []
                error = f"created, but reading the created issues back failed ({exc}); intent kept as pending"
            for issue in read_back:
                value = (issue.get("fields") or {}).get(fid)
                if isinstance(value, str) and value in waiting and value not in carried:
                    carried[value] = {"id": str(issue["id"]), "key": issue["key"]}
                else:
                    log.warning(
                        "%s: created issue %s carries record id %r, which this create did not send once",
                        self.entity,
                        issue.get("key"),
                        value,
                    )
        failures = 0
        for bc_id, (d, p) in waiting.items():
            made_issue = carried.get(bc_id)
            if made_issue is None:
                failures += 1
                outcomes[bc_id] = _Outcome("error", reason="no issue in the bulk answer", sent=p, error=error)
                continue
            _RECENT_CREATED[self.entity].append(int(made_issue["id"]))
            state = LinkState.LINKED if d.needs_human else LinkState.RESOLVED
            self._save_link(d, made_issue["id"], made_issue["key"], state, d.content_hash, written_hashes(d))
            outcomes[bc_id] = _Outcome("create", issue_key=made_issue["key"], sent=p, response=made_issue)
        return failures
