"""LocalRouter: delivery rules of RFC 6121 §8 and error replies of RFC 6120 §8.3, with fake sessions."""

from __future__ import annotations

from typing import Any

import pytest

from sakari.core import events as E
from sakari.core.events import Events, StanzaEvent
from sakari.jid import parse_jid
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.router import ROUTE_REMOTE
from sakari.core.session import Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.xml.errors import StanzaError, StreamError
from sakari.xml.element import Element
from sakari.xml.parser import StreamParser

HOST = "example.org"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


class Collector:
    """A connection that keeps what it is given, as elements (serialized fan-out is parsed back)."""

    stanza_ns = "jabber:client"

    def __init__(self) -> None:
        self.received: list[Element] = []
        self.closed: list[StreamError | None] = []

    def write(self, data: bytes) -> None:
        parser = StreamParser()
        parser.feed(HEADER)
        self.received.extend(parser.feed(data))  # type: ignore[arg-type]

    async def writable(self) -> bool:
        return True

    def close_stream(self, error: StreamError | None = None) -> None:
        self.closed.append(error)


class FakeSession(Session):
    def __init__(self, world: World, jid: str) -> None:
        self.conn = Collector()
        super().__init__(parse_jid(jid), world.sessions, self.conn)

    @property
    def received(self) -> list[Element]:
        return self.conn.received


class World:
    def __init__(self) -> None:
        self.events = Events()
        self.hosts = Hosts()
        self.hosts.add_users(HOST)
        self.router = LocalRouter(self.hosts, self.events)
        self.sessions = SessionManager(self.router, self.events, Tasks())
        self.juliet = self.online("juliet@example.org/balcony")

    def online(self, jid: str, priority: int = 0, available: bool = True) -> FakeSession:
        session = FakeSession(self, jid)
        assert self.router.bind(session) is None
        if available:
            self.router.set_presence(session, Element("presence"), priority)
        return session

    async def send(self, session: FakeSession, xml: str) -> None:
        parser = StreamParser()
        parser.feed(HEADER)
        (stanza,) = parser.feed(xml.encode())
        await self.router.from_session(session, stanza)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    return World()


def bodies(session: FakeSession) -> list[str | None]:
    return [s.child_text("body") for s in session.received if s.name == "message"]


def error_condition(stanza: Element) -> tuple[str | None, str]:
    assert stanza.attrs.get("type") == "error", stanza
    error = stanza.find("error")
    assert error is not None, stanza
    (condition,) = [c for c in error.elements() if c.ns == STANZAS and c.name != "text"]
    return error.attrs.get("type"), condition.name


# --- messages to a bare JID (RFC 6121 §8.5.2) --------------------------------------------


async def test_bare_message_goes_to_every_resource_of_the_highest_non_negative_priority(world: World) -> None:
    phone = world.online("romeo@example.org/phone", priority=5)
    laptop = world.online("romeo@example.org/laptop", priority=5)
    tablet = world.online("romeo@example.org/tablet", priority=1)
    away = world.online("romeo@example.org/away", priority=-1)
    offline = world.online("romeo@example.org/gone", priority=10, available=False)
    await world.send(world.juliet, "<message to='romeo@example.org' type='chat' id='m1'><body>hi</body></message>")
    assert bodies(phone) == ["hi"] and bodies(laptop) == ["hi"]
    assert bodies(tablet) == [] and bodies(away) == [] and bodies(offline) == []
    delivered = phone.received[0]
    assert delivered.attrs["from"] == "juliet@example.org/balcony"
    assert delivered.attrs["to"] == "romeo@example.org"
    assert world.juliet.received == []


async def test_sender_address_is_stamped_by_the_server_not_taken_from_the_client(world: World) -> None:
    romeo = world.online("romeo@example.org/phone")
    await world.send(world.juliet, "<message to='romeo@example.org/phone' from='nurse@example.org/x'><body>hi</body></message>")
    (message,) = romeo.received
    assert message.attrs["from"] == "juliet@example.org/balcony"


