"""The hook registry: stanzas and server happenings are dispatched by event name.

Names follow the stanza kind and its target, as in ``message/bare`` or
``iq-get/host/urn:xmpp:ping:ping``. Handlers run by descending priority; the
first one to return something other than ``None`` ends the dispatch and its
value is the result. A plain function may return a coroutine when it needs to
wait only sometimes (a cache miss): the dispatcher awaits it, and the common
case costs no coroutine at all. Hooking a name that nothing fires is an error found at
start-up (:meth:`Events.check`), so a misspelling cannot fail silently.
"""

from __future__ import annotations

import asyncio
import re
from types import CoroutineType
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sakari.jid import JID
from sakari.xml.element import Element

if TYPE_CHECKING:
    from sakari.core.session import Session

Handler = Callable[[Any], Any]

TARGETS = ("host", "self", "bare", "full")

# Events that the core fires besides the per-stanza ones.
SESSION_BOUND = "session/bound"  # SessionEvent, after resource binding
SESSION_DETACHED = "session/detached"  # SessionEvent, its connection is gone but the session waits to be resumed
SESSION_RESUMED = "session/resumed"  # SessionEvent, a new connection carries the session
SESSION_CLOSING = "session/closing"  # SessionEvent, the session ends; still in the router (last chance for its queues)
SESSION_CLOSED = "session/closed"  # SessionEvent, after the session left the router
STANZA_UNDELIVERABLE = "stanza/undeliverable"  # UndeliverableEvent, a stanza for a session without a connection
STREAM_NONZA = "stream/nonza"  # NonzaEvent, a top-level non-stanza element on a bound stream
INBOUND_USER = "inbound/user"  # StanzaEvent, every stanza about to reach a local account
MESSAGE_OFFLINE = "message/offline"  # StanzaEvent, a message no resource can take now
ACCOUNT_DELETED = "account/deleted"  # AccountEvent
SERVER_STARTED = "server/started"  # ServerEvent, modules loaded, before listening
SERVER_STOPPING = "server/stopping"  # ServerEvent
COMPONENT_CONNECTED = "component/connected"  # ComponentEvent, an external component's handshake succeeded

CORE_EVENTS = frozenset(
    {
        SESSION_BOUND, SESSION_DETACHED, SESSION_RESUMED, SESSION_CLOSING, SESSION_CLOSED, STANZA_UNDELIVERABLE,
        STREAM_NONZA, INBOUND_USER, MESSAGE_OFFLINE, ACCOUNT_DELETED, SERVER_STARTED, SERVER_STOPPING,
        COMPONENT_CONNECTED,
    }
)

_STANZA_EVENT = re.compile(r"^(pre-)?(message|presence)/(host|self|bare|full)$")
# "service": an iq to a local service's domain that the service itself left unanswered (disco, ping…).
_IQ_EVENT = re.compile(r"^iq-(get|set)/(host|self|bare|service)/[^\s:]+(:[^\s:]+)*:[^\s:/]+$")


def stanza_event(kind: str, target: str) -> str:
    return f"{kind}/{target}"


def pre_event(kind: str, target: str) -> str:
    return f"pre-{kind}/{target}"


def iq_event(type_: str, target: str, ns: str, name: str) -> str:
    return f"iq-{type_}/{target}/{ns}:{name}"


@dataclass(slots=True)
class StanzaEvent:
    stanza: Element
    from_jid: JID
    to_jid: JID
    origin: Session | None = None  # the local session that sent it; None when the server made it


@dataclass(slots=True)
class SessionEvent:
    session: Session


@dataclass(slots=True)
class UndeliverableEvent:
    session: Session
    stanza: Element


@dataclass(slots=True)
class NonzaEvent:
    session: Session
    element: Element


@dataclass(slots=True)
class AccountEvent:
    user: str
    host: str


@dataclass(slots=True)
class ServerEvent:
    pass


@dataclass(slots=True)
class ComponentEvent:
    domain: str  # the component's, as configured


@dataclass(order=True, slots=True)
class _Entry:
    order: tuple[int, int]
    fn: Handler = field(compare=False)
    is_async: bool = field(compare=False)


class Events:
    def __init__(self) -> None:
        self._handlers: dict[str, list[_Entry]] = {}
        self._declared: set[str] = set(CORE_EVENTS)
        self._seq = 0

    def declare(self, name: str) -> None:
        """Make a module's own event name known, so others may hook it."""
        self._declared.add(name)

    def hook(self, name: str, fn: Handler, priority: int = 0) -> None:
        self._seq += 1
        entries = self._handlers.setdefault(name, [])
        entries.append(_Entry((-priority, self._seq), fn, asyncio.iscoroutinefunction(fn)))
        entries.sort()

    @property
    def hooked(self) -> dict[str, list[_Entry]]:
        """Event name → handlers; the router checks it to skip firing events nobody hooked."""
        return self._handlers

    def check(self) -> None:
        """Raise if any hooked name is one that nothing fires (a misspelling)."""
        unknown = [
            n for n in self._handlers
            if n not in self._declared and not _STANZA_EVENT.match(n) and not _IQ_EVENT.match(n)
        ]
        if unknown:
            raise ValueError(f"hooks on events that are never fired: {', '.join(sorted(unknown))}")

    async def fire(self, name: str, event: Any) -> Any:
        entries = self._handlers.get(name)
        if not entries:
            return None
        return await self._run(entries, 0, event)

    def dispatch(self, name: str, event: Any) -> Any:
        """Like :meth:`fire`, without a coroutine while every handler answers at once.

        Returns the result, or a coroutine to await when a handler has to wait.
        For the per-stanza path, where creating a coroutine per event shows.
        """
        entries = self._handlers.get(name)
        if not entries:
            return None
        for index, entry in enumerate(entries):
            result = entry.fn(event)
            if entry.is_async or result.__class__ is CoroutineType:
                return self._continue(result, entries, index + 1, event)
            if result is not None:
                return result
        return None

    async def _continue(self, pending: Any, entries: list[_Entry], start: int, event: Any) -> Any:
        result = await pending
        if result is not None:
            return result
        return await self._run(entries, start, event)

    async def _run(self, entries: list[_Entry], start: int, event: Any) -> Any:
        for entry in entries[start:] if start else entries:
            result = entry.fn(event)
            if entry.is_async or result.__class__ is CoroutineType:
                result = await result
            if result is not None:
                return result
        return None

    async def fire_all(self, name: str, event: Any) -> None:
        """Run every handler (for notifications that nobody may stop)."""
        for entry in self._handlers.get(name, ()):
            result = entry.fn(event)
            if entry.is_async or result.__class__ is CoroutineType:
                await result
