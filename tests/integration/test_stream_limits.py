"""Hostile or broken streams (RFC 6120 §4.9, §11.1) end with the right stream
error and close, and never disturb anyone else's session.

A server of its own with encryption optional (so raw sockets can speak XML
without TLS) and a 1-second authentication timeout.
"""

import asyncio

import pytest
import pytest_asyncio

from raw_xmpp import RawStream, mechanisms_offered, stream_error_in
from xmpp_harness import NS_TLS, STREAM_HEADER, describe, is_message, q

pytestmark = pytest.mark.asyncio

AUTH_TIMEOUT = 1
MAX_STANZA = 262144
CONFIG = f"""
[c2s]
require_encryption = false
auth_timeout = {AUTH_TIMEOUT}

[limits]
max_stanza_size = {MAX_STANZA}
"""


@pytest.fixture(scope="module")
def limits_server(spawn_server):
    with spawn_server("limits-server", CONFIG) as srv:
        yield srv


@pytest_asyncio.fixture
async def bystanders(limits_server, session_for):
    """Two logged-in users who chat before and after each attack."""
    session = session_for(limits_server)
    alice = await session.login(label="alice")
    bob = await session.login(label="bob")
    alice.message(bob.jid, "before")
    await bob.expect(is_message(body="before"))
    return alice, bob


async def assert_still_chatting(alice, bob) -> None:
    assert alice.connected and bob.connected, "a bystander lost its session"
    alice.message(bob.jid, "still here?")
    await bob.expect(is_message(body="still here?", sender=alice.jid))
    bob.message(alice.jid, "yes")
    await alice.expect(is_message(body="yes", sender=bob.jid))


def big_message(size: int) -> str:
    return f"<message to='nobody@localhost' type='chat'><body>{'A' * size}</body></message>"


BILLION_LAUGHS = (
    "<!DOCTYPE stream:stream ["
    "<!ENTITY lol 'lol'>"
    "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
    "]>"
)

# (case id, sent before the stream header, sent after the features, expected stream error)
IN_STREAM_CASES = [
    ("garbage", "", "<<<this is not xml>>>", "not-well-formed"),
    ("mismatched-tags", "", "<message><body>hi</message></body>", "not-well-formed"),
    ("oversized-stanza", "", big_message(300 * 1024), "policy-violation"),
    # Megabytes still unread when the server closes: its error must not be lost to a connection reset.
    ("oversized-stanza-by-far", "", big_message(8 * 1024 * 1024), "policy-violation"),
    ("comment", "", "<!-- a comment -->", "restricted-xml"),
    ("processing-instruction", "", "<?evil instruction?>", "restricted-xml"),
    ("entity-reference", "", "<message to='nobody@localhost'><body>&lol;</body></message>", None),
]


@pytest.mark.parametrize(
    "name, payload, expected",
    [(c[0], c[2], c[3]) for c in IN_STREAM_CASES],
    ids=[c[0] for c in IN_STREAM_CASES],
)
async def test_bad_xml_in_stream_closes_it_with_the_right_error(limits_server, bystanders, name, payload, expected):
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        await stream.open()
        await stream.send(payload)
        received = await stream.read_until_closed()
        condition = stream_error_in(received)
        if expected is None:
            # An undeclared entity is both not well-formed XML and restricted XML.
            assert condition in ("restricted-xml", "not-well-formed"), stream.received[-500:]
        else:
            assert condition == expected, f"stream error {condition!r}; bytes: {stream.received[-500:]!r}"
        assert stream.stream_closed, "stream error must be followed by </stream:stream>"
    finally:
        stream.close()
    await assert_still_chatting(*bystanders)


@pytest.mark.parametrize(
    "name, prolog",
    [
        ("dtd", "<!DOCTYPE stream:stream SYSTEM 'http://example.com/evil.dtd'>"),
        ("entity-declaration", BILLION_LAUGHS),
    ],
    ids=["dtd", "entity-declaration"],
)
async def test_dtd_before_stream_header_closes_it_with_restricted_xml(limits_server, bystanders, name, prolog):
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        await stream.send("<?xml version='1.0'?>" + prolog + STREAM_HEADER)
        received = await stream.read_until_closed()
        assert stream_error_in(received) == "restricted-xml", f"bytes: {stream.received[-500:]!r}"
        assert stream.stream_closed, "stream error must be followed by </stream:stream>"
    finally:
        stream.close()
    await assert_still_chatting(*bystanders)


