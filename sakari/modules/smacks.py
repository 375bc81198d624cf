"""XEP-0198 Stream Management: acknowledgements, resumption and redelivery for client streams.

- §3 ``<enable/>`` after binding, with resumption when asked; before binding it fails with
  ``unexpected-request``, as does a second ``<enable/>``. It may also come inside a Bind 2 request
  (XEP-0386), whose ``<bound/>`` then carries the answer.
- §4 acks: the client's stanzas are counted by an inbound filter, ours by an outbound filter
  that keeps each one until acknowledged. Our ``<a/>`` (and the h of ``<resumed/>``) waits until
  what the counted stanzas caused to be written off the delivery path (the archive's batches,
  ``mod.pending_writes``) is durable: an acknowledged message survives the server being killed. We ask for an ack (``<r/>``) once per turn of the
  event loop in which something was sent, and again after an ack that left some unacknowledged.
- §5 resumption: a lost connection detaches the session for ``smacks.resume_timeout`` seconds;
  ``<resume/>`` (before binding, or inline in SASL2's ``<authenticate/>``, XEP-0388, where
  ``<resumed/>`` or ``<failed/>`` comes in ``<success/>`` and a resumed session skips Bind 2)
  puts it on the new connection and sends what the client had not
  acknowledged again, messages with a XEP-0203 delay stamp of when they were first sent.
- When the session ends without a resumption (timeout, ``</stream:stream>``, an error), the
  unacknowledged messages go to the account again, so they reach another resource or offline
  storage: never dropped. Unacknowledged iq requests are answered with ``recipient-unavailable``;
  presence and everything else is dropped (it is state that the next session gets anew).

Filters are added to a session only when its client enables stream management, so a session
without it pays nothing per stanza.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sakari.config import declare, positive
from sakari.core import events as E
from sakari.core.events import NonzaEvent, SessionEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.core.sessions import PreBind
from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.util import utc_stamp
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, StreamError, error_reply

NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"
NS_CARBONS = "urn:xmpp:carbons:2"
H_MODULO = 2**32  # §4: h wraps around at 2^32
PROP = "smacks"
FILTER_PRIORITY = -1000  # last of the outbound filters: count exactly what goes to the client

RESUME_TIMEOUT = declare(
    "smacks.resume_timeout", 600.0,
    "Seconds a session whose connection was lost waits to be resumed (XEP-0198). Phones changing networks need minutes.",
    positive,
)
MAX_QUEUE = declare(
    "smacks.max_queue", 500,
    "Stanzas a client may leave unacknowledged; beyond it the session ends and its messages go to offline storage.",
    positive,
)


class HandledCountTooHigh(Exception):
    def __init__(self, h: int, sent: int) -> None:
        super().__init__(f"h={h} but only {sent} stanzas were sent")
        self.h = h
        self.sent = sent


class AckState:
    """One session's counters and unacknowledged stanzas (sans-IO)."""

    __slots__ = (
        "handled", "acked", "queue", "watchers", "resume_id", "awaiting_ack", "ack_scheduled", "max_queue",
        "answering", "asked_again",
    )

    def __init__(self, resume_id: str | None, max_queue: int = 500) -> None:
        self.handled = 0  # stanzas received from the client
        self.acked = 0  # stanzas of ours the client acknowledged
        self.queue: deque[tuple[Element, float]] = deque()  # unacknowledged, with when they were first sent
        self.watchers: deque[tuple[int, Callable[[], Any]]] = deque()  # (sequence number, called once it is acked)
        self.resume_id = resume_id
        self.awaiting_ack = False
        self.ack_scheduled = False
        self.max_queue = max_queue
        self.answering = False  # an <a/> waits for durable writes; a later <r/> is answered after it
        self.asked_again = False

    @property
    def sent(self) -> int:
        return self.acked + len(self.queue)

    def queued(self, stanza: Element) -> None:
        self.queue.append((stanza, time.time()))

    def ack(self, h: int) -> list[Callable[[], Any]]:
        """The client handled ``h`` (mod 2^32) of our stanzas: forget those; returns the watchers now due."""
        newly = (h - self.acked) % H_MODULO
        if newly > len(self.queue):
            raise HandledCountTooHigh(h, self.sent % H_MODULO)
        for _ in range(newly):
            self.queue.popleft()
        self.acked += newly
        due = []
        while self.watchers and self.watchers[0][0] <= self.acked:
            due.append(self.watchers.popleft()[1])
        return due

    def watch(self, stanza: Element, fn: Callable[[], Any]) -> bool:
        """Call ``fn`` once ``stanza`` (the last one queued) is acknowledged; False if it was not queued last."""
        if not self.queue or self.queue[-1][0] is not stanza:
            return False
        self.watchers.append((self.sent, fn))
        return True

    def unacked(self) -> list[tuple[Element, bool]]:
        """What was never acknowledged, each with whether a watcher owns it (it is kept elsewhere)."""
        watched = {seq for seq, _ in self.watchers}
        return [(stanza, self.acked + i + 1 in watched) for i, (stanza, _) in enumerate(self.queue)]


