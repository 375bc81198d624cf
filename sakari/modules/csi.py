"""XEP-0352 Client State Indication: an inactive client (a phone in a pocket) is not woken for noise.

While the client says it is ``<inactive/>``, presence updates and chat states (XEP-0085 messages
without a body) are held back, and collapsed: only the latest of each contact's resources is kept.
Anything else (a message with a body, XEP-0353 call signalling, an iq, a subscription request)
goes out at once, after what was held, so that the client sees everything in order. ``<active/>``
releases what was held. A client with more than ``csi.max_held`` held stanzas gets them all.

The filter is added to a session only when its client first says it is inactive. A client may
give its first state inside its Bind 2 request (XEP-0386), so that it starts inactive.
"""

from __future__ import annotations

from sakari.config import declare, positive
from sakari.core import events as E
from sakari.core.events import NonzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.xml import ns as NS
from sakari.xml.element import Element

NS_CSI = "urn:xmpp:csi:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
# What may come with a chat state in a message that is nothing but a chat state.
NS_ALONGSIDE_CHATSTATES = frozenset((NS_CHATSTATES, "urn:xmpp:hints", "urn:xmpp:sid:0", "urn:xmpp:delay"))
PROP = "csi"
FILTER_PRIORITY = -100  # after carbons (copies go out at once), before stream management (counts what is sent)

MAX_HELD = declare(
    "csi.max_held", 256, "Presence updates and chat states held back for an inactive client before all are sent.", positive
)


def holding_key(stanza: Element) -> tuple[str, str] | None:
    """What a held stanza replaces (the same kind from the same address), or None if it must go out now."""
    name = stanza.name
    if name == "presence":
        if stanza.attrs.get("type") in (None, "unavailable"):
            return "presence", stanza.attrs.get("from", "")
        return None  # subscriptions, errors: the user acts on them
    if name == "message" and is_chat_state_only(stanza):
        return "chatstate", stanza.attrs.get("from", "")
    return None


def is_chat_state_only(message: Element) -> bool:
    chat_state = False
    for child in message.children:
        if child.__class__ is not Element:
            continue
        ns = child.ns  # type: ignore[union-attr]
        if ns == NS_CHATSTATES:
            chat_state = True
        elif ns not in NS_ALONGSIDE_CHATSTATES and not (ns == NS.CLIENT and child.name == "thread"):  # type: ignore[union-attr]
            return False  # a body, an encrypted payload, call signalling, a receipt…
    return chat_state


class ClientState:
    """One session's state and what is held for it (sans-IO: releasing is the caller's)."""

    __slots__ = ("inactive", "held")

    def __init__(self) -> None:
        self.inactive = False
        self.held: dict[tuple[str, str], Element] = {}  # in the order last updated

    def hold(self, key: tuple[str, str], stanza: Element) -> None:
        self.held.pop(key, None)  # the newest goes last, so order follows what was latest
        self.held[key] = stanza

    def release(self) -> list[Element]:
        held = list(self.held.values())
        self.held.clear()
        return held


class Csi:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod

    def nonza(self, event: NonzaEvent) -> bool | None:
        element = event.element
        if element.ns != NS_CSI or element.name not in ("active", "inactive"):
            return None
        self.set_state(event.session, element.name)
        return True

    def inline(self, session: Session, element: Element) -> None:
        if element.name in ("active", "inactive"):
            self.set_state(session, element.name)

    def set_state(self, session: Session, name: str) -> None:
        state: ClientState | None = session.props.get(PROP)
        if name == "inactive":
            if state is None:
                state = session.props[PROP] = ClientState()
                session.outbound.add(self.filter, FILTER_PRIORITY)
            state.inactive = True
        elif state is not None:
            state.inactive = False
            self.release(session, state)

    def filter(self, session: Session, stanza: Element) -> Element | None:
        state: ClientState = session.props[PROP]
        if not state.inactive:
            return stanza
        key = holding_key(stanza)
        if key is None:
            self.release(session, state)  # first what was held, so the client sees everything in order
            return stanza
        state.hold(key, stanza)
        if len(state.held) > self.mod.option(MAX_HELD):
            self.release(session, state)
        return None

    def release(self, session: Session, state: ClientState) -> None:
        for stanza in state.release():
            session.send_after(self.filter, stanza)


def setup(mod: ModuleAPI) -> None:
    csi = Csi(mod)
    mod.add_stream_feature(lambda authenticated: Element("csi", NS_CSI) if authenticated else None)
    mod.hook(E.STREAM_NONZA, csi.nonza)
    mod.add_bind_inline(NS_CSI, csi.inline)
