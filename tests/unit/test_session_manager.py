"""The session manager and sessions, sans-IO: bind and conflicts, detach, resume, close, filters, the ordered inbox.

Connections are fakes that keep what is written to them; the router is the real
LocalRouter. Every wait is for an event the code under test fires, bounded by
WAIT so that a missing event fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sakari.core import events as E
from sakari.core.events import Events, SessionEvent, StanzaEvent, UndeliverableEvent
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.session import FilterChain, Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import parse_jid
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamParser

HOST = "example.org"
WAIT = 5.0
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def parse(xml: str | bytes) -> list[Element]:
    parser = StreamParser()
    parser.feed(HEADER)
    return parser.feed(xml if isinstance(xml, bytes) else xml.encode())  # type: ignore[return-value]


def stanza(xml: str) -> Element:
    (el,) = parse(xml)
    return el


class Conn:
    """A connection that keeps the bytes written to it and how its stream was ended."""

    stanza_ns = "jabber:client"

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.closed: list[StreamError | None] = []
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.data.append(data)
        self.wrote.set()

    async def writable(self) -> bool:
        return True

    def close_stream(self, error: StreamError | None = None) -> None:
        self.closed.append(error)

    @property
    def received(self) -> list[Element]:
        return parse(b"".join(self.data))

    async def next_write(self) -> None:
        await asyncio.wait_for(self.wrote.wait(), WAIT)
        self.wrote.clear()


class World:
    def __init__(self) -> None:
        self.events = Events()
        self.hosts = Hosts()
        self.hosts.add_users(HOST)
        self.router = LocalRouter(self.hosts, self.events)
        self.tasks = Tasks()
        self.sessions = SessionManager(self.router, self.events, self.tasks)

    def bind(self, user: str, resource: str | None = "phone") -> tuple[Session, Conn]:
        conn = Conn()
        return self.sessions.bind(user, HOST, resource, conn), conn

    def waiter(self, name: str) -> Seen:
        seen = Seen()
        self.events.hook(name, seen.record)
        return seen

    @staticmethod
    async def fired(seen: Seen, count: int = 1) -> None:
        await seen.wait(count)


class Seen(list):  # type: ignore[type-arg]
    """Every firing of one event, in order; ``await seen.wait(n)`` until there are n."""

    def __init__(self) -> None:
        super().__init__()
        self._flag = asyncio.Event()

    def record(self, event: Any) -> None:
        self.append(event)
        self._flag.set()

    async def wait(self, count: int = 1) -> None:
        async def until() -> None:
            while len(self) < count:
                self._flag.clear()
                await self._flag.wait()

        await asyncio.wait_for(until(), WAIT)


@pytest.fixture
def world() -> World:
    return World()


# --- bind and resource conflicts ---------------------------------------------------------


async def test_bind_registers_the_session_in_the_router_and_fires_session_bound(world: World) -> None:
    bound = world.waiter(E.SESSION_BOUND)
    session, _ = world.bind("romeo")
    await world.fired(bound)
    assert [e.session for e in bound] == [session]
    assert world.sessions.get(parse_jid("romeo@example.org/phone")) is session
    assert world.router.resource(session.jid).session is session  # type: ignore[union-attr]
    assert world.sessions.sessions_of(parse_jid("romeo@example.org")) == [session]


async def test_bind_without_a_resource_gets_a_server_chosen_one_unique_per_session(world: World) -> None:
    a, _ = world.bind("romeo", None)
    b, _ = world.bind("romeo", None)
    assert a.jid.resource and b.jid.resource and a.jid.resource != b.jid.resource
    assert sorted(s.jid.resource for s in world.sessions.sessions_of(a.bare)) == sorted([a.jid.resource, b.jid.resource])


async def test_binding_a_taken_resource_closes_the_old_session_with_conflict_and_replaces_its_entry(world: World) -> None:
    closed = world.waiter(E.SESSION_CLOSED)
    old, old_conn = world.bind("romeo")
    world.router.set_presence(old, Element("presence"), 5)
    new, new_conn = world.bind("romeo")

    assert old.closed and not new.closed
    (error,) = old_conn.closed
    assert error is not None and error.condition == "conflict"
    assert new_conn.closed == []
    # The router's entry for the full JID is the new session's, with no presence yet.
    entry = world.router.resource(new.jid)
    assert entry is not None and entry.session is new and not entry.available and entry.priority == 0

    await world.fired(closed)
    assert [e.session for e in closed] == [old]
    # Closing the replaced session did not take the new one's place away.
    assert world.router.resource(new.jid).session is new  # type: ignore[union-attr]
    assert world.sessions.get(new.jid) is new
    assert list(world.sessions) == [new]


# --- close ------------------------------------------------------------------------------


async def test_session_closing_fires_while_the_session_is_in_the_router_and_closed_after_it_left(world: World) -> None:
    session, conn = world.bind("romeo")
    world.router.set_presence(session, Element("presence"), 1)
    seen: list[tuple[str, object, bool]] = []
    done = asyncio.Event()

    def closing(event: SessionEvent) -> None:
        seen.append(("closing", world.router.resource(session.jid), world.router.is_online(session.bare)))

    def closed(event: SessionEvent) -> None:
        # The last state is still readable here (modules broadcast unavailable from it).
        last = world.router.resource_of(event.session)
        seen.append(("closed", world.router.resource(session.jid), last.available))
        done.set()

    world.events.hook(E.SESSION_CLOSING, closing)
    world.events.hook(E.SESSION_CLOSED, closed)
    session.close(StreamError("system-shutdown"))
    await asyncio.wait_for(done.wait(), WAIT)

    entry_while_closing = seen[0][1]
    assert seen[0][0] == "closing" and entry_while_closing is not None and seen[0][2] is True
    assert entry_while_closing.session is session  # type: ignore[attr-defined]
    assert seen[1] == ("closed", None, True)
    assert [e.condition for e in conn.closed if e is not None] == ["system-shutdown"]
    assert world.sessions.get(session.jid) is None and len(world.sessions) == 0
    # Forgotten once the modules are done: resource_of no longer knows its last presence.
    assert world.router.resource_of(session).available is False


async def test_closing_twice_ends_the_stream_and_fires_the_events_once(world: World) -> None:
    closed = world.waiter(E.SESSION_CLOSED)
    session, conn = world.bind("romeo")
    session.close()
    session.close(StreamError("conflict"))
    await world.fired(closed)
    assert conn.closed == [None]
    assert len(closed) == 1


# --- detach, deadline, resume -------------------------------------------------------------


async def test_connection_lost_without_detach_timeout_closes_the_session(world: World) -> None:
    closed = world.waiter(E.SESSION_CLOSED)
    detached = world.waiter(E.SESSION_DETACHED)
    session, conn = world.bind("romeo")
    world.sessions.connection_lost(session, conn)
    assert session.closed
    await world.fired(closed)
    assert detached == []
    assert world.router.resource(session.jid) is None


async def test_connection_lost_with_detach_timeout_detaches_then_closes_at_the_deadline(world: World) -> None:
    detached = world.waiter(E.SESSION_DETACHED)
    closed = world.waiter(E.SESSION_CLOSED)
    session, conn = world.bind("romeo")
    session.detach_timeout = 0.01
    world.sessions.connection_lost(session, conn)

    assert not session.closed and session.connection is None
    assert world.router.resource(session.jid).session is session  # type: ignore[union-attr]
    await world.fired(detached)
    assert [e.session for e in detached] == [session]
    assert closed == []  # not before its deadline

    await world.fired(closed)
    assert session.closed and [e.session for e in closed] == [session]
    assert world.router.resource(session.jid) is None
    assert conn.closed == []  # the lost connection is not written to again


async def test_connection_lost_of_an_old_connection_after_resume_is_ignored(world: World) -> None:
    session, old = world.bind("romeo")
    session.detach_timeout = 60
    world.sessions.connection_lost(session, old)
    new = Conn()
    world.sessions.resume(session, new)
    world.sessions.connection_lost(session, old)  # the old transport reports late
    assert session.connection is new and not session.closed


async def test_resume_carries_a_detached_session_on_a_new_connection_and_cancels_its_deadline(world: World) -> None:
    resumed = world.waiter(E.SESSION_RESUMED)
    session, old = world.bind("romeo")
    session.detach_timeout = 60
    world.sessions.connection_lost(session, old)
    deadline = world.sessions._deadlines[session]
    new = Conn()
    world.sessions.resume(session, new)
    assert deadline.cancelled()  # the session will not close at its old deadline
    await world.fired(resumed)
    assert [e.session for e in resumed] == [session]
    assert session.connection is new and not session.closed
    session.send(stanza("<message id='after'/>"))
    assert [m.attrs["id"] for m in new.received] == ["after"]
    assert old.data == []


async def test_resume_onto_a_new_connection_ends_the_old_one_with_conflict(world: World) -> None:
    session, old = world.bind("romeo")
    new = Conn()
    world.sessions.resume(session, new)
    (error,) = old.closed
    assert error is not None and error.condition == "conflict"
    assert new.closed == [] and session.connection is new and not session.closed


async def test_a_closed_session_cannot_be_resumed(world: World) -> None:
    session, conn = world.bind("romeo")
    session.close()
    with pytest.raises(ValueError):
        world.sessions.resume(session, Conn())


# --- stanzas for a detached session ---------------------------------------------------------


async def test_stanza_for_a_detached_session_goes_through_outbound_filters_then_fires_undeliverable(world: World) -> None:
    undeliverable = world.waiter(E.STANZA_UNDELIVERABLE)
    filtered: list[str] = []
    world.sessions.add_filter("out", lambda s, st: filtered.append(st.attrs["id"]) or st)
    session, conn = world.bind("romeo")
    session.detach_timeout = 60
    world.sessions.connection_lost(session, conn)

    session.send(stanza("<message id='m1'><body>hi</body></message>"))
    await world.fired(undeliverable)
    assert filtered == ["m1"]
    (event,) = undeliverable
    assert isinstance(event, UndeliverableEvent)
    assert event.session is session and event.stanza.attrs["id"] == "m1"
    assert conn.data == []


async def test_stanza_a_filter_takes_for_a_detached_session_is_not_undeliverable(world: World) -> None:
    undeliverable = world.waiter(E.STANZA_UNDELIVERABLE)
    kept: list[Element] = []

    def take(s: Session, st: Element) -> Element | None:
        if st.attrs["id"] == "barrier":
            return st  # let through: it reaches the event after 'kept' would have
        kept.append(st)  # a queue that keeps the stanza for a later resumption
        return None

    world.sessions.add_filter("out", take)
    session, conn = world.bind("romeo")
    session.detach_timeout = 60
    world.sessions.connection_lost(session, conn)
    session.send(stanza("<message id='kept'/>"))
    session.send(stanza("<message id='barrier'/>"))
    await world.fired(undeliverable)
    assert [e.stanza.attrs["id"] for e in undeliverable] == ["barrier"]
    assert [k.attrs["id"] for k in kept] == ["kept"]


# --- filter chains ------------------------------------------------------------------------


def test_filter_chain_runs_by_descending_priority_then_in_order_added() -> None:
    calls: list[str] = []

    def named(name: str):
        return lambda s, st: calls.append(name) or st

    chain = FilterChain()
    chain.add(named("low"), -5, 1)
    chain.add(named("first-zero"), 0, 2)
    chain.add(named("high"), 10, 3)
    chain.add(named("second-zero"), 0, 4)
    el = Element("message")
    assert chain.run(None, el) is el  # type: ignore[arg-type]
    assert calls == ["high", "first-zero", "second-zero", "low"]


def test_filter_chain_copy_is_independent_and_remove_takes_a_filter_out() -> None:
    calls: list[str] = []

    def a(s: Any, st: Element) -> Element:
        calls.append("a")
        return st

    def b(s: Any, st: Element) -> Element:
        calls.append("b")
        return st

    chain = FilterChain()
    chain.add(a, 0, 1)
    copy = chain.copy()
    copy.add(b, 0, 2)
    chain.run(None, Element("message"))  # type: ignore[arg-type]
    assert calls == ["a"]
    copy.remove(a)
    calls.clear()
    copy.run(None, Element("message"))  # type: ignore[arg-type]
    assert calls == ["b"]


async def test_outbound_filters_run_by_priority_on_every_stanza_sent(world: World) -> None:
    calls: list[str] = []
    world.sessions.add_filter("out", lambda s, st: calls.append("low") or st, priority=-1)
    world.sessions.add_filter("out", lambda s, st: calls.append("high") or st, priority=3)
    world.sessions.add_filter("out", lambda s, st: calls.append("mid") or st)
    session, conn = world.bind("romeo")
    session.send(stanza("<message id='m'/>"))
    assert calls == ["high", "mid", "low"]
    assert [m.attrs["id"] for m in conn.received] == ["m"]


async def test_outbound_filter_that_drops_stops_the_chain_and_nothing_is_written(world: World) -> None:
    later: list[Element] = []
    world.sessions.add_filter("out", lambda s, st: None if st.attrs["id"] == "drop" else st, priority=1)
    world.sessions.add_filter("out", lambda s, st: later.append(st) or st)
    session, conn = world.bind("romeo")
    session.send(stanza("<message id='drop'/>"))
    session.send(stanza("<message id='keep'/>"))
    assert [m.attrs["id"] for m in conn.received] == ["keep"]
    assert [m.attrs["id"] for m in later] == ["keep"]


async def test_outbound_filter_that_replaces_the_stanza_hands_the_replacement_on(world: World) -> None:
    def replace(s: Session, st: Element) -> Element:
        copy = st.shallow_copy()
        copy.attrs["id"] = "replaced"
        return copy

    seen: list[str] = []
    world.sessions.add_filter("out", replace, priority=1)
    world.sessions.add_filter("out", lambda s, st: seen.append(st.attrs["id"]) or st)
    session, conn = world.bind("romeo")
    session.send(stanza("<message id='original'/>"))
    assert seen == ["replaced"]
    assert [m.attrs["id"] for m in conn.received] == ["replaced"]


async def test_pre_serialized_data_is_written_as_given_when_no_filter_replaces_the_stanza(world: World) -> None:
    world.sessions.add_filter("out", lambda s, st: st)
    session, conn = world.bind("romeo")
    session.send(stanza("<message id='m'/>"), b"<message id='as-serialized'/>")
    assert conn.data == [b"<message id='as-serialized'/>"]


async def test_pre_serialized_data_is_not_used_when_a_filter_replaced_the_stanza(world: World) -> None:
    world.sessions.add_filter("out", lambda s, st: stanza("<message id='replaced'/>"))
    session, conn = world.bind("romeo")
    session.send(stanza("<message id='m'/>"), b"<message id='stale-serialization'/>")
    assert [m.attrs["id"] for m in conn.received] == ["replaced"]


async def test_filters_added_to_the_manager_apply_to_sessions_bound_afterwards_only(world: World) -> None:
    before, before_conn = world.bind("romeo", "before")
    world.sessions.add_filter("out", lambda s, st: None)
    after, after_conn = world.bind("romeo", "after")
    before.send(stanza("<message id='a'/>"))
    after.send(stanza("<message id='b'/>"))
    assert [m.attrs["id"] for m in before_conn.received] == ["a"]
    assert after_conn.data == []


def test_a_filter_direction_other_than_in_or_out_is_refused(world: World) -> None:
    with pytest.raises(ValueError):
        world.sessions.add_filter("both", lambda s, st: st)


async def test_inbound_filters_see_what_the_client_sends_and_may_drop_or_replace_it(world: World) -> None:
    seen_by_filter: list[str] = []

    def inbound(s: Session, st: Element) -> Element | None:
        seen_by_filter.append(st.attrs["id"])
        if st.attrs["id"] == "drop":
            return None
        if st.attrs["id"] == "swap":
            return stanza("<message to='juliet@example.org/balcony' id='swapped'><body>new</body></message>")
        return st

    world.sessions.add_filter("in", inbound)
    romeo, _ = world.bind("romeo")
    juliet, juliet_conn = world.bind("juliet", "balcony")
    for sid in ("drop", "swap", "plain"):
        romeo.receive(stanza(f"<message to='juliet@example.org/balcony' id='{sid}'><body>x</body></message>"))
    while len(juliet_conn.received) < 2:
        await juliet_conn.next_write()
    assert seen_by_filter == ["drop", "swap", "plain"]
    assert [m.attrs["id"] for m in juliet_conn.received] == ["swapped", "plain"]
    assert all(m.attrs["from"] == "romeo@example.org/phone" for m in juliet_conn.received)


# --- the ordered inbox ------------------------------------------------------------------------


async def test_session_bound_handlers_finish_before_the_sessions_first_stanza_is_routed(world: World) -> None:
    order: list[str] = []
    release = asyncio.Event()
    routed = asyncio.Event()

    async def on_bound(event: SessionEvent) -> None:
        order.append("bound-start")
        await release.wait()  # a module that reads storage at bind
        order.append("bound-end")

    def on_message(event: StanzaEvent) -> bool:
        order.append("message " + event.stanza.attrs["id"])
        routed.set()
        return True

    world.events.hook(E.SESSION_BOUND, on_bound)
    world.events.hook("message/bare", on_message)
    session, _ = world.bind("romeo")
    session.receive(stanza("<message to='juliet@example.org' id='first'/>"))
    session.receive(stanza("<message to='juliet@example.org' id='second'/>"))
    assert order == ["bound-start"]  # the stanzas wait behind the bind event
    release.set()
    await asyncio.wait_for(routed.wait(), WAIT)
    while len(order) < 4:
        routed.clear()
        await asyncio.wait_for(routed.wait(), WAIT)
    assert order == ["bound-start", "bound-end", "message first", "message second"]


async def test_stanzas_queued_for_a_session_that_closed_are_not_routed(world: World) -> None:
    routed: list[str] = []
    release = asyncio.Event()
    closed = world.waiter(E.SESSION_CLOSED)

    async def slow_bound(event: SessionEvent) -> None:
        await release.wait()

    world.events.hook(E.SESSION_BOUND, slow_bound)
    world.events.hook("message/bare", lambda ev: routed.append(ev.stanza.attrs["id"]) or True)
    session, _ = world.bind("romeo")
    session.receive(stanza("<message to='juliet@example.org' id='late'/>"))
    session.close()
    release.set()
    await world.fired(closed)
    # The drain task ends on the next turn: it reached the closed check before 'late'.
    await asyncio.wait_for(_until(lambda: not session._draining), WAIT)
    assert routed == []


async def test_a_module_failing_on_a_request_answers_it_with_internal_server_error(world: World) -> None:
    def broken(event: StanzaEvent) -> None:
        raise RuntimeError("bug in a module")

    world.events.hook(E.iq_event("get", "host", "urn:example:q", "query"), broken)
    session, conn = world.bind("romeo")
    session.receive(stanza("<iq type='get' id='q' to='example.org'><query xmlns='urn:example:q'/></iq>"))
    await conn.next_write()
    (reply,) = conn.received
    assert reply.attrs["type"] == "error" and reply.attrs["id"] == "q"
    assert reply.find("error").find("internal-server-error", "urn:ietf:params:xml:ns:xmpp-stanzas") is not None  # type: ignore[union-attr]
    assert not session.closed


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0)  # one turn of the loop, not a timed wait


# --- drained --------------------------------------------------------------------------------


async def test_drained_is_true_while_detached_and_false_once_closed(world: World) -> None:
    session, conn = world.bind("romeo")
    assert await session.drained() is True
    session.detach_timeout = 60
    world.sessions.connection_lost(session, conn)
    assert await session.drained() is True
    session.close()
    assert await session.drained() is False
