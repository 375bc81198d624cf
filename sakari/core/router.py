"""Who is online where, and the delivery rules of RFC 6121 §8.

The router is the seam for scale-out: this LocalRouter keeps sessions in
process dictionaries; a clustered router can keep the same registry in a
shared store and forward stanzas between nodes without modules noticing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from types import CoroutineType

from sakari.core import events as E
from sakari.core.events import Events, StanzaEvent
from sakari.jid import JID, JIDError, parse_jid
from sakari.core.session import Session
from sakari.xml.errors import StanzaError, error_reply
from sakari.xml import ns as NS
from sakari.xml.element import Element

log = logging.getLogger("sakari.router")

ROUTE_REMOTE = "route/remote"  # StanzaEvent for a domain that is not ours (federation hooks it)

_PRE_EVENTS = {(k, t): E.pre_event(k, t) for k in ("message", "presence") for t in E.TARGETS}
_STANZA_EVENTS = {(k, t): E.stanza_event(k, t) for k in ("message", "presence") for t in E.TARGETS}


class LocalRouter:
    def __init__(self, hosts: set[str], events: Events) -> None:
        self.hosts = hosts
        self.events = events
        events.declare(ROUTE_REMOTE)
        self._hooked = events.hooked
        self._users: dict[JID, dict[str, Session]] = {}
        self._pending: dict[str, asyncio.Future[Element]] = {}
        self._ids = itertools.count(1)

    # --- the session registry -------------------------------------------------
    def bind(self, session: Session) -> Session | None:
        """Register a bound session; returns the older session it replaces, if any."""
        resources = self._users.setdefault(session.bare, {})
        old = resources.get(session.jid.resource)
        resources[session.jid.resource] = session
        return old if old is not session else None

    def unbind(self, session: Session) -> bool:
        resources = self._users.get(session.bare)
        if not resources or resources.get(session.jid.resource) is not session:
            return False
        del resources[session.jid.resource]
        if not resources:
            del self._users[session.bare]
        return True

    def sessions_of(self, bare: JID) -> list[Session]:
        resources = self._users.get(bare)
        return list(resources.values()) if resources else []

    def session(self, full: JID) -> Session | None:
        resources = self._users.get(full.bare)
        return resources.get(full.resource) if resources else None

    def is_online(self, bare: JID) -> bool:
        return bare in self._users

    # --- entry points ---------------------------------------------------------
    async def from_session(self, session: Session, stanza: Element) -> None:
        """A stanza sent by a local client: stamp, check, let modules see it, route."""
        stanza.attrs["from"] = session.jid_text
        to_text = stanza.attrs.get("to")
        if to_text is None:
            to, target = session.bare, "self"
        else:
            try:
                to = parse_jid(to_text)
            except JIDError as e:
                self.reply_error(StanzaEvent(stanza, session.jid, session.bare, session), e)
                return
            target = self._target(to, session.bare, stanza.name)
        event = StanzaEvent(stanza, session.jid, to, session)
        kind = stanza.name
        if kind != "iq":
            name = _PRE_EVENTS[kind, target]
            if name in self._hooked and await self.events.fire(name, event) is not None:
                return
        await self._dispatch(event, target)

    async def route(self, stanza: Element, from_jid: JID, to_jid: JID, origin: Session | None = None) -> None:
        """Route a stanza the server (or a module acting for a user) sends."""
        stanza.attrs["from"] = str(from_jid)
        stanza.attrs["to"] = str(to_jid)
        event = StanzaEvent(stanza, from_jid, to_jid, origin)
        await self._dispatch(event, self._target(to_jid, from_jid.bare, stanza.name))

    def _target(self, to: JID, sender_bare: JID, kind: str) -> str:
        if to.resource:
            return "full"
        if not to.local:
            return "host"
        if to == sender_bare and kind == "iq":
            return "self"
        return "bare"

    async def _dispatch(self, event: StanzaEvent, target: str) -> None:
        try:
            to = event.to_jid
            if to.domain not in self.hosts:
                if await self.events.fire(ROUTE_REMOTE, event) is None:
                    self.reply_error(event, StanzaError("remote-server-not-found"))
                return
            hooked = self._hooked
            if to.local and E.INBOUND_USER in hooked:
                verdict = self.events.dispatch(E.INBOUND_USER, event)
                if verdict.__class__ is CoroutineType:
                    verdict = await verdict
                if verdict is not None:
                    return
            kind = event.stanza.name
            if kind == "iq":
                await self._dispatch_iq(event, target)
                return
            name = _STANZA_EVENTS[kind, target]
            if name in hooked and await self.events.fire(name, event) is not None:
                return
            if kind != "message":
                self._default_presence(event, target)
            elif target == "full":
                await self._message_to_full(event)
            elif target != "host":
                await self.deliver_to_bare(event)
        except StanzaError as e:
            self.reply_error(event, e)

    # --- default delivery (RFC 6121 §8.5) -------------------------------------
    async def _message_to_full(self, event: StanzaEvent) -> None:
        session = self.session(event.to_jid)
        if session is not None:
            session.send(event.stanza)
            return
        mtype = event.stanza.attrs.get("type", "normal")
        if mtype == "groupchat":
            self.reply_error(event, StanzaError("service-unavailable"))
        elif mtype not in ("headline", "error"):
            await self.deliver_to_bare(event)

    async def deliver_to_bare(self, event: StanzaEvent) -> None:
        """RFC 6121 §8.5.2.1.1: a message to a bare JID goes to the top non-negative-priority resources."""
        stanza = event.stanza
        mtype = stanza.attrs.get("type", "normal")
        if mtype == "error":
            return
        if mtype == "groupchat":
            self.reply_error(event, StanzaError("service-unavailable"))
            return
        resources = self._users.get(event.to_jid.bare)
        chosen: list[Session] = []
        if resources:
            candidates = [s for s in resources.values() if s.available and s.priority >= 0]
            if mtype == "headline" or not candidates:
                chosen = candidates
            else:
                top = max(s.priority for s in candidates)
                chosen = [s for s in candidates if s.priority == top]
        if not chosen:
            if mtype == "headline":
                return
            if await self.events.fire(E.MESSAGE_OFFLINE, event) is None:
                self.reply_error(event, StanzaError("service-unavailable"))
            return
        self.send_to_sessions(chosen, stanza)

    def send_to_sessions(self, sessions: list[Session], stanza: Element) -> None:
        if len(sessions) == 1:
            sessions[0].send(stanza)
            return
        data = stanza.serialize().encode()
        for s in sessions:
            s.send_serialized(data)

    def _default_presence(self, event: StanzaEvent, target: str) -> None:
        ptype = event.stanza.attrs.get("type")
        if target == "full":
            session = self.session(event.to_jid)
            if session is not None:
                session.send(event.stanza)
        elif target == "bare" and ptype in (None, "unavailable"):
            self.send_to_sessions(
                [s for s in self.sessions_of(event.to_jid) if s.available], event.stanza
            )

    # --- iq -------------------------------------------------------------------
    async def _dispatch_iq(self, event: StanzaEvent, target: str) -> None:
        stanza = event.stanza
        itype = stanza.attrs.get("type")
        if itype in ("get", "set"):
            if target == "full":
                session = self.session(event.to_jid)
                if session is None:
                    self.reply_error(event, StanzaError("service-unavailable"))
                else:
                    session.send(stanza)
                return
            payload = [c for c in stanza.children if c.__class__ is Element]
            if len(payload) != 1:
                self.reply_error(event, StanzaError("bad-request", "an iq get or set carries exactly one child"))
                return
            child = payload[0]
            name = E.iq_event(itype, target, child.ns, child.name)  # type: ignore[union-attr]
            result = await self.events.fire(name, event)
            if result is None:
                self.reply_error(event, StanzaError("service-unavailable"))
            elif result is True or result.__class__ is Element:
                self.reply_result(event, result)
        elif itype in ("result", "error"):
            if target == "full":
                session = self.session(event.to_jid)
                if session is not None:
                    session.send(stanza)
                return
            future = self._pending.pop(stanza.attrs.get("id", ""), None)
            if future is not None and not future.done():
                future.set_result(stanza)
        else:
            self.reply_error(event, StanzaError("bad-request", "unknown iq type"))

    def reply_result(self, event: StanzaEvent, payload: Element | bool | None = None) -> None:
        """Answer an iq get/set with a result; ``payload`` may be an Element to carry."""
        stanza = event.stanza
        attrs = {"type": "result", "to": str(event.from_jid)}
        if event.to_jid != event.from_jid.bare or event.origin is None:
            attrs["from"] = str(event.to_jid)
        if "id" in stanza.attrs:
            attrs["id"] = stanza.attrs["id"]
        reply = Element("iq", NS.CLIENT, attrs)
        if payload.__class__ is Element:
            reply.children.append(payload)  # type: ignore[arg-type]
        self._send_reply(event, reply)

    def reply_error(self, event: StanzaEvent, error: StanzaError) -> None:
        stanza = event.stanza
        if stanza.attrs.get("type") in ("error", "result"):
            return  # RFC 6120 §8.3.1: never answer an error with an error
        reply = error_reply(stanza, error)
        reply.attrs["to"] = str(event.from_jid)
        reply.attrs["from"] = str(event.to_jid)
        self._send_reply(event, reply)

    def _send_reply(self, event: StanzaEvent, reply: Element) -> None:
        origin = event.origin
        if origin is not None and origin.jid == event.from_jid:
            origin.send(reply)
            return
        session = self.session(event.from_jid) if event.from_jid.resource else None
        if session is not None:
            session.send(reply)
        elif event.from_jid.domain not in self.hosts:
            asyncio.get_running_loop().create_task(
                self.events.fire(ROUTE_REMOTE, StanzaEvent(reply, event.to_jid, event.from_jid))
            )

    async def request(self, session: Session, iq: Element, timeout: float) -> Element:
        """Send an iq from the server to a session and wait for its answer (e.g. a ping)."""
        iq_id = f"s{next(self._ids)}"
        iq.attrs["id"] = iq_id
        iq.attrs["to"] = str(session.jid)
        iq.attrs["from"] = session.host
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = future
        session.send(iq)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(iq_id, None)
