"""What the core knows of a connected client: its address, presence and an outlet for stanzas."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from sakari.jid import JID
from sakari.xml.errors import StreamError
from sakari.xml.element import Element


class Session(ABC):
    """A bound client session. Transports (TCP, WebSocket, BOSH) implement the outlet."""

    def __init__(self, jid: JID) -> None:
        self.jid = jid
        self.jid_text = str(jid)  # stamped on every stanza this session sends
        self.bare = jid.bare
        self.user = jid.local
        self.host = jid.domain
        # Set by the presence module; the router reads them for bare-JID delivery (RFC 6121 §8.5.2).
        self.available = False
        self.priority = 0
        self.presence: Element | None = None
        self.interested = False  # asked for the roster (RFC 6121 §2.1.6 "interested resource")
        self.props: dict[str, Any] = {}  # per-session state of modules, keyed by module name

    @abstractmethod
    def send(self, stanza: Element) -> None:
        """Queue a stanza for this client (non-blocking)."""

    @abstractmethod
    def send_serialized(self, data: bytes) -> None:
        """Queue bytes already serialized for a jabber:client stream."""

    async def drained(self) -> bool:
        """Wait until the client has taken in what was queued for it, if it is behind.

        For bulk sends (a backlog of stored messages): awaiting this between stanzas keeps
        the queue short instead of cutting a slow client off. False once the session is gone.
        """
        return True

    @abstractmethod
    def close(self, error: StreamError | None = None) -> None:
        """End the stream, with a stream error if given."""

    def __repr__(self) -> str:
        return f"<Session {self.jid}>"
