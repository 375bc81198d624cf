"""XEP-0199 from the server's side: a silent session is pinged; one that answers stays,
one that does not is dropped with connection-timeout (and its contacts see it leave)."""

import pytest

from raw_xmpp import RawStream, stream_error_in
from xmpp_harness import NS_CLIENT, q

pytestmark = pytest.mark.asyncio

NS_PING = "urn:xmpp:ping"
CONFIG = """
[c2s]
ping_interval = 1
ping_timeout = 1
"""


@pytest.fixture(scope="module")
def ping_server(spawn_server):
    with spawn_server("ping-server", CONFIG, accounts=4) as srv:
        yield srv


async def logged_in(server) -> RawStream:
    stream = await RawStream.connect(server.c2s_port)
    await stream.login_plain(server.new_account())
    await stream.send("<presence/>")
    return stream


async def next_ping(stream: RawStream):
    while True:
        el = await stream.next_element(timeout=10)
        assert el is not None, "the stream closed before any ping came"
        if el.tag == q(NS_CLIENT, "iq") and el.find(q(NS_PING, "ping")) is not None:
            return el


async def test_silent_session_that_answers_pings_stays(ping_server):
    stream = await logged_in(ping_server)
    for _ in range(2):
        ping = await next_ping(stream)
        assert ping.get("type") == "get" and ping.get("from") == "localhost"
        await stream.send(f"<iq type='result' id='{ping.get('id')}' to='localhost'/>")
    await stream.send("<iq type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>")
    while True:
        el = await stream.next_element(timeout=10)
        assert el is not None, "the server dropped a session that answered its pings"
        if el.get("id") == "still":
            assert el.get("type") == "result"
            break
    stream.close()


async def test_session_that_ignores_pings_is_dropped_with_connection_timeout(ping_server):
    stream = await logged_in(ping_server)
    await next_ping(stream)
    rest = await stream.read_until_closed(timeout=10)
    assert stream_error_in(rest) == "connection-timeout"
