"""The Jabber Component Protocol (XEP-0114) as a sans-IO state machine.

An external component (a bridge such as biboumi or slidge) opens a stream in
``jabber:component:accept`` whose ``to`` names its domain, proves it knows
the domain's shared secret with ``<handshake/>`` = hex(SHA-1(stream id +
secret)), then sends and receives stanzas. There is no TLS, SASL nor
restart: header → handshake → stanzas. The transitions are the table
``_ACCEPTS``; an element a state does not list is a stream error by
construction.

Stanzas are the same stanzas as a client's, only their namespace differs:
the parser reads ``jabber:component:accept`` as ``jabber:client`` (so every
module sees one namespace), and stanzas going out are serialized against
``jabber:client``, which leaves their elements without an ``xmlns`` and so,
inside this stream, in ``jabber:component:accept``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from sakari.jid import JIDError, prep_domain
from sakari.stream.framing import AliasParser, TcpFraming
from sakari.stream.machine import StreamMachine
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamOpened

NS_ACCEPT = "jabber:component:accept"
_STANZA_NAMES = frozenset(("message", "presence", "iq"))


class AcceptParser(AliasParser):
    """Reads elements in jabber:component:accept as jabber:client (foreign namespaces are kept)."""

    alias = NS_ACCEPT + " "


class ComponentFraming(TcpFraming):
    content_ns = NS_ACCEPT
    parser = AcceptParser


def handshake_digest(stream_id: str, secret: str) -> str:
    """XEP-0114 §3: the lower-case hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


# --- events for the driver ------------------------------------------------------
@dataclass(slots=True)
class Authenticated:
    """The handshake is right: stanzas for ``domain`` (and its subdomains) flow from now on."""

    domain: str


@dataclass(slots=True)
class StanzaReceived:
    stanza: Element


@dataclass(slots=True)
class StreamEnded:
    error: StreamError | None  # the error we sent, or None for an orderly close


Event = Authenticated | StanzaReceived | StreamEnded


class State(Enum):
    HEADER = auto()  # waiting for the component's stream header
    HANDSHAKE = auto()  # our header sent; waiting for <handshake/>
    READY = auto()  # stanzas flow
    CLOSED = auto()


class ComponentStream(StreamMachine[Event]):
    CLOSED = State.CLOSED
    ENDED = StreamEnded

    def __init__(self, secrets_by_domain: Mapping[str, str], max_stanza_size: int = 262144, max_depth: int = 64) -> None:
        self.secrets = secrets_by_domain  # domain → shared secret, from the configuration
        self.framing = ComponentFraming(max_stanza_size, max_depth)
        self.state = State.HEADER
        self.domain = ""  # the component's, once its header named a configured one
        self.stream_id = ""
        self._header_sent = False
        self._out: list[bytes] = []
        self._events: list[Event] = []

    # --- I/O ------------------------------------------------------------------
    def send(self, stanza: Element) -> None:
        self._out.append(stanza.serialize(NS.CLIENT).encode())

    def release_parser(self) -> bool:
        return self.state is State.READY and self.framing.release()

    # --- the stream header ----------------------------------------------------
    def _header(self, opened: StreamOpened) -> None:
        if self.state is not State.HEADER:
            raise StreamError("not-well-formed", "unexpected stream header")
        try:
            domain = prep_domain(opened.attrs.get("to", ""))
        except JIDError:
            domain = ""
        if domain in self.secrets:
            self.domain = domain
        self._send_header()
        if opened.name != "stream" or opened.ns != NS.STREAMS:
            raise StreamError("invalid-namespace", "the stream element must be stream:stream")
        if opened.default_ns != NS_ACCEPT:
            raise StreamError("invalid-namespace", f"the content namespace must be {NS_ACCEPT}")
        if not self.domain:
            raise StreamError("host-unknown", "no component is configured for this domain")
        self.state = State.HANDSHAKE

    def _send_header(self) -> None:
        self._header_sent = True
        self.stream_id = secrets.token_hex(16)
        attrs = {"id": self.stream_id}
        if self.domain:
            attrs["from"] = self.domain
        self._out.append(self.framing.header(attrs))

    # --- top-level elements, by state -----------------------------------------
    def _element(self, el: Element) -> None:
        handler = _ACCEPTS.get((self.state, el.ns, el.name))
        if handler is not None:
            handler(self, el)
        elif self.state is State.HANDSHAKE and el.ns == NS.CLIENT and el.name in _STANZA_NAMES:
            raise StreamError("not-authorized", "send the handshake first")
        else:
            raise StreamError("unsupported-stanza-type", f"<{el.name}/> is not expected now")

    def _handshake(self, el: Element) -> None:
        expected = handshake_digest(self.stream_id, self.secrets[self.domain])
        if not hmac.compare_digest(el.text.strip().lower().encode(), expected.encode()):
            raise StreamError("not-authorized", "the handshake does not match this domain's secret")
        self._out.append(b"<handshake/>")
        self.state = State.READY
        self._events.append(Authenticated(self.domain))

    def _stanza(self, el: Element) -> None:
        self._events.append(StanzaReceived(el))


_ACCEPTS: dict[tuple[State, str, str], Callable[[ComponentStream, Element], Any]] = {
    (State.HANDSHAKE, NS.CLIENT, "handshake"): ComponentStream._handshake,
    (State.READY, NS.CLIENT, "message"): ComponentStream._stanza,
    (State.READY, NS.CLIENT, "presence"): ComponentStream._stanza,
    (State.READY, NS.CLIENT, "iq"): ComponentStream._stanza,
}
