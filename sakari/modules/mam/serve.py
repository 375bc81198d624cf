"""Answering a XEP-0313 query from an archive: the page the query asks for, then its results at the
client's pace and the ``<fin/>``. Shared by user archives (this package) and room archives (muc)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sakari.core.session import Session
from sakari.modules.mam.query import Query, fin, result_message
from sakari.storage.base import ArchivePage, ArchiveStore
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError


async def find_page(store: ArchiveStore, owner: str, q: Query) -> ArchivePage:
    """The page of ``owner``'s archive that ``q`` asks for; item-not-found for an id the archive lacks."""
    for id in q.named:
        if await store.get(owner, id) is None:
            raise StanzaError("item-not-found", f"no archived message has the id {id!r}")
    try:
        page = await store.query(
            owner,
            with_jid=q.with_jid, start=q.start, end=q.end, after_id=q.after_id, before_id=q.before_id,
            ids=q.ids, text=q.text, limit=q.limit, reverse=q.reverse, count=q.count_only,
        )
    except ValueError:
        raise StanzaError("item-not-found", "an id in the query is not one of this archive's") from None
    if page.count is None and page.complete and q.after_id is None and q.before_id is None:
        page = dataclasses.replace(page, count=len(page.items))  # the whole result is on this page
    return page


async def send_page(
    session: Session, page: ArchivePage, q: Query, to: str, archive: str,
    shown: Callable[[Element], Element] | None = None,
) -> Element:
    """Each result to the querying session, waiting while it is behind; the ``<fin/>`` to answer with."""
    for item in reversed(page.items) if q.flip else page.items:
        if not await session.drained():  # a big page goes at the client's pace
            break
        session.send(result_message(item, to, archive, q.queryid, shown))
    return fin(page, q)