def parse_h(element: Element) -> int:
    try:
        h = int(element.attrs.get("h", ""))
    except ValueError:
        raise StreamError("undefined-condition", "h must be a number") from None
    if not 0 <= h < H_MODULO:
        raise StreamError("undefined-condition", "h is out of range")
    return h


def too_high_error(e: HandledCountTooHigh) -> StreamError:
    return StreamError("undefined-condition", f"handled-count-too-high: {e}")


def sender_of(stanza: Element) -> JID | None:
    try:
        return parse_jid(stanza.attrs.get("from", ""))
    except JIDError:
        return None


def failed(condition: str, h: int | None = None, text: str | None = None) -> Element:
    el = Element("failed", NS_SM, {"h": str(h % H_MODULO)} if h is not None else None)
    el.add(condition, NS.STANZA_ERRORS)
    if text:
        el.add("text", NS.STANZA_ERRORS, {"xml:lang": "en"}, text)
    return el


def with_delay(stanza: Element, first_sent: float, domain: str) -> Element:
    """A message sent again after resumption, stamped with when it was first sent (XEP-0203)."""
    if stanza.name != "message" or stanza.find("delay", NS_DELAY) is not None:
        return stanza
    copy = stanza.shallow_copy()
    copy.children = list(stanza.children)
    copy.add("delay", NS_DELAY, {"from": domain, "stamp": utc_stamp(datetime.fromtimestamp(first_sent, UTC))}, "Resent")
    return copy


def is_carbon(stanza: Element) -> bool:
    for child in stanza.children:
        if child.__class__ is Element and child.ns == NS_CARBONS:  # type: ignore[union-attr]
            return True
    return False


