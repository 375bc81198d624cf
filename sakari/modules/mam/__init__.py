"""XEP-0313 Message Archive Management for user archives (``urn:xmpp:mam:2`` and ``#extended``).

- Archiving (§7): a message a user sends goes into the sender's archive, a message a
  user receives into the recipient's, each under an id of its own; local to local, both.
  rules.py says which messages are kept; XEP-0334 hints decide first.
- XEP-0359: a received message is delivered with ``<stanza-id by='user@domain'/>``, the
  id of its archived copy; one a sender put there claiming that archive is removed.
  Offline copies (XEP-0160) carry it too, so a client that gets a message both ways can
  tell it is one message (docs/archive.md).
- Queries (§4) with XEP-0059 paging, filters by contact, time, ids and XEP-0431 full
  text; the form, preferences (§6) and archive metadata.
- Retention: messages older than ``mam.retention_days`` are deleted, hourly.

Writes are batched off the delivery path (archiver.py): delivery never waits for storage, but the
acknowledgement to the sender (XEP-0198) does, so an acknowledged message survives a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from types import CoroutineType
from typing import Any

from sakari.config import declare, one_of, positive
from sakari.core import events as E
from sakari.core.events import ServerEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.mam.archiver import Archiver
from sakari.modules.mam.query import (
    NS_FULLTEXT,
    form_fields,
    parse_query,
    precise_stamp,
)
from sakari.modules.mam.rules import (
    NS_MAM,
    NS_SID,
    Prefs,
    body_of,
    claims_archive,
    load_prefs,
    parse_prefs,
    unclaimed,
    with_stanza_id,
    worth_keeping,
)
from sakari.modules.mam.serve import find_page, send_page
from sakari.modules.util import payload, refuse
from sakari.storage.base import ArchiveEntry
from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_EXTENDED = "urn:xmpp:mam:2#extended"
EXPIRY_INTERVAL = 3600.0  # seconds between two deletions of expired messages

MAX_RESULTS = declare(
    "mam.max_results", 100, "Largest page of archived messages a client may ask for (and the page when it names none).", positive
)
RETENTION_DAYS = declare(
    "mam.retention_days", 365, "Days an archived message is kept; older ones are deleted, every hour.", positive
)
DEFAULT_POLICY = declare(
    "mam.default",
    "always",
    "What is archived for a user who set no preferences: \"always\", \"never\", or \"roster\" (chats with roster contacts only).",
    one_of("always", "never", "roster"),
)

Verdict = bool | Coroutine[Any, Any, bool]


def setup(mod: ModuleAPI) -> None:
    store = mod.storage.archive("mam")
    prefs_store = mod.storage.cached_keyvalue("mam_prefs")
    rosters = mod.storage.roster
    router = mod.router
    archiver = Archiver(store, mod.spawn)
    mod.add_write_barrier(archiver.barrier)  # stream management acknowledges a message once it is archived
    default_policy = mod.option(DEFAULT_POLICY)  # read once: wanted() asks for every message
    expiry: list[asyncio.Task[None]] = []

    # --- what to archive ---------------------------------------------------------------
    def wanted(owner: str, contact: str) -> Verdict:
        """Whether the owner's preferences archive messages with this contact; peeks first, like blocking."""
        cached = prefs_store.peek(owner)
        if cached is None:
            return wanted_loading(owner, contact)
        if cached[0] is None:
            return by_default(default_policy, owner, contact)
        prefs = load_prefs(cached[0])
        verdict = prefs.decides(contact)
        return by_default(prefs.default, owner, contact) if verdict is None else verdict

    async def wanted_loading(owner: str, contact: str) -> bool:
        await prefs_store.get(owner)
        verdict = wanted(owner, contact)
        return await verdict if verdict.__class__ is CoroutineType else verdict  # type: ignore[misc,return-value]

    def by_default(default: str, owner: str, contact: str) -> Verdict:
        if default != "roster":
            return default == "always"
        roster = rosters.peek(owner)
        if roster is None:
            return in_roster_loading(owner, contact)
        item = roster[1].get(contact)
        return item is not None and item.listed

    async def in_roster_loading(owner: str, contact: str) -> bool:
        _, items = await rosters.get(owner)
        item = items.get(contact)
        return item is not None and item.listed

    # --- archiving ---------------------------------------------------------------------
    # The last stanza serialized for an archive, its bytes and text: a local chat is archived for its
    # sender, then for its recipient, from one serialization (the router hands both hooks the same
    # element). Archives keep messages as sent; the archive's id comes back in each query result.
    last: list[Any] = [None, b"", None]

    def entry(owner: str, id: str, contact: str, stanza: Element) -> ArchiveEntry:
        if last[0] is not stanza:
            last[0], last[1], last[2] = stanza, fragment.dump(stanza), body_of(stanza)
        return ArchiveEntry(owner, id, contact, last[1], last[2])

    def sent(event: StanzaEvent) -> Coroutine[Any, Any, None] | None:
        """Outbound: the sender's copy."""
        stanza = event.stanza
        owner, contact = event.from_jid.bare, event.to_jid.bare
        if owner == contact or not worth_keeping(stanza):
            return None  # to oneself: archived once, as received
        verdict = wanted(owner.text, contact.text)
        if verdict.__class__ is CoroutineType:
            return keep_sent(event, verdict)  # type: ignore[arg-type]
        if verdict:
            archiver.add(entry(owner.text, store.new_id(), contact.text, stanza))
        return None

    async def keep_sent(event: StanzaEvent, verdict: Coroutine[Any, Any, bool]) -> None:
        if await verdict:
            archiver.add(entry(event.from_jid.bare.text, store.new_id(), event.to_jid.bare.text, event.stanza))

    def received(event: StanzaEvent) -> Coroutine[Any, Any, None] | None:
        """Inbound to an online user: the recipient's copy, and the stanza-id on what is delivered."""
        owner = event.to_jid.bare
        if not worth_keeping(event.stanza) or not router.is_online(owner):
            # Not archived, or not yet: with nobody online, message/offline decides, once the account is known.
            event.stanza = unclaimed(event.stanza, owner.text)
            return None
        verdict = wanted(owner.text, event.from_jid.bare.text)
        if verdict.__class__ is CoroutineType:
            return keep_received_later(event, verdict)  # type: ignore[arg-type]
        keep_received(event, verdict)  # type: ignore[arg-type]
        return None

    async def keep_received_later(event: StanzaEvent, verdict: Coroutine[Any, Any, bool]) -> None:
        keep_received(event, await verdict)

    def keep_received(event: StanzaEvent, verdict: bool) -> None:
        owner = event.to_jid.bare.text
        clean = unclaimed(event.stanza, owner)
        if not verdict:
            event.stanza = clean
            return
        id = store.new_id()
        archiver.add(entry(owner, id, event.from_jid.bare.text, clean))
        event.stanza = with_stanza_id(clean, owner, id)

    async def offline(event: StanzaEvent) -> None:
        """Inbound to a user with no resource that takes it: archived before offline storage keeps it,
        so the offline copy carries the archive's stanza-id."""
        owner = event.to_jid.bare.text
        if claims_archive(event.stanza, owner) or not worth_keeping(event.stanza):
            return None  # archived on arrival (a resource was bound), or not for the archive
        if await mod.storage.accounts.get(owner) is None:
            return None
        verdict = wanted(owner, event.from_jid.bare.text)
        keep_received(event, await verdict if verdict.__class__ is CoroutineType else verdict)  # type: ignore[misc,arg-type]
        return None

    # --- queries -----------------------------------------------------------------------
    async def query(event: StanzaEvent) -> Element:
        session = event.origin
        if session is None:
            raise StanzaError("not-allowed", "only a client queries its archive")
        q = parse_query(payload(event), mod.option(MAX_RESULTS))
        owner = event.to_jid.bare.text
        await archiver.written()  # what was just delivered is found
        page = await find_page(store, owner, q)
        return await send_page(session, page, q, event.from_jid.text, owner)

    def fields(event: StanzaEvent) -> Element:
        return form_fields()

    async def metadata(event: StanzaEvent) -> Element:
        """The archive's first and last message (XEP-0313 §5.4), for a client's first sync."""
        owner = event.to_jid.bare.text
        await archiver.written()
        first = await store.query(owner, limit=1)
        last = await store.query(owner, limit=1, reverse=True)
        result = Element("metadata", NS_MAM)
        for name, page in (("start", first), ("end", last)):
            if page.items:
                item = page.items[0]
                result.add(name, attrs={"id": item.id, "timestamp": precise_stamp(item.timestamp)})
        return result

    # --- preferences -------------------------------------------------------------------
    async def prefs_of(owner: str) -> Prefs:
        data = await prefs_store.get(owner)
        return Prefs(default_policy) if data is None else load_prefs(data)

    async def get_prefs(event: StanzaEvent) -> Element:
        return (await prefs_of(event.to_jid.bare.text)).to_element()

    async def set_prefs(event: StanzaEvent) -> Element:
        prefs = parse_prefs(payload(event))
        await prefs_store.set(event.to_jid.bare.text, prefs.dump())
        return prefs.to_element()

    # --- retention ---------------------------------------------------------------------
    async def expire_forever() -> None:
        while True:
            cutoff = time.time() - mod.option(RETENTION_DAYS) * 86400
            gone = await store.expire(cutoff)
            if gone:
                mod.log.info("event=archive-expired messages=%d", gone)
            await asyncio.sleep(EXPIRY_INTERVAL)

    def started(event: ServerEvent) -> None:
        expiry.append(mod.spawn(expire_forever()))

    async def stopping(event: ServerEvent) -> None:
        for task in expiry:
            task.cancel()
        await archiver.written()

    for feature in (NS_MAM, NS_EXTENDED, NS_SID, NS_FULLTEXT):
        mod.add_feature(feature)
        mod.add_account_feature(feature)
    for target in ("bare", "full"):
        mod.hook(f"pre-message/{target}", sent, priority=50)
        mod.hook(f"message/{target}", received, priority=50)
    mod.hook(E.MESSAGE_OFFLINE, offline, priority=50)
    mod.hook(f"iq-set/self/{NS_MAM}:query", query)
    mod.hook(f"iq-get/self/{NS_MAM}:query", fields)
    mod.hook(f"iq-get/self/{NS_MAM}:metadata", metadata)
    mod.hook(f"iq-get/self/{NS_MAM}:prefs", get_prefs)
    mod.hook(f"iq-set/self/{NS_MAM}:prefs", set_prefs)
    for kind in ("get", "set"):
        for name in ("query", "prefs", "metadata"):
            mod.hook(f"iq-{kind}/bare/{NS_MAM}:{name}", refuse("forbidden", "an archive is only its owner's"))
    mod.hook(E.SERVER_STARTED, started)
    mod.hook(E.SERVER_STOPPING, stopping)
