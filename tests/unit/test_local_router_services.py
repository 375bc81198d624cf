"""LocalRouter beyond local accounts: iq requests to any address, stanzas from other servers and components,
local services, components and remote domains. Sans-IO, with fake connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sakari.core import events as E
from sakari.core.events import Events, StanzaEvent
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.router import ROUTE_REMOTE
from sakari.core.session import Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import JID, parse_jid
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamParser

HOST = "example.org"
MUC = "muc.example.org"
GATEWAY = "gateway.example.org"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
WAIT = 5.0
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def stanza(xml: str) -> Element:
    parser = StreamParser()
    parser.feed(HEADER)
    (el,) = parser.feed(xml.encode())
    return el  # type: ignore[return-value]


def condition(reply: Element) -> str:
    assert reply.attrs.get("type") == "error", reply
    error = reply.find("error")
    assert error is not None, reply
    (cond,) = [c.name for c in error.elements() if c.ns == STANZAS and c.name != "text"]
    return cond


class Conn:
    stanza_ns = "jabber:client"

    def __init__(self) -> None:
        self.received: list[Element] = []
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        parser = StreamParser()
        parser.feed(HEADER)
        self.received.extend(parser.feed(data))  # type: ignore[arg-type]
        self.wrote.set()

    async def writable(self) -> bool:
        return True

    def close_stream(self, error: StreamError | None = None) -> None:
        pass

    async def wait_for(self, count: int) -> list[Element]:
        async def until() -> None:
            while len(self.received) < count:
                self.wrote.clear()
                await self.wrote.wait()

        await asyncio.wait_for(until(), WAIT)
        return self.received


class World:
    def __init__(self) -> None:
        self.events = Events()
        self.hosts = Hosts()
        self.hosts.add_users(HOST)
        self.router = LocalRouter(self.hosts, self.events)
        self.sessions = SessionManager(self.router, self.events, Tasks())

    def online(self, jid: str) -> tuple[Session, Conn]:
        conn = Conn()
        session = Session(parse_jid(jid), self.sessions, conn)
        assert self.router.bind(session) is None
        self.router.set_presence(session, Element("presence"), 0)
        return session, conn


@pytest.fixture
def world() -> World:
    return World()


def ping() -> Element:
    iq = Element("iq", attrs={"type": "get"})
    iq.add("ping", "urn:xmpp:ping")
    return iq


# --- router.request ----------------------------------------------------------------------


async def test_request_to_a_local_session_returns_its_result(world: World) -> None:
    romeo, conn = world.online("romeo@example.org/phone")
    task = asyncio.ensure_future(world.router.request(ping(), romeo.jid, timeout=WAIT))
    (asked,) = await conn.wait_for(1)
    assert asked.attrs["type"] == "get" and asked.attrs["from"] == HOST and asked.find("ping", "urn:xmpp:ping")
    await world.router.from_session(romeo, stanza(f"<iq type='result' id='{asked.attrs['id']}' to='{HOST}'/>"))
    answer = await asyncio.wait_for(task, WAIT)
    assert answer.attrs["type"] == "result" and answer.attrs["from"] == "romeo@example.org/phone"


async def test_request_answered_with_an_error_returns_the_error_stanza(world: World) -> None:
    romeo, conn = world.online("romeo@example.org/phone")
    task = asyncio.ensure_future(world.router.request(ping(), romeo.jid, timeout=WAIT))
    (asked,) = await conn.wait_for(1)
    await world.router.from_session(
        romeo,
        stanza(
            f"<iq type='error' id='{asked.attrs['id']}' to='{HOST}'><error type='cancel'>"
            f"<feature-not-implemented xmlns='{STANZAS}'/></error></iq>"
        ),
    )
    answer = await asyncio.wait_for(task, WAIT)
    assert condition(answer) == "feature-not-implemented"


async def test_request_ignores_an_answer_from_another_address_with_the_same_id(world: World) -> None:
    romeo, romeo_conn = world.online("romeo@example.org/phone")
    mallory, _ = world.online("mallory@example.org/evil")
    task = asyncio.ensure_future(world.router.request(ping(), romeo.jid, timeout=WAIT))
    (asked,) = await romeo_conn.wait_for(1)
    iq_id = asked.attrs["id"]
    await world.router.from_session(mallory, stanza(f"<iq type='error' id='{iq_id}' to='{HOST}'/>"))
    assert not task.done()
    await world.router.from_session(romeo, stanza(f"<iq type='result' id='{iq_id}' to='{HOST}'><mine xmlns='urn:x'/></iq>"))
    answer = await asyncio.wait_for(task, WAIT)
    assert answer.attrs["type"] == "result" and answer.find("mine", "urn:x") is not None


async def test_request_with_only_a_spoofed_answer_times_out(world: World) -> None:
    romeo, romeo_conn = world.online("romeo@example.org/phone")
    mallory, _ = world.online("mallory@example.org/evil")
    task = asyncio.ensure_future(world.router.request(ping(), romeo.jid, timeout=0.05))
    (asked,) = await romeo_conn.wait_for(1)
    await world.router.from_session(mallory, stanza(f"<iq type='result' id='{asked.attrs['id']}' to='{HOST}'/>"))
    with pytest.raises(TimeoutError):
        await task
    assert world.router._pending == {}  # nothing is left waiting


async def test_request_to_an_address_that_never_answers_raises_timeout_error(world: World) -> None:
    world.online("romeo@example.org/phone")
    with pytest.raises(TimeoutError):
        await world.router.request(ping(), parse_jid("romeo@example.org/phone"), timeout=0.01)


async def test_request_from_a_given_address_is_sent_from_it(world: World) -> None:
    romeo, conn = world.online("romeo@example.org/phone")
    task = asyncio.ensure_future(
        world.router.request(ping(), romeo.jid, from_jid=parse_jid("example.org"), timeout=WAIT)
    )
    (asked,) = await conn.wait_for(1)
    assert asked.attrs["from"] == "example.org"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.router._pending == {}  # a cancelled request leaves nothing waiting


# --- from_external ------------------------------------------------------------------------


async def test_from_external_delivers_a_stanza_whose_from_is_of_the_authenticated_domain(world: World) -> None:
    _, conn = world.online("juliet@example.org/balcony")
    await world.router.from_external(
        stanza("<message from='romeo@remote.example/a' to='juliet@example.org/balcony' id='x'><body>hi</body></message>"),
        "remote.example",
    )
    (message,) = conn.received
    assert message.attrs["from"] == "romeo@remote.example/a" and message.child_text("body") == "hi"


async def test_from_external_with_a_from_of_another_domain_is_invalid_from(world: World) -> None:
    _, conn = world.online("juliet@example.org/balcony")
    with pytest.raises(StreamError) as caught:
        await world.router.from_external(
            stanza("<message from='nurse@elsewhere.example' to='juliet@example.org/balcony'/>"), "remote.example"
        )
    assert caught.value.condition == "invalid-from"
    assert conn.received == []


async def test_from_external_accepts_subdomains_only_when_asked(world: World) -> None:
    _, conn = world.online("juliet@example.org/balcony")
    xml = "<message from='room@rooms.component.example/nick' to='juliet@example.org/balcony' id='s'/>"
    with pytest.raises(StreamError) as caught:
        await world.router.from_external(stanza(xml), "component.example")
    assert caught.value.condition == "invalid-from"
    await world.router.from_external(stanza(xml), "component.example", subdomains=True)
    assert [m.attrs["id"] for m in conn.received] == ["s"]
    # A domain merely ending in the same letters is not a subdomain.
    with pytest.raises(StreamError):
        await world.router.from_external(
            stanza("<message from='a@evilcomponent.example' to='juliet@example.org/balcony'/>"),
            "component.example",
            subdomains=True,
        )


@pytest.mark.parametrize(
    "xml, expected",
    [
        ("<message to='juliet@example.org'/>", "improper-addressing"),
        ("<message from='a@remote.example' to='@@'/>", "improper-addressing"),
        ("<message from='a@remote.example' to='juliet@not-ours.example'/>", "host-unknown"),
    ],
    ids=["no-from", "bad-to", "to-a-domain-not-served"],
)
async def test_from_external_refuses_bad_addressing(world: World, xml: str, expected: str) -> None:
    with pytest.raises(StreamError) as caught:
        await world.router.from_external(stanza(xml), "remote.example")
    assert caught.value.condition == expected


# --- local services -------------------------------------------------------------------------


class Service:
    """A local service's handler: keeps every event; answers with ``answer``."""

    def __init__(self, answer: Any = None) -> None:
        self.events: list[StanzaEvent] = []
        self.answer = answer

    async def __call__(self, event: StanzaEvent) -> Any:
        self.events.append(event)
        return self.answer


