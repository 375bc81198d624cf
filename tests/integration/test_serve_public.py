"""``sakari serve --public``: listens beyond loopback, prints this machine's addresses and an invitation that works
from another device on the network (here: this machine's own non-loopback address)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from sakari.net.addresses import public_addresses
from sakari_process import HOST, SakariServer
from web_clients import WebSocketClient
from xmpp_harness import NS_CLIENT, insecure_tls_context, login, q

UPLOAD = "urn:xmpp:http:upload:0"


class PublicServer(SakariServer):
    def serve_args(self) -> list[str]:
        args = super().serve_args()
        at = args.index("--bind")
        return [*args[:at], *args[at + 2:], "--public"]  # no --bind: --public chooses


@pytest.fixture
def public_server(tmp_path):
    if not any(a.version == 4 for a in public_addresses()):
        pytest.skip("this machine has no IPv4 address beyond loopback")
    srv = PublicServer(tmp_path / "data", name="public")
    srv.start()
    yield srv
    srv.ensure_stopped()


async def test_public_serving_prints_the_addresses_and_an_invitation_a_phone_can_open(public_server):
    log = "\n".join(public_server.log)
    address = str(public_addresses()[0])
    assert f"  {address}" in log
    match = re.search(r"Invitation for one account, valid one day: (https://\S+/invite/(\S+))", log)
    assert match is not None, log
    link, token = match.groups()
    # As with Prosody: HTTPS on its own port, the HTTP port plain.
    assert link == f"https://{address}:{public_server.https_port}/invite/{token}"
    assert f"xmpp:localhost?register;preauth={token}" in log
    async with aiohttp.ClientSession() as http:
        # Another device on the network opens the link over TLS and may register in its browser.
        async with http.get(link, ssl=insecure_tls_context()) as page:
            text = await page.text()
            assert page.status == 200 and "<svg" in text and "name='password'" in text
        # Over plain HTTP from another machine the page takes no password: it says to use https or an app.
        plain = f"http://{address}:{public_server.http_port}"
        async with http.get(f"{plain}/invite/{token}") as page:
            text = await page.text()
            assert page.status == 200 and "<svg" in text and "name='password'" not in text and "over https://" in text
        # The plain port is where a phone that does not trust the CA yet fetches it, as the start says.
        assert f"This server's CA, for devices to trust: {plain}/ca.crt" in log
        async with http.get(f"{plain}/ca.crt") as ca:
            assert ca.status == 200 and (await ca.read()).startswith(b"-----BEGIN CERTIFICATE-----")


async def test_public_serving_gives_apps_https_slots_and_this_machines_browser_its_own_address(public_server):
    address = str(public_addresses()[0])
    app = await login(public_server, public_server.new_account())
    web = await WebSocketClient.connect(public_server)  # a browser on this machine, at http://localhost:<http_port>/
    try:
        assert await slot(app.iq) == f"https://{address}:{public_server.https_port}/upload/"
        await web.login(public_server.new_account())

        async def web_iq(type_: str, payload: str, to: str):
            await web.send(f"<iq xmlns='{NS_CLIENT}' type='{type_}' id='slot' to='{to}'>{payload}</iq>")
            return await web.inbox.wait_for(lambda el: el.get("id") == "slot", "the slot")

        assert await slot(web_iq) == f"http://{HOST}:{public_server.http_port}/upload/"
    finally:
        app.abort()
        await web.close()


async def slot(iq) -> str:
    """The address part of an upload slot's URL, up to /upload/."""
    result = await iq("get", f"<request xmlns='{UPLOAD}' filename='a.txt' size='1' content-type='text/plain'/>", to="upload.localhost")
    url = result.find(f".//{q(UPLOAD, 'put')}").get("url")
    return url[: url.index("/upload/") + len("/upload/")]
