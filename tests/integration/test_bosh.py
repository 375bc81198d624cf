"""BOSH (XEP-0124/0206) at /http-bind against a real server, with a hand-written HTTP client."""

from __future__ import annotations

import aiohttp
import pytest

from sakari_process import HOST
from web_clients import NS_HTTPBIND, BoshClient
from xmpp_harness import is_message, q


@pytest.fixture
async def bosh(server):
    clients: list[BoshClient] = []

    def make() -> BoshClient:
        client = BoshClient.to(server)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_bosh_user_and_tcp_user_chat_both_ways(xmpp, bosh):
    tcp = await xmpp.login()
    web = bosh()
    await web.login(xmpp.account())

    await web.post(f"<message xmlns='jabber:client' to='{tcp.bare}' type='chat'><body>hello over BOSH</body></message>")
    got = await tcp.inbox.wait_for(is_message(body="hello over BOSH"))
    assert got.get("from") == web.jid

    # Pushed to the request the client keeps open.
    tcp.message(web.jid, "hello from TCP")
    await web.inbox.wait_for(is_message(body="hello from TCP", sender=tcp.jid))


async def test_session_creation_answer_describes_the_session(bosh):
    web = bosh()
    created = await web.create()
    assert created.get("sid") and created.get("requests") == "2" and created.get("wait") == "10"
    assert created.get("{urn:xmpp:xbosh}version") == "1.0" and created.get("from") == "localhost"


async def test_terminate_ends_the_session_and_its_sid(bosh):
    web = bosh()
    await web.create()
    goodbye = await web.post(type="terminate")
    assert goodbye.get("type") == "terminate"
    again = await web.post()
    assert again.get("type") == "terminate" and again.get("condition") == "item-not-found"


async def test_unknown_sid_and_malformed_bodies_are_refused(server):
    url = f"http://{HOST}:{server.http_port}/http-bind"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=f"<body xmlns='{NS_HTTPBIND}' rid='1' sid='nope'/>") as resp:
            body = await resp.text()
            assert "type='terminate'" in body and "condition='item-not-found'" in body
        async with http.post(url, data="<body xmlns='x'") as resp:
            assert "condition='bad-request'" in await resp.text()
        async with http.options(url, headers={"Origin": "https://web.example", "Access-Control-Request-Method": "POST"}) as resp:
            assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_bosh_session_may_authenticate_from_this_machine(bosh):
    features = (await bosh().create()).find(q("http://etherx.jabber.org/streams", "features"))
    mechanisms = [m.text for m in features.iter(q("urn:ietf:params:xml:ns:xmpp-sasl", "mechanism"))]
    assert "PLAIN" in mechanisms
