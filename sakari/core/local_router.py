"""The in-process router: the registry in dictionaries and the delivery rules of RFC 6121 §8."""

from __future__ import annotations

import asyncio
import itertools
import logging
from types import CoroutineType

from sakari.core import events as E
from sakari.core.events import Events, StanzaEvent
from sakari.core.hosts import Host, HostKind, Hosts
from sakari.core.router import REQUEST_TIMEOUT, ROUTE_REMOTE, Resource
from sakari.core.session import Session
from sakari.jid import JID, JIDError, parse_jid
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, StreamError, error_reply

log = logging.getLogger("sakari.router")

_PRE_EVENTS = {(k, t): E.pre_event(k, t) for k in ("message", "presence") for t in E.TARGETS}
_STANZA_EVENTS = {(k, t): E.stanza_event(k, t) for k in ("message", "presence") for t in E.TARGETS}
_USERS = HostKind.USERS


class LocalRouter:
    def __init__(self, hosts: Hosts, events: Events) -> None:
        self.hosts = hosts
        self.events = events
        events.declare(ROUTE_REMOTE)
        self._hooked = events.hooked
        self._domains = hosts.by_domain
        self._users: dict[JID, dict[str, Resource]] = {}
        self._entries: dict[Session, Resource] = {}  # also sessions replaced by a newer one, until they close
        self._pending: dict[str, tuple[JID, asyncio.Future[Element]]] = {}
        self._ids = itertools.count(1)

    # --- the registry -----------------------------------------------------------
    def bind(self, session: Session) -> Session | None:
        entry = Resource(session.jid, session)
        self._entries[session] = entry
        resources = self._users.setdefault(session.bare, {})
        old = resources.get(session.jid.resource)
        resources[session.jid.resource] = entry
        return old.session if old is not None and old.session is not session else None

    def unbind(self, session: Session) -> bool:
        entry = self._entries.get(session)
        resources = self._users.get(session.bare)
        if entry is None or not resources or resources.get(session.jid.resource) is not entry:
            return False
        del resources[session.jid.resource]
        if not resources:
            del self._users[session.bare]
        return True

    def forget(self, session: Session) -> None:
        """Drop a closed session's last state (after the modules that read it are done)."""
        self._entries.pop(session, None)

    def resources(self, bare: JID) -> list[Resource]:
        resources = self._users.get(bare)
        return list(resources.values()) if resources else []

    def resource(self, full: JID) -> Resource | None:
        resources = self._users.get(full.bare)
        return resources.get(full.resource) if resources else None

    def resource_of(self, session: Session) -> Resource:
        return self._entries.get(session) or Resource(session.jid, session)

    def is_online(self, bare: JID) -> bool:
        return bare in self._users

    # --- presence state -----------------------------------------------------------
    def set_presence(self, session: Session, presence: Element | None, priority: int = 0) -> None:
        entry = self._entries.get(session)
        if entry is not None:
            entry.available = presence is not None
            entry.presence = presence
            entry.priority = priority if presence is not None else 0

    def mark(self, session: Session, flag: str) -> None:
        entry = self._entries.get(session)
        if entry is not None:
            entry.flags.add(flag)

    def unmark(self, session: Session, flag: str) -> None:
        entry = self._entries.get(session)
        if entry is not None:
            entry.flags.discard(flag)

    # --- entry points -------------------------------------------------------------
    async def from_session(self, session: Session, stanza: Element) -> None:
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
        stanza.attrs["from"] = str(from_jid)
        stanza.attrs["to"] = str(to_jid)
        event = StanzaEvent(stanza, from_jid, to_jid, origin)
        await self._dispatch(event, self._target(to_jid, from_jid.bare, stanza.name))

    async def from_external(self, stanza: Element, domain: str, subdomains: bool = False, outbound: bool = False) -> None:
        try:
            from_jid = parse_jid(stanza.attrs.get("from", ""))
            to_jid = parse_jid(stanza.attrs.get("to", ""))
        except JIDError:
            raise StreamError("improper-addressing", "a stanza between servers needs valid 'from' and 'to'") from None
        if from_jid.domain != domain and not (subdomains and from_jid.domain.endswith("." + domain)):
            raise StreamError("invalid-from", f"{from_jid.domain} is not {domain}")
        if not outbound and not self.hosts.is_local(to_jid.domain):
            raise StreamError("host-unknown", f"this server does not serve {to_jid.domain}")
        await self._dispatch(StanzaEvent(stanza, from_jid, to_jid), self._target(to_jid, from_jid.bare, stanza.name))

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
            host = self._domains.get(to.domain) or self.hosts.get(to.domain)
            if host is None:
                if await self.events.fire(ROUTE_REMOTE, event) is None:
                    self.reply_error(event, StanzaError("remote-server-not-found"))
                return
            if host.kind is not _USERS:
                await self._to_service(host, event)
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

    async def _to_service(self, host: Host, event: StanzaEvent) -> None:
        """A local service takes what is sent to its domain; a component's stream carries it away."""
        stanza = event.stanza
        if host.kind is HostKind.COMPONENT:
            if host.outlet is None:
                self.reply_error(event, StanzaError("service-unavailable", f"{host.domain} is not connected"))
            else:
                host.outlet(stanza)
            return
        kind, stype = stanza.name, stanza.attrs.get("type")
        if kind == "iq" and stype in ("result", "error") and self._answer(event):
            return
        assert host.handler is not None
        if await host.handler(event) is not None:
            return
        if kind == "iq" and stype in ("get", "set"):
            # What the service leaves to the server for every service alike (disco#info of its domain, ping…).
            await self._iq_request(event, "service")
        elif kind == "message" and stype != "error":
            self.reply_error(event, StanzaError("service-unavailable"))

    # --- default delivery (RFC 6121 §8.5) -------------------------------------------
    async def _message_to_full(self, event: StanzaEvent) -> None:
        resources = self._users.get(event.to_jid.bare)
        entry = resources.get(event.to_jid.resource) if resources else None
        if entry is not None and entry.session is not None:
            entry.session.send(event.stanza)
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
        chosen: list[Resource] = []
        if resources:
            candidates = [r for r in resources.values() if r.available and r.priority >= 0]
            if mtype == "headline" or not candidates:
                chosen = candidates
            else:
                top = max(r.priority for r in candidates)
                chosen = [r for r in candidates if r.priority == top]
        if not chosen:
            if mtype == "headline":
                return
            if await self.events.fire(E.MESSAGE_OFFLINE, event) is None:
                self.reply_error(event, StanzaError("service-unavailable"))
            return
        self.send_to(chosen, stanza)

    def send_to(self, resources: list[Resource], stanza: Element) -> None:
        if len(resources) == 1:
            session = resources[0].session
            if session is not None:
                session.send(stanza)
            return
        data = stanza.serialize().encode()
        for r in resources:
            if r.session is not None:
                r.session.send(stanza, data)

    def _default_presence(self, event: StanzaEvent, target: str) -> None:
        ptype = event.stanza.attrs.get("type")
        if target == "full":
            entry = self.resource(event.to_jid)
            if entry is not None:
                self.send_to([entry], event.stanza)
        elif target == "bare" and ptype in (None, "unavailable"):
            self.send_to([r for r in self.resources(event.to_jid) if r.available], event.stanza)

    # --- iq -------------------------------------------------------------------------
    async def _dispatch_iq(self, event: StanzaEvent, target: str) -> None:
        stanza = event.stanza
        itype = stanza.attrs.get("type")
        if itype in ("get", "set"):
            if target == "full":
                entry = self.resource(event.to_jid)
                if entry is None:
                    self.reply_error(event, StanzaError("service-unavailable"))
                else:
                    self.send_to([entry], stanza)
                return
            await self._iq_request(event, target)
        elif itype in ("result", "error"):
            if target == "full":
                entry = self.resource(event.to_jid)
                if entry is not None:
                    self.send_to([entry], stanza)
                return
            self._answer(event)
        else:
            self.reply_error(event, StanzaError("bad-request", "unknown iq type"))

    async def _iq_request(self, event: StanzaEvent, target: str) -> None:
        stanza = event.stanza
        payload = [c for c in stanza.children if c.__class__ is Element]
        if len(payload) != 1:
            self.reply_error(event, StanzaError("bad-request", "an iq get or set carries exactly one child"))
            return
        child = payload[0]
        name = E.iq_event(stanza.attrs["type"], target, child.ns, child.name)  # type: ignore[union-attr]
        result = await self.events.fire(name, event)
        if result is None:
            self.reply_error(event, StanzaError("service-unavailable"))
        elif result is True or result.__class__ is Element:
            self.reply_result(event, result)

    def _answer(self, event: StanzaEvent) -> bool:
        """An iq result or error for one of our requests: only from the address it was sent to."""
        pending = self._pending.get(event.stanza.attrs.get("id", ""))
        if pending is None or pending[0] != event.from_jid:
            return False
        del self._pending[event.stanza.attrs["id"]]
        if not pending[1].done():
            pending[1].set_result(event.stanza)
        return True

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
        if event.from_jid.resource:
            entry = self.resource(event.from_jid)
            if entry is not None:
                self.send_to([entry], reply)
                return
        host = self.hosts.get(event.from_jid.domain)
        if host is None or host.kind is not _USERS or reply.name == "iq":
            # A remote address, a service or component, or an account's bare JID that the server asked for
            # (request() on a user's behalf, as for XEP-0356 privileged iqs): the answer travels like any stanza.
            target = self._target(event.from_jid, event.to_jid.bare, reply.name)
            asyncio.get_running_loop().create_task(self._dispatch(StanzaEvent(reply, event.to_jid, event.from_jid), target))

    async def request(self, iq: Element, to: JID, from_jid: JID | None = None, timeout: float = REQUEST_TIMEOUT) -> Element:
        iq_id = f"s{next(self._ids)}"
        iq.attrs["id"] = iq_id
        sender = from_jid or JID("", to.domain if self.hosts.is_local(to.domain) else self.hosts.user_domains()[0])
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = (to, future)
        try:
            await self.route(iq, sender, to)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(iq_id, None)
