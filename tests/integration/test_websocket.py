"""XMPP over WebSocket (RFC 7395) and discovery (XEP-0156) on the HTTP port, against a real server."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import aiohttp
import pytest

from sakari_process import HOST
from web_clients import NS_FRAMING, OPEN, WebSocketClient, mechanisms, wait_closed
from xmpp_harness import NS_STREAM_ERRORS, insecure_tls_context, is_message, q


@pytest.fixture
async def web(server):
    clients: list[WebSocketClient] = []

    async def connect(headers: dict[str, str] | None = None, target=server) -> WebSocketClient:
        client = await WebSocketClient.connect(target, headers)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


async def test_websocket_user_and_tcp_user_chat_both_ways(xmpp, web):
    tcp = await xmpp.login()
    browser = await web()
    account = xmpp.account()
    await browser.login(account)

    await browser.message(tcp.bare, "hello from the browser")
    got = await tcp.inbox.wait_for(is_message(body="hello from the browser"))
    assert got.get("from") == browser.jid

    tcp.message(browser.jid, "hello from TCP")
    reply = await browser.inbox.wait_for(is_message(body="hello from TCP", sender=tcp.jid))
    # Each message is a document of its own: the stanza declares jabber:client itself (RFC 7395 §3.3).
    assert reply.tag == "{jabber:client}message"


async def test_loopback_browser_may_authenticate_without_tls(web):
    features = await (await web()).open()
    assert "PLAIN" in mechanisms(features) and "SCRAM-SHA-256" in mechanisms(features)
    assert features.find(q("urn:ietf:params:xml:ns:xmpp-tls", "starttls")) is None, "no STARTTLS on a WebSocket"


async def test_request_relayed_by_an_unconfigured_proxy_is_not_secure(web):
    # A proxy on this machine relaying someone else's request: loopback, but not the user's own machine.
    features = await (await web({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})).open()
    assert mechanisms(features) == [], ET.tostring(features)


async def test_trusted_proxy_decides_by_its_forwarded_proto(make_server, web):
    srv = make_server('[http]\ntrusted_proxies = ["127.0.0.1"]\n', name="proxied")
    behind_tls = await (await web({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, srv)).open()
    assert "SCRAM-SHA-256" in mechanisms(behind_tls)
    # Only the proxy's own (last) value counts: the client may have sent an earlier one.
    plain_http = await (await web({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https, http"}, srv)).open()
    assert mechanisms(plain_http) == []


async def test_client_close_is_answered_with_close(web):
    client = await web()
    await client.open()
    await client.send(f"<close xmlns='{NS_FRAMING}'/>")
    await client.expect(NS_FRAMING, "close")
    await wait_closed(client)


async def test_binary_message_ends_the_stream_with_an_error(web):
    client = await web()
    await client.ws.send_bytes(OPEN.encode())
    error = await client.expect("http://etherx.jabber.org/streams", "error")
    assert error.find(q(NS_STREAM_ERRORS, "not-well-formed")) is not None
    await client.expect(NS_FRAMING, "close")


async def test_websocket_without_the_xmpp_subprotocol_is_refused(server):
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"http://{HOST}:{server.http_port}/xmpp-websocket", protocols=("chat",))
    assert refused.value.status == 400


async def test_host_meta_lists_websocket_and_bosh_for_any_origin(server):
    base = f"http://{HOST}:{server.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/.well-known/host-meta", headers={"Origin": "https://elsewhere.example"}) as resp:
            assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
            xrd = ET.fromstring(await resp.text())
        async with http.get(f"{base}/.well-known/host-meta.json") as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            links = {link["rel"]: link["href"] for link in (await resp.json())["links"]}
    ns = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}"
    xrd_links = {link.get("rel"): link.get("href") for link in xrd.iter(f"{ns}Link")}
    assert xrd_links == links == {
        "urn:xmpp:alt-connections:websocket": f"ws://{HOST}:{server.http_port}/xmpp-websocket",
        "urn:xmpp:alt-connections:xbosh": f"http://{HOST}:{server.http_port}/http-bind",
    }


async def test_http_responses_name_no_software_versions(server):
    async with aiohttp.ClientSession() as http:
        for path in ("/health", "/no-such-page"):
            async with http.get(f"http://{HOST}:{server.http_port}{path}") as resp:
                assert resp.headers["Server"] == "Sakari", path


async def test_http_port_over_tls_offers_channel_binding_and_wss(make_server):
    srv = make_server("[http]\ntls = true\n", name="https", accounts=1)
    client = await WebSocketClient.connect(srv, tls=True)
    try:
        features = await client.open()
        assert "SCRAM-SHA-256-PLUS" in mechanisms(features), "TLS ends on our port: the certificate binds the channel"
    finally:
        await client.close()
    async with aiohttp.ClientSession() as http:
        url = f"https://{HOST}:{srv.http_port}/.well-known/host-meta.json"
        async with http.get(url, ssl=insecure_tls_context()) as resp:
            links = {link["rel"]: link["href"] for link in (await resp.json())["links"]}
    assert links["urn:xmpp:alt-connections:websocket"] == f"wss://{HOST}:{srv.http_port}/xmpp-websocket"


async def test_shutdown_closes_websocket_streams_with_system_shutdown(make_server):
    srv = make_server(name="ws-shutdown", accounts=1)
    client = await WebSocketClient.connect(srv)
    try:
        await client.login(srv.new_account())
        stopping = asyncio.ensure_future(asyncio.to_thread(srv.stop))
        error = await client.expect("http://etherx.jabber.org/streams", "error")
        assert error.find(q(NS_STREAM_ERRORS, "system-shutdown")) is not None
        await client.expect(NS_FRAMING, "close")
        assert await stopping == 0
    finally:
        await client.close()