class StreamManagement:
    """The module: per-session filters and nonzas, resumption, what happens to unacknowledged stanzas."""

    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- enabling -----------------------------------------------------------------
    def enable(self, session: Session, element: Element) -> Element:
        """``<enabled/>``, or ``<failed/>`` for a second request; the caller sends it (as a nonza, or in Bind 2's
        ``<bound/>``)."""
        if PROP in session.props:
            return failed("unexpected-request", text="stream management is already enabled")
        resume = element.attrs.get("resume") in ("true", "1")
        state = AckState(secrets.token_urlsafe(18) if resume else None, self.mod.option(MAX_QUEUE, host=session.host))
        session.props[PROP] = state
        session.inbound.add(self.count_inbound, FILTER_PRIORITY)
        session.outbound.add(self.count_outbound, FILTER_PRIORITY)
        enabled = Element("enabled", NS_SM)
        if resume:
            timeout = self.mod.option(RESUME_TIMEOUT, host=session.host)
            asked = element.attrs.get("max", "")
            if asked.isdigit() and 0 < int(asked) < timeout:
                timeout = float(asked)
            session.detach_timeout = timeout
            enabled.attrs.update({"id": state.resume_id or "", "resume": "true", "max": str(int(timeout))})
        return enabled

    def enable_inline(self, session: Session, element: Element) -> Element | None:
        return self.enable(session, element) if element.name == "enable" else None

    # --- counting -------------------------------------------------------------------
    def count_inbound(self, session: Session, stanza: Element) -> Element:
        session.props[PROP].handled += 1
        return stanza

    def count_outbound(self, session: Session, stanza: Element) -> Element:
        state: AckState = session.props[PROP]
        queue = state.queue
        queue.append((stanza, time.time()))  # as AckState.queued, inlined: once per stanza
        if len(queue) > state.max_queue:
            session.close(StreamError("policy-violation", "too many unacknowledged stanzas"))
        elif session.connection is not None and not state.awaiting_ack and not state.ack_scheduled:
            # One <r/> after whatever this turn of the loop sends, not one per stanza.
            state.ack_scheduled = True
            self._loop().call_soon(self.request_ack, session)
        return stanza

    def request_ack(self, session: Session) -> None:
        state: AckState = session.props[PROP]
        state.ack_scheduled = False
        if state.queue and session.connection is not None and not state.awaiting_ack:
            state.awaiting_ack = True
            session.send_unfiltered(b"<r xmlns='urn:xmpp:sm:3'/>")

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        return self.loop

    # --- nonzas ---------------------------------------------------------------------
    def nonza(self, event: NonzaEvent) -> bool | None:
        element, session = event.element, event.session
        if element.ns != NS_SM:
            return None
        state: AckState | None = session.props.get(PROP)
        name = element.name
        if name == "enable":
            session.send_unfiltered(bytes(self.enable(session, element)))
        elif state is None:
            pass  # <r/> and <a/> before enabling mean nothing; ignored as other servers do
        elif name == "r":
            self.answer(session, state)
        elif name == "a":
            self.acked(session, state, parse_h(element))
        else:
            return None  # unknown: the stream ends with unsupported-stanza-type
        return True

    def answer(self, session: Session, state: AckState) -> None:
        """``<a/>`` for the stanzas handled so far, once what they caused to be written is durable.

        Every stanza counted was routed to the end (the inbox runs in order), and what routing keeps in
        storage itself (offline messages) is written by then; the archive writes in batches after
        delivery, so the answer waits for those batches. It waits in a task of its own, not in the
        inbox: the client's next stanzas are not held up, and each answer covers what was counted
        when its <r/> came, so later answers never say less than earlier ones."""
        if state.answering:
            state.asked_again = True
            return
        pending = self.mod.pending_writes()
        if not pending:
            session.send_unfiltered(f"<a xmlns='{NS_SM}' h='{state.handled % H_MODULO}'/>".encode())
            return
        state.answering = True
        self.mod.spawn(self.answer_when_durable(session, state, state.handled, pending))

    async def answer_when_durable(self, session: Session, state: AckState, h: int, pending: list[Awaitable[None]]) -> None:
        try:
            while True:
                for waiting in pending:
                    await waiting
                session.send_unfiltered(f"<a xmlns='{NS_SM}' h='{h % H_MODULO}'/>".encode())
                if not state.asked_again:
                    return
                state.asked_again = False
                h, pending = state.handled, self.mod.pending_writes()
        finally:
            state.answering = False

    def acked(self, session: Session, state: AckState, h: int) -> None:
        try:
            due = state.ack(h)
        except HandledCountTooHigh as e:
            raise too_high_error(e) from None
        state.awaiting_ack = False
        for fn in due:
            fn()
        if state.queue:
            self.request_ack(session)

    # --- before binding ---------------------------------------------------------------
    async def enable_before_bind(self, pre: PreBind) -> tuple[Element | None, Session | None]:
        return failed("unexpected-request", text="bind a resource first"), None

    async def resume(self, pre: PreBind) -> tuple[Element | None, Session | None]:
        previd = pre.element.attrs.get("previd", "")
        session = self.find(JID(pre.user, pre.host), previd)
        if session is None:
            return failed("item-not-found", text="no session to resume with this id"), None
        for waiting in self.mod.pending_writes():
            await waiting  # <resumed h='…'/> acknowledges too: only what is durable
        if session.closed:
            return failed("item-not-found", text="the session ended meanwhile"), None
        state: AckState = session.props[PROP]
        try:
            h = parse_h(pre.element)
            due = state.ack(h)
        except (StreamError, HandledCountTooHigh) as e:
            # The client's count cannot be trusted: this session cannot be resumed, and it ends.
            session.close()
            return failed("undefined-condition", text=str(e)), None
        for fn in due:
            fn()
        # Written here, before the core moves the session to this connection, so that nothing routed
        # to the session meanwhile can overtake <resumed/> or the stanzas sent again. Inline in SASL2,
        # <resumed/> goes in <success/> and the rest right after it, which the core writes at once.
        conn = pre.connection
        resumed = Element("resumed", NS_SM, {"previd": previd, "h": str(state.handled % H_MODULO)})
        out = pre.then if pre.inline else None
        write = out.append if out is not None else conn.write
        if out is None:
            write(bytes(resumed))
        domain = session.host
        for stanza, first_sent in state.queue:
            write(with_delay(stanza, first_sent, domain).serialize(conn.stanza_ns).encode())
        state.awaiting_ack = False
        if state.queue:
            state.awaiting_ack = True
            write(b"<r xmlns='urn:xmpp:sm:3'/>")
        self.mod.log.info("event=sm-resumed session=%s resent=%d", session, len(state.queue))
        return (resumed if pre.inline else None), session

    def find(self, bare: JID, resume_id: str) -> Session | None:
        if not resume_id:
            return None
        for session in self.mod.sessions.sessions_of(bare):
            state = session.props.get(PROP)
            if state is not None and state.resume_id == resume_id and not session.closed:
                return session
        return None

    # --- the end of a session -------------------------------------------------------------
    async def session_closed(self, event: SessionEvent) -> None:
        """What the client never acknowledged: messages to the account again, requests answered."""
        session = event.session
        state: AckState | None = session.props.get(PROP)
        if state is None:
            return
        unacked = state.unacked()
        state.queue.clear()
        state.watchers.clear()
        router = self.mod.router
        rerouted = 0
        for stanza, kept_elsewhere in unacked:
            kind, stype = stanza.name, stanza.attrs.get("type", "normal")
            if kind == "message" and stype in ("chat", "normal") and not kept_elsewhere and not is_carbon(stanza):
                rerouted += 1
                # Delivered again, not received again: it passed the account's inbound hooks (the archive,
                # carbons, blocking) when it first came, so it keeps the stanza-id it was archived under and
                # is not archived a second time, and a client that has it already knows the copy by that id.
                again = StanzaEvent(stanza.shallow_copy(), sender_of(stanza) or session.bare, session.bare)
                await router.deliver_to_bare(again)
            elif kind == "iq" and stype in ("get", "set"):
                sender = sender_of(stanza)
                if sender is not None:
                    reply = error_reply(stanza, StanzaError("recipient-unavailable"))
                    await router.route(reply, session.jid, sender)
        if rerouted:
            self.mod.log.info("event=sm-unacked-rerouted session=%s messages=%d", session, rerouted)

    def session_detached(self, event: SessionEvent) -> None:
        if PROP in event.session.props:
            self.mod.log.info("event=sm-detached session=%s timeout=%s", event.session, event.session.detach_timeout)

    def enabled(self, session: Session) -> bool:
        """For other modules: whether the client of this session acknowledges what it receives."""
        return PROP in session.props

    def unacknowledged(self, session: Session) -> list[Element]:
        """For other modules: what this session's client has not acknowledged yet (push wakes it for these)."""
        state: AckState | None = session.props.get(PROP)
        return [stanza for stanza, _ in state.queue] if state is not None else []

    def watch(self, session: Session, stanza: Element, fn: Callable[[], Any]) -> bool:
        """For other modules: call ``fn`` once the client acknowledged ``stanza``, just sent to it.

        False when the session has no stream management (or the stanza was held back): then the
        caller must treat the stanza as delivered as soon as it was written. While watched, the
        stanza is the caller's: if the session ends unacknowledged it is not routed again.
        """
        state: AckState | None = session.props.get(PROP)
        return state is not None and state.watch(stanza, fn)


def setup(mod: ModuleAPI) -> None:
    sm = StreamManagement(mod)
    mod.provide("smacks", sm)
    mod.add_stream_feature(lambda authenticated: Element("sm", NS_SM) if authenticated else None)
    mod.add_pre_bind(NS_SM, "resume", sm.resume, sasl2_feature="sm")  # inline in SASL2 too (XEP-0198 §6 with XEP-0388)
    mod.add_pre_bind(NS_SM, "enable", sm.enable_before_bind)
    mod.add_bind_inline(NS_SM, sm.enable_inline)
    mod.hook(E.STREAM_NONZA, sm.nonza)
    mod.hook(E.SESSION_CLOSED, sm.session_closed)
    mod.hook(E.SESSION_DETACHED, sm.session_detached)
