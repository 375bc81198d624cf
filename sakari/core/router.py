"""The router interface: who is online where, with what presence, and how a stanza reaches anyone.

Modules and the network layer talk to this protocol only. :class:`LocalRouter`
(``sakari.core.local_router``) keeps everything in process dictionaries. A
clustered router can keep the same registry in a shared store and forward
stanzas between nodes: nothing outside the router holds a Session of another
client, and presence state lives here, not on Session objects, so modules do
not change when it arrives (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sakari.jid import JID
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

if TYPE_CHECKING:
    from sakari.core.events import StanzaEvent
    from sakari.core.hosts import Hosts
    from sakari.core.session import Session

ROUTE_REMOTE = "route/remote"  # StanzaEvent for a domain that is not ours (federation hooks it)
REQUEST_TIMEOUT = 30.0


@dataclass(slots=True, eq=False)
class Resource:
    """One bound resource as the router knows it. Read it; change it only through the router."""

    jid: JID
    session: Session | None  # the local session; a clustered router has None for resources on other nodes
    available: bool = False
    priority: int = 0
    presence: Element | None = None  # the last available presence broadcast, as sent
    flags: set[str] = field(default_factory=set)  # e.g. "roster": fetched the roster (RFC 6121 §2.1.6)


class Router(Protocol):
    hosts: Hosts

    # --- the registry (the session manager keeps it up to date) ---------------
    def bind(self, session: Session) -> Session | None:
        """Register a bound session; returns the older session with the same full JID it replaces."""

    def unbind(self, session: Session) -> bool: ...

    def forget(self, session: Session) -> None:
        """Drop a closed session's last state, once the modules that read it are done."""

    def resources(self, bare: JID) -> list[Resource]:
        """The account's bound resources, wherever they are connected."""

    def resource(self, full: JID) -> Resource | None: ...

    def resource_of(self, session: Session) -> Resource:
        """A local session's entry, also after it was replaced or closed (its last state)."""

    def is_online(self, bare: JID) -> bool: ...

    # --- presence state ---------------------------------------------------------
    def set_presence(self, session: Session, presence: Element | None, priority: int = 0) -> None:
        """A local session's broadcast presence; None: unavailable."""

    def mark(self, session: Session, flag: str) -> None:
        """Set a flag on a local session's resource (e.g. it fetched the roster, so it gets pushes)."""

    def unmark(self, session: Session, flag: str) -> None:
        """Clear a flag that a client may turn off again (e.g. message carbons)."""

    # --- delivery -------------------------------------------------------------------
    async def from_session(self, session: Session, stanza: Element) -> None:
        """A stanza a local client sent: stamped, checked, seen by modules, routed."""

    async def route(self, stanza: Element, from_jid: JID, to_jid: JID, origin: Session | None = None) -> None:
        """A stanza the server, or a module acting for someone, sends to any address."""

    async def from_external(self, stanza: Element, domain: str, subdomains: bool = False, outbound: bool = False) -> None:
        """A stanza from another server or a component authenticated as ``domain``; raises
        StreamError('invalid-from') when its 'from' is not of that domain. Another server may only address
        domains served here (else StreamError('host-unknown')); a component's stanzas (``outbound``) may go
        anywhere, and to a domain not served here they go on as a local sender's would (route/remote)."""

    async def deliver_to_bare(self, event: StanzaEvent) -> None:
        """RFC 6121 §8.5.2 delivery of a message to an account (offline storage when nobody takes it)."""

    def send_to(self, resources: list[Resource], stanza: Element) -> None:
        """Straight to these resources, past the delivery rules (pushes, broadcasts)."""

    async def request(self, iq: Element, to: JID, from_jid: JID | None = None, timeout: float = REQUEST_TIMEOUT) -> Element:
        """Send an iq get/set to any address and wait for its result or error (TimeoutError otherwise)."""

    def reply_result(self, event: StanzaEvent, payload: Element | bool | None = None) -> None: ...

    def reply_error(self, event: StanzaEvent, error: StanzaError) -> None: ...
