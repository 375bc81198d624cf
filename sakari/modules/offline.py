"""XEP-0160 offline messages: kept for an account with no available resource, delivered in order
on its next initial presence with a non-negative priority, with a XEP-0203 delay stamp. Delivered
messages are deleted once written, or, on a session with XEP-0198 stream management, once the
client acknowledged them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sakari.config import declare, positive
from sakari.core import events as E
from sakari.core.events import SessionEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.presence import PRESENCE_INITIAL
from sakari.modules.util import utc_stamp
from sakari.xml.errors import StanzaError
from sakari.xml import fragment

NS_DELAY = "urn:xmpp:delay"
NS_OFFLINE = "msgoffline"

MAX_MESSAGES = declare(
    "offline.max_messages", 1000, "Messages kept for one offline account; beyond it senders get an error.", positive
)


def setup(mod: ModuleAPI) -> None:
    store = mod.storage.offline
    busy: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def owner_lock(owner: str) -> AsyncIterator[None]:
        # A message found no available resource, and is being stored, while a resource comes online and
        # reads the store: without this, the reader can miss it until the next login. Storing takes the
        # lock before its first wait, so a delivery that starts later reads after the write.
        lock = busy.setdefault(owner, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and busy.get(owner) is lock:
                del busy[owner]

    async def keep(event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        if stanza.attrs.get("type", "normal") not in ("normal", "chat"):
            return False  # handled: headline/groupchat/error are not kept (RFC 6121 §8.5.2.2.1)
        owner = str(event.to_jid.bare)
        async with owner_lock(owner):
            if await mod.storage.accounts.get(owner) is None:
                return None  # no such account: the router answers service-unavailable
            if await store.count(owner) >= mod.option(MAX_MESSAGES, host=event.to_jid.domain):
                raise StanzaError("service-unavailable", "the recipient's offline storage is full")
            copy = stanza.shallow_copy()
            copy.children = list(stanza.children)
            copy.add("delay", NS_DELAY, {"from": event.to_jid.domain, "stamp": utc_stamp()}, "Offline storage")
            await store.push(owner, fragment.dump(copy))
        return True

    def acknowledgements() -> Any:
        """Stream management, when enabled: it tells when the client acknowledged what it got."""
        try:
            return mod.require("smacks")
        except RuntimeError:
            return None

    def forget_through(owner: str, row: int) -> Callable[[], object]:
        return lambda: mod.spawn(store.delete_through(owner, row))

    async def deliver(event: SessionEvent) -> None:
        session = event.session
        if mod.router.resource_of(session).priority < 0:
            return
        owner = str(session.bare)
        acks = acknowledgements()
        # With stream management, a stored message is deleted once the client acknowledged it, not once
        # it was written: a connection lost meanwhile leaves it stored for the next session.
        on_ack = acks is not None and acks.enabled(session)
        async with owner_lock(owner):
            stored = await store.list(owner)
            sent = None
            for row, data in stored:
                # Paced: a backlog larger than limits.max_send_buffer would otherwise get a slow client cut
                # off, and what had been queued lost. (Live messages may overtake the rest meanwhile; all
                # stored ones carry their delay stamp.)
                if not await session.drained():
                    break  # gone: what was not sent stays stored for the next session
                stanza = fragment.load(data)
                session.send(stanza)
                if on_ack:
                    # A message a filter held back is covered by the next one acknowledged.
                    acks.watch(session, stanza, forget_through(owner, row))
                else:
                    sent = row
            if sent is not None:
                await store.delete_through(owner, sent)

    mod.add_feature(NS_OFFLINE)
    mod.hook(E.MESSAGE_OFFLINE, keep)
    mod.hook(PRESENCE_INITIAL, deliver)