async def test_bare_message_goes_to_the_single_top_priority_resource(world: World) -> None:
    low = world.online("romeo@example.org/low", priority=0)
    high = world.online("romeo@example.org/high", priority=7)
    await world.send(world.juliet, "<message to='romeo@example.org'><body>hi</body></message>")
    assert bodies(high) == ["hi"] and bodies(low) == []


async def test_negative_priority_resource_never_gets_bare_messages(world: World) -> None:
    away = world.online("romeo@example.org/away", priority=-1)
    offline_events: list[StanzaEvent] = []
    world.events.hook(E.MESSAGE_OFFLINE, lambda ev: offline_events.append(ev) or True)
    for mtype in ("normal", "chat", "headline"):
        await world.send(world.juliet, f"<message to='romeo@example.org' type='{mtype}'><body>{mtype}</body></message>")
    assert away.received == []
    assert [e.stanza.attrs.get("type") for e in offline_events] == ["normal", "chat"]  # headlines are not kept


async def test_negative_priority_resource_gets_messages_to_its_full_jid(world: World) -> None:
    away = world.online("romeo@example.org/away", priority=-1)
    await world.send(world.juliet, "<message to='romeo@example.org/away'><body>direct</body></message>")
    assert bodies(away) == ["direct"]


async def test_headline_to_bare_jid_goes_to_all_non_negative_resources(world: World) -> None:
    a = world.online("romeo@example.org/a", priority=5)
    b = world.online("romeo@example.org/b", priority=0)
    c = world.online("romeo@example.org/c", priority=-5)
    await world.send(world.juliet, "<message to='romeo@example.org' type='headline'><body>news</body></message>")
    assert bodies(a) == ["news"] and bodies(b) == ["news"] and bodies(c) == []


async def test_message_to_unavailable_account_fires_message_offline(world: World) -> None:
    world.online("romeo@example.org/hidden", priority=5, available=False)
    seen: list[StanzaEvent] = []

    def keep(event: StanzaEvent) -> bool:
        seen.append(event)
        return True

    world.events.hook(E.MESSAGE_OFFLINE, keep)
    await world.send(world.juliet, "<message to='romeo@example.org' id='m1'><body>later</body></message>")
    (event,) = seen
    assert event.to_jid == parse_jid("romeo@example.org")
    assert event.from_jid == world.juliet.jid
    assert event.stanza.child_text("body") == "later"
    assert world.juliet.received == []  # handled: no error