async def test_a_service_receives_stanzas_to_its_domain_and_to_addresses_at_it(world: World) -> None:
    service = Service(answer=True)
    world.hosts.add_service(MUC, service)
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza(f"<presence to='room@{MUC}/juliet'/>"))
    await world.router.from_session(juliet, stanza(f"<message to='{MUC}' id='m'><body>x</body></message>"))
    assert [(str(e.to_jid), e.stanza.name) for e in service.events] == [(f"room@{MUC}/juliet", "presence"), (MUC, "message")]
    assert all(e.from_jid == juliet.jid and e.origin is juliet for e in service.events)
    assert conn.received == []


async def test_a_message_a_service_leaves_unhandled_is_service_unavailable(world: World) -> None:
    world.hosts.add_service(MUC, Service(answer=None))
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza(f"<message to='room@{MUC}' id='m'><body>x</body></message>"))
    (reply,) = await conn.wait_for(1)
    assert condition(reply) == "service-unavailable"
    assert reply.attrs["from"] == f"room@{MUC}" and reply.attrs["id"] == "m"


async def test_an_iq_get_a_service_leaves_unanswered_fires_the_service_iq_event(world: World) -> None:
    world.hosts.add_service(MUC, Service(answer=None))
    asked: list[StanzaEvent] = []

    def info(event: StanzaEvent) -> Element:
        asked.append(event)
        return Element("query", "http://jabber.org/protocol/disco#info")

    world.events.hook(E.iq_event("get", "service", "http://jabber.org/protocol/disco#info", "query"), info)
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(
        juliet, stanza(f"<iq type='get' id='d' to='{MUC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    )
    (reply,) = await conn.wait_for(1)
    assert [str(e.to_jid) for e in asked] == [MUC]
    assert reply.attrs["type"] == "result" and reply.attrs["id"] == "d" and reply.attrs["from"] == MUC
    assert reply.find("query", "http://jabber.org/protocol/disco#info") is not None


async def test_an_iq_get_neither_the_service_nor_a_module_answers_is_service_unavailable(world: World) -> None:
    world.hosts.add_service(MUC, Service(answer=None))
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza(f"<iq type='get' id='p' to='{MUC}'><ping xmlns='urn:xmpp:ping'/></iq>"))
    (reply,) = await conn.wait_for(1)
    assert condition(reply) == "service-unavailable" and reply.attrs["id"] == "p"


async def test_an_iq_the_service_answers_itself_is_not_also_answered_by_the_server(world: World) -> None:
    world.hosts.add_service(MUC, Service(answer=True))
    hooked: list[StanzaEvent] = []
    world.events.hook(E.iq_event("get", "service", "urn:xmpp:ping", "ping"), lambda ev: hooked.append(ev) or True)
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza(f"<iq type='get' id='p' to='{MUC}'><ping xmlns='urn:xmpp:ping'/></iq>"))
    assert hooked == [] and conn.received == []


