"""XEP-0199 from the server's side: a silent session is pinged; one that answers stays,
one that does not is dropped with connection-timeout (and its contacts see it leave)."""

import pytest

from raw_xmpp import RawStream, stream_error_in
from sm_client import NS_SM, SmClient
from xmpp_harness import NS_CLIENT, describe, q

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


SM_CONFIG = CONFIG + """
[modules]
enabled = ["roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking",
           "contact_info", "smacks"]
"""


@pytest.fixture(scope="module")
def ping_sm_server(spawn_server):
    with spawn_server("ping-sm-server", SM_CONFIG, accounts=4) as srv:
        yield srv


async def test_a_session_with_stream_management_that_ignores_pings_loses_its_connection_not_itself(ping_sm_server):
    """A phone that went silent (a dead network) keeps its session for resumption, as after any cut."""
    account = ping_sm_server.new_account()
    client = await SmClient.login(ping_sm_server, account)
    enabled = await client.enable()
    await client.send("<presence/>")
    ping = await next_ping(client.stream)
    assert ping.get("type") == "get"
    rest = await client.stream.read_until_closed(timeout=10)
    assert stream_error_in(rest) == "connection-timeout"
    resumed = await client.resume(ping_sm_server, account, enabled.get("id"), 0)
    assert resumed.tag == q(NS_SM, "resumed"), describe(resumed)
    client.close()
