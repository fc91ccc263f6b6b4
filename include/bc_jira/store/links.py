"""Which Jira issue each BC record has (``bc_jira_links``): the no-duplicates promise rests on these rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bc_jira.store.schema import Link, aware, links, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.engine import Row

    from bc_jira.store.engine import Database

CHUNK = 500  # ids per IN (...): far below SQLite's bound-parameter limit


def link_from_row(r: Row[Any]) -> Link:
    return Link(
        r.entity,
        r.bc_id,
        r.document_number,
        r.issue_id,
        r.issue_key,
        r.content_hash,
        r.bc_last_modified,
        r.state,
        aware(r.updated_at),
        r.summary_hash,
        r.description_hash,
        r.company,
    )


class LinkRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get_links(self, entity: str, bc_ids: Iterable[str], company: str = "") -> dict[str, Link]:
        ids = list(dict.fromkeys(bc_ids))
        out: dict[str, Link] = {}
        with self._db.tx() as conn:
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i : i + CHUNK]
                q = sa.select(links).where(
                    links.c.company == company, links.c.entity == entity, links.c.bc_id.in_(chunk)
                )
                out.update({r.bc_id: link_from_row(r) for r in conn.execute(q)})
        return out

    def linked_ids(self, entity: str, exclude_states: Iterable[str] = (), company: str = "") -> list[str]:
        """The record ids of ``entity`` that have an issue, except links in ``exclude_states`` (id order)."""
        q = sa.select(links.c.bc_id).where(
            links.c.company == company, links.c.entity == entity, links.c.issue_id.is_not(None)
        )
        skip = [str(s) for s in exclude_states]
        if skip:
            q = q.where(links.c.state.not_in(skip))
        with self._db.tx() as conn:
            return [r.bc_id for r in conn.execute(q.order_by(links.c.bc_id))]

    def get_link_by_issue(self, issue_id_or_key: str) -> Link | None:
        q = sa.select(links).where(
            sa.or_(links.c.issue_id == str(issue_id_or_key), links.c.issue_key == str(issue_id_or_key))
        )
        q = q.order_by(links.c.updated_at.desc()).limit(1)
        with self._db.tx() as conn:
            row = conn.execute(q).first()
        return link_from_row(row) if row is not None else None

    def upsert_link(self, link: Link) -> None:
        values = asdict(link)
        values["updated_at"] = link.updated_at or utcnow()
        with self._db.tx() as conn:
            conn.execute(self._db.upsert(links, values, ["company", "entity", "bc_id"]))

    def upsert_links(self, items: Sequence[Link]) -> None:
        """Several links in one transaction (the outbound writes up to 50 intents/results at once)."""
        if not items:
            return
        now = utcnow()
        rows = [{**asdict(link), "updated_at": link.updated_at or now} for link in items]
        stmt = self._db.insert(links)
        keep = ("company", "entity", "bc_id")
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keep), set_={k: stmt.excluded[k] for k in rows[0] if k not in keep}
        )
        with self._db.tx() as conn:
            conn.execute(stmt, rows)  # executemany: one statement, one transaction