async def test_garbage_instead_of_stream_header_gets_header_then_not_well_formed(limits_server, bystanders):
    """RFC 6120 §4.9.1.2: even before a header, the server opens its stream to send the error."""
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        await stream.send("HELLO? GET / HTTP/1.1\r\n\r\n")
        received = await stream.read_until_closed()
        assert stream.header is not None, f"no stream header before the error: {stream.received!r}"
        assert stream_error_in(received) == "not-well-formed", f"bytes: {stream.received[-500:]!r}"
    finally:
        stream.close()
    await assert_still_chatting(*bystanders)


async def test_stanza_before_authentication_closes_stream_with_not_authorized(limits_server, bystanders):
    alice, bob = bystanders
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        await stream.open()
        await stream.send(f"<message to='{bob.jid}' type='chat'><body>sneaky</body></message>")
        received = await stream.read_until_closed()
        assert stream_error_in(received) == "not-authorized", f"bytes: {stream.received[-500:]!r}"
    finally:
        stream.close()
    await assert_still_chatting(alice, bob)
    assert "sneaky" not in [el.findtext(q("jabber:client", "body")) for el in bob.inbox.history]


async def test_oversized_stanza_from_authenticated_user_closes_only_that_stream(limits_server, bystanders):
    alice, bob = bystanders
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        account = limits_server.new_account()
        await stream.login_plain(account)
        await stream.send(big_message(300 * 1024))
        received = await stream.read_until_closed()
        assert stream_error_in(received) == "policy-violation", f"bytes: {stream.received[-500:]!r}"
    finally:
        stream.close()
    await assert_still_chatting(alice, bob)


async def test_stanza_below_size_limit_is_delivered(bystanders):
    alice, bob = bystanders
    text = "B" * (200 * 1024)
    alice.message(bob.jid, text)
    await bob.expect(is_message(body=text, sender=alice.jid))


async def test_many_stanzas_adding_up_beyond_the_size_limit_are_fine(bystanders):
    """The limit is per stanza, not per stream."""
    alice, bob = bystanders
    chunk = "C" * (10 * 1024)
    for i in range(40):
        alice.message(bob.jid, f"{i} {chunk}")
    await bob.expect(is_message(body=f"39 {chunk}"))
    await assert_still_chatting(alice, bob)


async def test_plain_is_not_offered_before_tls_even_when_encryption_is_optional(limits_server):
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        features = await stream.open()
        assert features.find(q(NS_TLS, "starttls")) is not None, describe(features)
        assert "PLAIN" not in mechanisms_offered(features), describe(features)
    finally:
        stream.close()


async def _timed_close(stream: RawStream) -> tuple[float, str | None]:
    """Seconds until the server closed the connection, and its stream error if any."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    received = await stream.read_until_closed(timeout=AUTH_TIMEOUT + 9)
    return loop.time() - started, stream_error_in(received)


async def test_silent_connection_is_closed_after_auth_timeout(limits_server, bystanders):
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        elapsed, condition = await _timed_close(stream)
    finally:
        stream.close()
    assert elapsed >= AUTH_TIMEOUT * 0.5, f"closed after {elapsed:.2f}s, before the auth timeout"
    assert condition in (None, "connection-timeout", "policy-violation"), condition
    await assert_still_chatting(*bystanders)  # logged-in sessions idle that long are kept


async def test_unauthenticated_stream_is_closed_after_auth_timeout(limits_server, bystanders):
    stream = await RawStream.connect(limits_server.c2s_port)
    try:
        await stream.open()
        elapsed, condition = await _timed_close(stream)
    finally:
        stream.close()
    assert elapsed >= AUTH_TIMEOUT * 0.5, f"closed after {elapsed:.2f}s, before the auth timeout"
    # If an error is given, it names the timeout.
    assert condition in (None, "connection-timeout", "policy-violation"), condition
    await assert_still_chatting(*bystanders)
