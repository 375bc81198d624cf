"""BOSH sessions without HTTP: rid order, the request window, held requests, repeats, restart, terminate, inactivity.

A session is driven by calling ``request`` as the HTTP handler does; the stream
machine, driver, session manager and router behind it are the real ones. Every
wait is for a request's answer, bounded by WAIT.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET

import pytest

from sakari.core.events import Events
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.credentials import derive
from sakari.net import bosh
from sakari.net.bosh import NS_HTTPBIND, BoshError, BoshFraming, BoshSession, parse_body
from sakari.net.port import ClientPort
from sakari.stream.c2s import C2SStream, StreamSettings

WAIT = 5.0
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
STREAMS = "http://etherx.jabber.org/streams"
CREDS = derive("secret", iterations=4096)


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class Setup:
    def __init__(self) -> None:
        events = Events()
        hosts = Hosts()
        hosts.add_users("localhost")
        self.sessions = SessionManager(LocalRouter(hosts, events), events, Tasks())

        async def credentials(jid: str):
            return CREDS if jid == "alice@localhost" else None

        self.port = ClientPort(
            settings=StreamSettings("localhost", tls_available=False),
            sessions=self.sessions,
            tasks=self.sessions.tasks,
            credentials=credentials,
            features=lambda authenticated: [],
        )
        self.ended: list[str] = []
        self.end_seen = asyncio.Event()

    def _end(self, sid: str) -> None:
        self.ended.append(sid)
        self.end_seen.set()

    def session(self, first_rid: int = 100, wait: int = 30, hold: int = 1) -> BoshSession:
        framing = BoshFraming(65536, 32)
        stream = C2SStream(self.port.settings, True, None, {}, framing)
        return BoshSession(self.port, stream, first_rid, wait, hold, self._end)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def body(*children: str, **attrs: str) -> tuple[dict[str, str], list]:
    attr_text = "".join(f" {k.replace('_', ':')}='{v}'" for k, v in attrs.items())
    data = f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh'{attr_text}>{''.join(children)}</body>"
    return parse_body(data.encode(), 65536, 32)


async def ask(session: BoshSession, rid: int, *children: str, **attrs: str) -> ET.Element:
    answer = await asyncio.wait_for(session.request(rid, *body(*children, **attrs)), WAIT)
    return ET.fromstring(answer)


def start(session: BoshSession, rid: int, *children: str, **attrs: str) -> asyncio.Task[bytes]:
    """A request that stays open while the test goes on."""
    return asyncio.ensure_future(session.request(rid, *body(*children, **attrs)))


async def answer_of(task: asyncio.Task[bytes]) -> ET.Element:
    return ET.fromstring(await asyncio.wait_for(task, WAIT))


PLAIN = base64.b64encode(b"\0alice\0secret").decode()


async def test_creation_answer_carries_the_session_and_the_stream_features(setup):
    session = setup.session(first_rid=100)
    created = await ask(session, 100, to="localhost", xmpp_version="1.0")
    assert created.get("sid") == session.sid and created.get("requests") == "2" and created.get("hold") == "1"
    assert created.get("authid") == session.stream.stream_id and created.get("from") == "localhost"
    assert created.get(q("urn:xmpp:xbosh", "version")) == "1.0"
    features = created.find(q(STREAMS, "features"))
    assert features is not None and features.find(f"{q(SASL, 'mechanisms')}/{q(SASL, 'mechanism')}") is not None


async def test_login_with_restart_and_bind_over_several_requests(setup):
    session = setup.session(first_rid=1)
    await ask(session, 1, to="localhost")
    success = await ask(session, 2, f"<auth xmlns='{SASL}' mechanism='PLAIN'>{PLAIN}</auth>")
    assert success.find(q(SASL, "success")) is not None
    restarted = await ask(session, 3, to="localhost", xmpp_restart="true")
    assert restarted.find(f"{q(STREAMS, 'features')}/{q(BIND, 'bind')}") is not None
    bound = await ask(session, 4, f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{BIND}'/></iq>")
    assert bound.find(f"{q('jabber:client', 'iq')}/{q(BIND, 'bind')}/{q(BIND, 'jid')}").text.startswith("alice@localhost/")
    assert session.session is not None and session.session.connection is session


async def test_a_request_beyond_hold_releases_the_oldest_with_an_empty_body(setup):
    session = setup.session(first_rid=1, hold=1)
    await ask(session, 1)
    waiting = start(session, 2)
    await asyncio.sleep(0)  # let the request be taken
    assert not waiting.done(), "with nothing to say, a request is held"
    third = start(session, 3)
    released = await answer_of(waiting)
    assert list(released) == [] and released.get("type") is None
    assert not third.done()
    third.cancel()


async def test_output_answers_the_oldest_held_request(setup):
    session = setup.session(first_rid=1, hold=1)
    await ask(session, 1)
    held = start(session, 2)
    await asyncio.sleep(0)
    answer = await ask(session, 3, f"<auth xmlns='{SASL}' mechanism='PLAIN'>{PLAIN}</auth>")
    # rid 3 went beyond hold, so rid 2 was released empty and the success waited for rid 3 itself.
    assert list(await answer_of(held)) == []
    assert answer.find(q(SASL, "success")) is not None


async def test_requests_are_taken_in_rid_order_whatever_their_arrival(setup):
    session = setup.session(first_rid=10, hold=2)
    await ask(session, 10)
    later = start(session, 12)
    await asyncio.sleep(0)  # let the request arrive
    assert session.last_rid == 10, "rid 12 waits for rid 11"
    earlier = start(session, 11, f"<auth xmlns='{SASL}' mechanism='PLAIN'>{PLAIN}</auth>")
    await asyncio.sleep(0)
    assert session.last_rid == 12
    # Both are held; the output answers the oldest, rid 11, and rid 12 goes on waiting.
    assert (await answer_of(earlier)).find(q(SASL, "success")) is not None
    assert not later.done()
    later.cancel()


async def test_a_repeated_request_gets_the_same_answer(setup):
    session = setup.session(first_rid=5)
    first = await session.request(5, *body(to="localhost"))
    assert await asyncio.wait_for(session.request(5, *body(to="localhost")), WAIT) == first


async def test_a_rid_outside_the_window_ends_the_session(setup):
    session = setup.session(first_rid=1, hold=1)
    await ask(session, 1)
    with pytest.raises(BoshError) as refused:
        await session.request(4, *body())
    assert refused.value.condition == "item-not-found"
    assert setup.ended == [session.sid]
    with pytest.raises(BoshError):
        await session.request(2, *body())


async def test_terminate_ends_the_session_with_a_terminate_body(setup):
    session = setup.session(first_rid=1)
    await ask(session, 1)
    goodbye = await ask(session, 2, type="terminate")
    assert goodbye.get("type") == "terminate" and goodbye.get("condition") is None
    assert setup.ended == [session.sid]


async def test_a_stream_error_is_a_remote_stream_error_terminate(setup):
    session = setup.session(first_rid=1)
    await ask(session, 1)
    answer = await ask(session, 2, "<message xmlns='jabber:client' to='bob@localhost'><body>too soon</body></message>")
    assert answer.get("type") == "terminate" and answer.get("condition") == "remote-stream-error"
    assert answer.find(f"{q(STREAMS, 'error')}/{{urn:ietf:params:xml:ns:xmpp-streams}}not-authorized") is not None


async def test_a_held_request_is_answered_empty_after_wait(setup):
    session = setup.session(first_rid=1, wait=1)
    await ask(session, 1)
    answer = await ask(session, 2)
    assert list(answer) == [] and answer.get("type") is None


async def test_a_session_without_requests_ends_after_inactivity(setup, monkeypatch):
    monkeypatch.setattr(bosh, "INACTIVITY", 0.05)
    session = setup.session(first_rid=1)
    await ask(session, 1)
    await asyncio.wait_for(setup.end_seen.wait(), WAIT)
    assert setup.ended == [session.sid]


@pytest.mark.parametrize(
    "data",
    [b"", b"<body xmlns='http://jabber.org/protocol/httpbind'>", b"<notbody xmlns='x'/>", b"<!DOCTYPE x><body/>"],
)
def test_anything_but_a_whole_body_is_a_bad_request(data):
    with pytest.raises(BoshError) as refused:
        parse_body(data, 65536, 32)
    assert refused.value.condition == "bad-request"