async def test_message_to_unavailable_account_without_handler_is_service_unavailable(world: World) -> None:
    await world.send(world.juliet, "<message to='romeo@example.org' id='m1'><body>later</body></message>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("cancel", "service-unavailable")
    assert reply.attrs["id"] == "m1"
    assert reply.attrs["to"] == "juliet@example.org/balcony"
    assert reply.attrs["from"] == "romeo@example.org"


async def test_message_to_offline_full_jid_is_handled_as_to_the_bare_jid(world: World) -> None:
    other = world.online("romeo@example.org/other", priority=0)
    await world.send(world.juliet, "<message to='romeo@example.org/gone' type='chat'><body>hi</body></message>")
    assert bodies(other) == ["hi"]


async def test_headline_to_offline_full_jid_is_dropped_silently(world: World) -> None:
    other = world.online("romeo@example.org/other", priority=0)
    await world.send(world.juliet, "<message to='romeo@example.org/gone' type='headline'><body>hi</body></message>")
    assert other.received == [] and world.juliet.received == []


async def test_groupchat_to_a_user_is_service_unavailable(world: World) -> None:
    world.online("romeo@example.org/r", priority=0)
    await world.send(world.juliet, "<message to='romeo@example.org' type='groupchat' id='g'><body>x</body></message>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("cancel", "service-unavailable")


async def test_malformed_to_is_answered_with_jid_malformed(world: World) -> None:
    await world.send(world.juliet, "<message to='romeo@@example.org' id='bad'><body>x</body></message>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("modify", "jid-malformed")
    assert reply.attrs["id"] == "bad"


async def test_stanza_to_a_remote_domain_without_federation_is_remote_server_not_found(world: World) -> None:
    await world.send(world.juliet, "<message to='romeo@elsewhere.example' id='r'><body>x</body></message>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("cancel", "remote-server-not-found")


# --- iq (RFC 6120 §8.2.3) ---------------------------------------------------------------


async def test_iq_get_with_no_handler_is_service_unavailable(world: World) -> None:
    await world.send(world.juliet, "<iq type='get' id='q1' to='example.org'><query xmlns='urn:example:nothing'/></iq>")
    (reply,) = world.juliet.received
    assert reply.name == "iq"
    assert error_condition(reply) == ("cancel", "service-unavailable")
    assert reply.attrs["id"] == "q1"
    assert reply.attrs["to"] == "juliet@example.org/balcony" and reply.attrs["from"] == "example.org"


async def test_iq_set_to_own_account_with_no_handler_is_service_unavailable(world: World) -> None:
    await world.send(world.juliet, "<iq type='set' id='s1'><query xmlns='urn:example:nothing'/></iq>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("cancel", "service-unavailable")


@pytest.mark.parametrize(
    "payload", ["<a xmlns='urn:x'/><b xmlns='urn:y'/>", ""], ids=["two-children", "no-child"]
)
async def test_iq_get_without_exactly_one_child_is_bad_request(world: World, payload: str) -> None:
    called: list[Any] = []
    world.events.hook(E.iq_event("get", "host", "urn:x", "a"), lambda ev: called.append(ev) or True)
    await world.send(world.juliet, f"<iq type='get' id='two' to='example.org'>{payload}</iq>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("modify", "bad-request")
    assert called == []


async def test_iq_with_an_unknown_type_is_bad_request(world: World) -> None:
    await world.send(world.juliet, "<iq type='fetch' id='t' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("modify", "bad-request")


async def test_iq_handler_result_is_sent_back_with_its_payload(world: World) -> None:
    def answer(event: StanzaEvent) -> Element:
        return Element("query", "urn:example:q", {"answer": "42"})

    world.events.hook(E.iq_event("get", "host", "urn:example:q", "query"), answer)
    await world.send(world.juliet, "<iq type='get' id='q' to='example.org'><query xmlns='urn:example:q'/></iq>")
    (reply,) = world.juliet.received
    assert reply.attrs["type"] == "result" and reply.attrs["id"] == "q"
    assert reply.find("query", "urn:example:q").attrs == {"answer": "42"}


async def test_handler_raising_stanza_error_is_answered_with_that_condition(world: World) -> None:
    def refuse(event: StanzaEvent) -> None:
        raise StanzaError("item-not-found", "no such thing")

    world.events.hook(E.iq_event("get", "host", "urn:example:q", "query"), refuse)
    await world.send(world.juliet, "<iq type='get' id='q' to='example.org'><query xmlns='urn:example:q'/></iq>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("cancel", "item-not-found")


async def test_iq_to_an_online_full_jid_is_passed_to_that_session(world: World) -> None:
    romeo = world.online("romeo@example.org/phone")
    await world.send(world.juliet, "<iq type='get' id='v' to='romeo@example.org/phone'><query xmlns='jabber:iq:version'/></iq>")
    (iq,) = romeo.received
    assert iq.attrs["id"] == "v" and iq.attrs["from"] == "juliet@example.org/balcony"


async def test_iq_to_an_offline_full_jid_is_service_unavailable(world: World) -> None:
    await world.send(world.juliet, "<iq type='get' id='v' to='romeo@example.org/phone'><query xmlns='jabber:iq:version'/></iq>")
    (reply,) = world.juliet.received
    assert error_condition(reply) == ("cancel", "service-unavailable")


# --- error stanzas are never answered with errors (RFC 6120 §8.3.1) -----------------------


@pytest.mark.parametrize(
    "xml",
    [
        "<message to='romeo@example.org' type='error' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        "<message to='romeo@example.org/gone' type='error' id='e'/>",
        "<message to='romeo@elsewhere.example' type='error' id='e'/>",
        "<message to='romeo@@bad' type='error' id='e'/>",
        "<iq to='example.org' type='error' id='e'/>",
        "<iq to='example.org' type='result' id='e'/>",
        "<iq to='romeo@example.org/gone' type='error' id='e'/>",
        "<iq to='romeo@elsewhere.example' type='error' id='e'/>",
        "<presence to='romeo@example.org/gone' type='error' id='e'/>",
        "<presence to='romeo@elsewhere.example' type='error' id='e'/>",
    ],
    ids=["message-bare-offline", "message-full-offline", "message-remote", "message-malformed-to", "iq-error-host",
         "iq-result-host", "iq-error-full-offline", "iq-error-remote", "presence-full-offline", "presence-remote"],
)
async def test_error_stanzas_are_never_answered_with_errors(world: World, xml: str) -> None:
    await world.send(world.juliet, xml)
    assert world.juliet.received == []


async def test_error_from_a_handler_on_an_error_stanza_is_not_answered(world: World) -> None:
    def refuse(event: StanzaEvent) -> None:
        raise StanzaError("not-allowed")

    world.events.hook(E.stanza_event("message", "bare"), refuse)
    await world.send(world.juliet, "<message to='romeo@example.org' type='error' id='e'/>")
    assert world.juliet.received == []


# --- hooks in the routing path ------------------------------------------------------------


async def test_message_hook_that_returns_a_value_stops_default_delivery(world: World) -> None:
    romeo = world.online("romeo@example.org/phone")
    calls: list[str] = []
    world.events.hook("message/bare", lambda ev: calls.append("low"), priority=-5)
    world.events.hook("message/bare", lambda ev: calls.append("high") or True, priority=5)
    await world.send(world.juliet, "<message to='romeo@example.org'><body>hi</body></message>")
    assert calls == ["high"]
    assert romeo.received == []


async def test_message_hook_that_returns_none_lets_delivery_continue(world: World) -> None:
    romeo = world.online("romeo@example.org/phone")
    calls: list[str] = []

    async def observe(event: StanzaEvent) -> None:
        calls.append(event.stanza.child_text("body") or "")

    world.events.hook("message/bare", observe)
    await world.send(world.juliet, "<message to='romeo@example.org'><body>hi</body></message>")
    assert calls == ["hi"] and bodies(romeo) == ["hi"]


async def test_route_remote_hook_takes_stanzas_for_other_domains(world: World) -> None:
    taken: list[StanzaEvent] = []
    world.events.hook(ROUTE_REMOTE, lambda ev: taken.append(ev) or True)
    await world.send(world.juliet, "<message to='romeo@elsewhere.example'><body>x</body></message>")
    assert [str(e.to_jid) for e in taken] == ["romeo@elsewhere.example"]
    assert world.juliet.received == []


# --- the session registry ---------------------------------------------------------------


async def test_binding_the_same_full_jid_again_returns_the_replaced_session(world: World) -> None:
    first = world.online("romeo@example.org/phone")
    second = FakeSession(world, "romeo@example.org/phone")
    assert world.router.bind(second) is first
    assert world.router.resource(parse_jid("romeo@example.org/phone")).session is second  # type: ignore[union-attr]
    assert world.router.unbind(first) is False  # the replaced session no longer owns the resource
    assert world.router.unbind(second) is True
    assert not world.router.is_online(parse_jid("romeo@example.org"))