async def test_a_request_to_a_service_is_answered_through_the_router(world: World) -> None:
    router = world.router

    async def service(event: StanzaEvent) -> Any:
        iq = event.stanza
        if iq.attrs.get("type") == "get":
            reply = Element("iq", attrs={"type": "result", "id": iq.attrs["id"]})
            await router.route(reply, event.to_jid, event.from_jid)
            return True
        return None

    world.hosts.add_service(MUC, service)
    answer = await asyncio.wait_for(router.request(ping(), JID("", MUC), timeout=WAIT), WAIT)
    assert answer.attrs["type"] == "result"


# --- components -------------------------------------------------------------------------------


async def test_a_stanza_for_a_component_that_is_not_connected_is_service_unavailable(world: World) -> None:
    world.hosts.add_component(GATEWAY)
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza(f"<message to='user@{GATEWAY}' id='g'><body>x</body></message>"))
    (reply,) = await conn.wait_for(1)
    assert condition(reply) == "service-unavailable" and reply.attrs["id"] == "g"


async def test_a_stanza_for_a_connected_component_or_its_subdomain_is_handed_to_its_stream(world: World) -> None:
    host = world.hosts.add_component(GATEWAY)
    out: list[Element] = []
    host.outlet = out.append
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza(f"<message to='user@{GATEWAY}' id='a'/>"))
    await world.router.from_session(juliet, stanza(f"<iq type='get' to='sub.{GATEWAY}' id='b'><ping xmlns='urn:xmpp:ping'/></iq>"))
    assert [(m.attrs["id"], m.attrs["from"]) for m in out] == [("a", str(juliet.jid)), ("b", str(juliet.jid))]
    assert conn.received == []


# --- remote domains ---------------------------------------------------------------------------


async def test_a_stanza_for_an_unknown_domain_fires_route_remote_and_without_taker_is_remote_server_not_found(
    world: World,
) -> None:
    seen: list[StanzaEvent] = []
    world.events.hook(ROUTE_REMOTE, lambda ev: seen.append(ev))  # looks, does not take it
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza("<message to='romeo@remote.example' id='r'><body>x</body></message>"))
    assert [str(e.to_jid) for e in seen] == ["romeo@remote.example"]
    (reply,) = await conn.wait_for(1)
    assert condition(reply) == "remote-server-not-found"


async def test_a_subdomain_of_a_user_domain_is_remote_not_local(world: World) -> None:
    juliet, conn = world.online("juliet@example.org/balcony")
    await world.router.from_session(juliet, stanza("<message to='someone@sub.example.org' id='r'/>"))
    (reply,) = await conn.wait_for(1)
    assert condition(reply) == "remote-server-not-found"
