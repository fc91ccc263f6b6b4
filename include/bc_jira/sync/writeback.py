"""Jira -> BC write-back: an issue reached a done status -> post the draft invoice / unblock the vendor.

Idempotent by construction (docs/design.md, *Idempotent write-back*): the webhook is only a hint, so every
action starts by re-reading the Jira issue (is it really done now?) and the BC record (is it still a draft /
still blocked?). An invoice that is no longer a draft or a vendor that is no longer blocked is an audited no-
op. ``post`` is not retried blindly after a lost answer: the invoice is re-read to learn whether BC committed
it. A vendor PATCH with a stale ETag re-reads and retries once. A staged event is deleted only after its
effect is done and audited; a failure leaves it staged (status failed, with its error) for the next run.

**A replay never undoes a newer state.** A done status is a person's decision about the record *as it was
then*. The write-back acts only when

1. the issue is in a done status now (re-read, not taken from the event), and
2. the BC record needs the action now (still a draft / still blocked), and
3. the issue reached the done category *after* the record last changed in BC: Jira's
   ``statuscategorychangedate`` is later than the record's ``lastModifiedDateTime``.

So a vendor unblocked, blocked again in BC, and then an old "Done" replayed (a cleared
``jira_transitions_to_bc`` run, a late staged delivery, the safety-net poll seeing the issue still in Done)
is left blocked: audited ``writeback_stale`` with both times, and commented once, asking to move the issue
out of Done and back to apply it to the current record. Moving it out of the done category and back gives
it a new ``statuscategorychangedate`` and the action runs. The same holds for an invoice edited in BC after
its issue was approved. The check is made on the record read before acting; an edit that races our own
PATCH (412) is re-read and only its ``blocked`` value decides. Without ``statuscategorychangedate`` (not
returned by this Jira) rule 3 cannot be checked and is skipped with a warning.

**Outcome comments are made exactly once** per record, issue, outcome and done episode: they are effects
with an intent (``bc_jira.sync.effects``). A comment that failed or whose answer was lost stays pending and is
made, after looking for it on the issue, at the start of the next run.

Acts only on the record the issue names (``bc_jira.sync.outcome.record_mismatch``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bc_jira import adf
from bc_jira.config.companies import project_clause, project_keys
from bc_jira.edges.intake import KIND_JIRA_TRANSITION
from bc_jira.entities import SPECS
from bc_jira.http import ApiError, ClientError, NotFoundError, PreconditionFailed, TransportError
from bc_jira.store.schema import DONE_STATES, LinkState
from bc_jira.sync import effects
from bc_jira.timeutil import try_parse_ts

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from bc_jira.config import Config
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import Link, StateStore
from bc_jira.sync.outcome import (
    Decision,
    Result,
    acted_on,
    audit_row,
    carried_record_id,
    comment_text,
    deleted_decision,
    entity_of,
    record_mismatch,
    replay_verdict,
    slim,
)

log = logging.getLogger(__name__)

POLL_LOOKBACK = "-2h"  # the cron safety net looks at issues done and updated this recently
DONE_AT_FIELD = "statuscategorychangedate"  # when the issue last changed status category (Jira Cloud)
COMMENT_KIND = "writeback_comment"  # bc_jira_effects.kind of outcome comments


@dataclass
class WriteBack:
    """Everything one write-back run needs; ``bc``/``jira`` are the hooks (or test doubles)."""

    cfg: Config
    bc: BusinessCentralHook
    jira: JiraCloudHook
    store: StateStore
    record_id_field: str | None = None  # customfield id of "BC Record Id" (fallback when no link)
    run: Mapping[str, Any] = field(default_factory=dict)  # dag_id, run_id, task_id, try_number
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    bc_for: Callable[[str], BusinessCentralHook] | None = None  # store key -> its company's hook (companies)
    _acting: BusinessCentralHook | None = field(default=None, init=False, repr=False)  # its company's hook
    _company: str = field(default="", init=False, repr=False)

    # -- entry points --------------------------------------------------------------------------------------
    def retry_comments(self, limit: int = 200) -> dict[str, int]:
        """Outcome comments still owed from earlier runs (failed, or answer lost): made now, exactly once."""
        counts: dict[str, int] = {}
        for eff in self.store.pending_effects(COMMENT_KIND, limit=limit):
            state = self._comments().make(eff).state
            counts[state] = counts.get(state, 0) + 1
        if counts:
            log.info("owed outcome comments: %s", counts)
        return counts

    def process_pending(self, limit: int = 200) -> list[Result]:
        """Every staged transition event, oldest first; each deleted only once its effect is audited."""
        self.retry_comments()
        results = []
        for ev in self.store.pending_events(KIND_JIRA_TRANSITION, limit=limit):
            p = ev.payload or {}
            issue = str(p.get("issue_id") or p.get("issue_key") or "")
            key = str(p.get("issue_key") or issue)  # what people call it (FIN-14), not its id (10013)
            try:
                res = self.process_issue(
                    issue, source=f"webhook {p.get('delivery_id')}", actor=p.get("actor"), key=key
                )
            except Exception as exc:  # noqa: BLE001 - recorded on the event and audited; next event goes on
                res = Result(key, "error", detail=f"{type(exc).__name__}: {exc}", done=False, transient=True)
                self._audit(res, error=res.detail)
            if res.done:
                self.store.delete_event(ev.id)
            else:
                self.store.mark_event_failed(ev.id, res.detail or res.action)
            results.append(res)
        return results

    def poll_done_issues(self, lookback: str = POLL_LOOKBACK) -> list[Result]:
        """Safety net for deliveries that never arrived: done issues updated recently with a BC record id."""
        if not self.record_id_field:
            raise ValueError("the poll needs the 'BC Record Id' field id (run bc_jira_connect)")
        cf = self.record_id_field
        clause = f"cf[{cf.removeprefix('customfield_')}]" if cf.startswith("customfield_") else cf
        projects = project_clause(project_keys(self.cfg), lambda k: f'"{k}"')
        jql = (
            f"{projects} AND statusCategory = Done AND updated >= {lookback} "
            f"AND {clause} IS NOT EMPTY ORDER BY updated ASC"
        )
        staged = {
            str((e.payload or {}).get("issue_id")) for e in self.store.pending_events(KIND_JIRA_TRANSITION)
        }
        results = []
        for issue in self.jira.search_all(jql, ["status", cf]):
            issue_id = str(issue["id"])
            if issue_id in staged:
                continue  # the event path will handle it
            link = self.store.get_link_by_issue(issue_id)
            if link is not None and link.state in DONE_STATES:
                continue  # already acted on (or BC resolved it itself)
            try:
                results.append(self.process_issue(issue_id, source="safety-net poll", key=issue.get("key")))
            except Exception as exc:  # noqa: BLE001 - audited; the task reports it at the end
                res = Result(
                    issue.get("key") or issue_id,
                    "error",
                    detail=f"{type(exc).__name__}: {exc}",
                    done=False,
                    transient=True,
                )
                self._audit(res, error=res.detail)
                results.append(res)
        return results

    # -- one issue ------------------------------------------------------------------------------------------
    def process_issue(
        self, issue_id_or_key: str, *, source: str = "", actor: str | None = None, key: str | None = None
    ) -> Result:
        """``key``: the issue's key when known, so what is reported before the issue is read names it."""
        found = self._read_issue(issue_id_or_key, key)
        if isinstance(found, Result):
            return found
        base, link, f = found
        status = f.get("status") or {}
        category = str((status.get("statusCategory") or {}).get("key") or "")
        name = str(status.get("name") or "")
        if link is not None and link.state == LinkState.DELETED:  # never a BC call for a deleted record
            own = (self.cfg.deleted_transition or "").casefold() == name.casefold()
            return self._finish(base, link, deleted_decision(category, name, link.bc_id, own_move=own))
        early = self._not_to_act(base, category, name)
        if early is not None:
            return self._finish(base, link, early)
        mismatch = record_mismatch(link, self.record_id_field, f)
        if mismatch:
            return self._refuse(base, mismatch)
        return self._act(base, link, name, source)

    def _read_issue(
        self, issue_id_or_key: str, known_key: str | None = None
    ) -> Result | tuple[Result, Link | None, Mapping[str, Any]]:
        """The issue, its link and record; or the Result that ends here (gone, not ours, a duplicate)."""
        fields = ["status", "issuetype", DONE_AT_FIELD] + (
            [self.record_id_field] if self.record_id_field else []
        )
        try:
            issue = self.jira.get_issue(issue_id_or_key, fields=fields)
        except NotFoundError:
            res = Result(known_key or issue_id_or_key, "ignored", detail="issue no longer exists in Jira")
            self._audit(res)
            return res
        key = issue.get("key") or issue_id_or_key
        f = issue.get("fields") or {}
        link = self.store.get_link_by_issue(str(issue.get("id"))) or self.store.get_link_by_issue(key)
        self._company = link.company if link is not None else ""  # its audit rows go to its company
        entity = link.entity if link else entity_of(self.cfg, f)
        bc_id = link.bc_id if link else carried_record_id(self.record_id_field, f)
        if not entity or not bc_id:
            res = Result(key, "ignored", detail="not an issue of this connector (no link, no BC record id)")
            log.info("%s: %s", key, res.detail)
            return res
        if link is None:
            owner = self.store.get_links(entity, [bc_id]).get(bc_id)
            if owner is not None and owner.issue_id and owner.issue_id != str(issue.get("id")):
                # a duplicate issue of the record (healed by the outbound, maybe moved to done by it)
                res = Result(
                    key,
                    "ignored",
                    entity=entity,
                    bc_id=bc_id,
                    detail=f"a duplicate: the issue of this record is {owner.issue_key or owner.issue_id}",
                )
                log.info("%s: %s", key, res.detail)
                return res
        base = Result(
            key,
            "noop",
            entity=entity,
            bc_id=bc_id,
            document_number=link.document_number if link else None,
            done_at=str(f.get(DONE_AT_FIELD) or "") or None,
        )
        return base, link, f

    def _not_to_act(self, base: Result, category: str, name: str) -> Decision | None:
        """Why the issue's status asks nothing of BC (not done, rejected, done action none), or None."""
        if category != "done":
            return Decision("noop", f"issue is in {name!r} now ({category}); nothing to do", comment=False)
        if self.cfg.is_reject_status(name):  # reject_statuses: a done status that means "no"
            base.status = name
            return Decision(
                "rejected",
                f"issue was moved to {name!r} (one of reject_statuses): BC record left as it is",
                comment=True,
            )
        if self.cfg.entity(str(base.entity)).done_action == "none":
            return Decision("noop", f"done action for {base.entity} is 'none'", comment=False)
        return None

    def _act(self, base: Result, link: Link | None, name: str, source: str) -> Result:
        """The entity's done action in BC; BC's refusals and outages become the Result."""
        action = self.cfg.entity(str(base.entity)).done_action
        company = link.company if link is not None else ""
        self._acting = self.bc_for(company) if self.bc_for is not None and company else None
        try:
            if action == "post":
                return self._post_invoice(base, link, name, source)
            if action == "unblock":
                return self._unblock_vendor(base, link, name, source)
        except NotFoundError:
            return self._finish(
                base,
                link,
                Decision(
                    "error",
                    f"the BC record {base.bc_id} no longer exists",
                    comment=True,
                    done=True,
                    error=True,
                ),
            )
        except TransportError as exc:
            return self._fail(base, f"BC not reachable: {exc}", transient=True)
        except ClientError as exc:  # BC refused (validation): a person must fix it in BC; keep for replay
            return self._fail(base, f"Business Central refused: {exc.message}", transient=False, comment=True)
        except ApiError as exc:  # 5xx / 429 after retries, auth
            return self._fail(base, str(exc), transient=True)
        return self._finish(base, link, Decision("noop", f"unknown done action {action!r}", comment=False))

    def _refuse(self, res: Result, detail: str) -> Result:
        """No BC call: audit, comment, keep the event staged and make the task fail."""
        res.action, res.detail, res.done, res.alarm = "mismatch", detail, False, True
        self._audit(res, error=detail)
        log.error("%s: write-back refused: %s", res.issue, detail)
        self._comment(res, None)
        return res

    # -- BC actions -----------------------------------------------------------------------------------------
    def _post_invoice(self, base: Result, link: Link | None, status_name: str, source: str) -> Result:
        bc_id = str(base.bc_id)  # set: the issue names a record
        eset = SPECS["purchase_invoices"].entity_set
        inv = (self._acting or self.bc).get_record(eset, bc_id)
        base.document_number = inv.get("number") or base.document_number
        if inv.get("status") != "Draft":
            return self._finish(
                base,
                link,
                Decision(
                    "noop",
                    f"invoice {inv.get('number')} is already "
                    f"{inv.get('status')} in BC (posted before); nothing to do",
                    comment=not acted_on(link),
                    mark_done=True,
                    read=inv,
                    new_number=inv.get("number"),
                ),
            )
        stale = self._stale(base, inv)
        if stale:
            return self._finish(
                base,
                link,
                Decision(
                    "stale", f"invoice {inv.get('number')} left as it is: {stale}", comment=True, read=inv
                ),
            )
        draft_no = inv.get("number")
        try:
            (self._acting or self.bc).post_purchase_invoice(bc_id)
        except (TransportError, ClientError) as exc:
            # Lost answer or "draft only": BC may have committed it. The record tells.
            after = (self._acting or self.bc).get_record(eset, bc_id)
            if after.get("status") == "Draft":
                raise
            log.info(
                "%s: post answered %s but the invoice is %s: treated as posted",
                base.issue,
                type(exc).__name__,
                after.get("status"),
            )
        after = (self._acting or self.bc).get_record(eset, bc_id)
        new_no = after.get("number")
        base.new_number = new_no
        return self._finish(
            base,
            link,
            Decision(
                "posted",
                f"draft invoice {draft_no} posted in BC as {new_no} "
                f"({after.get('status')}) after {base.issue} moved to "
                f"{status_name!r} ({source})",
                comment=True,
                mark_done=True,
                read=inv,
                response=slim(after),
                new_number=new_no,
                draft_number=draft_no,
            ),
        )

    def _unblock_vendor(self, base: Result, link: Link | None, status_name: str, source: str) -> Result:
        bc_id = str(base.bc_id)  # set: the issue names a record
        eset = SPECS["vendors"].entity_set
        ven = (self._acting or self.bc).get_record(eset, bc_id)
        base.document_number = ven.get("number") or base.document_number
        if not ven.get("blocked"):
            return self._finish(
                base,
                link,
                Decision(
                    "noop",
                    f"vendor {ven.get('number')} is not blocked in BC; nothing to do",
                    comment=not acted_on(link),
                    mark_done=True,
                    read=ven,
                ),
            )
        stale = self._stale(base, ven)
        if stale:
            return self._finish(
                base,
                link,
                Decision(
                    "stale", f"vendor {ven.get('number')} left blocked: {stale}", comment=True, read=ven
                ),
            )
        first = ven
        try:
            after = (self._acting or self.bc).unblock_vendor(bc_id, ven["@odata.etag"])
        except PreconditionFailed:
            ven = (self._acting or self.bc).get_record(
                eset, bc_id
            )  # someone changed it: look again, retry once
            if not ven.get("blocked"):
                return self._finish(
                    base,
                    link,
                    Decision(
                        "noop",
                        f"vendor {ven.get('number')} was unblocked meanwhile",
                        comment=True,
                        mark_done=True,
                        read=ven,
                    ),
                )
            after = (self._acting or self.bc).unblock_vendor(bc_id, ven["@odata.etag"])
        return self._finish(
            base,
            link,
            Decision(
                "unblocked",
                f"vendor {ven.get('number')} unblocked in BC (was "
                f"{first.get('blocked')!r}) after {base.issue} moved to "
                f"{status_name!r} ({source})",
                comment=True,
                mark_done=True,
                read=first,
                sent={"blocked": ""},
                response=slim(after),
            ),
        )

    def _stale(self, base: Result, record: Mapping[str, Any]) -> str | None:
        if base.done_at is None:
            log.warning(
                "%s: Jira returned no %s; the done status is not checked for replay",
                base.issue,
                DONE_AT_FIELD,
            )
        return replay_verdict(try_parse_ts(base.done_at), try_parse_ts(record.get("lastModifiedDateTime")))

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def _finish(self, res: Result, link: Link | None, d: Decision) -> Result:
        """Record the decision: result, link marked written back, audit row, log line, outcome comment."""
        res.action, res.detail, res.done = d.action, d.detail, d.done
        if d.new_number:
            res.new_number = d.new_number
        if d.mark_done and link is not None and link.state != LinkState.WRITTEN_BACK:
            # outbound must not add its own "no longer needs a step" comment for what we just did
            self.store.upsert_link(dataclasses.replace(link, state=LinkState.WRITTEN_BACK, updated_at=None))
        self._audit(
            res, read=slim(d.read), sent=d.sent, response=d.response, error=d.detail if d.error else None
        )
        log.info("%s: %s - %s", res.issue, d.action, d.detail)
        if d.comment:
            self._comment(res, d.draft_number)
        return res

    def _fail(self, res: Result, detail: str, *, transient: bool, comment: bool = False) -> Result:
        res.action, res.detail, res.done, res.transient = "error", detail, False, transient
        self._audit(res, error=detail)
        log.warning(
            "%s: write-back failed (%s): %s", res.issue, "will retry" if transient else "kept", detail
        )
        if comment:
            self._comment(res, None)
        return res

    def _audit(
        self,
        res: Result,
        *,
        read: Any = None,
        sent: Any = None,
        response: Any = None,
        error: str | None = None,
    ) -> None:
        row = audit_row(res, self.run, read=read, sent=sent, response=response, error=error)
        self.store.audit([dataclasses.replace(row, company=self._company)])

    def _comments(self) -> effects.CommentEffects:
        return effects.CommentEffects(
            store=self.store,
            post=self.jira.add_comment,
            comments=lambda issue: self.jira.iter_comments(issue, newest_first=True),
            audit=self._audit_comment,
        )

    def _audit_comment(
        self, suffix: str, eff: Any, reason: str, sent: Any, response: Any, error: str | None
    ) -> None:
        self._audit(
            Result(
                eff.issue_key or eff.issue_id or "",
                suffix,
                entity=eff.entity,
                bc_id=eff.bc_id,
                document_number=eff.payload.get("document_number"),
                detail=reason,
            ),
            sent=sent,
            response=response,
            error=error,
        )

    def _comment(self, res: Result, draft_number: str | None) -> None:
        """One comment per record, issue, outcome and done episode: a replay or second delivery adds none,
        and one that failed or lost its answer is made later (after looking for it), never twice."""
        text = comment_text(res, draft_number)
        body = adf.doc(adf.paragraph(adf.text("Business Central: ", strong=True), text, " (bc-jira)"))
        entity, bc_id = res.entity or "jira", res.bc_id or res.issue
        key = effects.effect_key(COMMENT_KIND, entity, bc_id, res.issue, res.done_at, text)
        comments = self._comments()
        eff = comments.plan(
            key,
            kind=COMMENT_KIND,
            entity=entity,
            bc_id=bc_id,
            issue=res.issue,
            issue_key=res.issue,
            body=body,
            context={"text": text, "document_number": res.document_number},
        )
        comments.make(eff)
