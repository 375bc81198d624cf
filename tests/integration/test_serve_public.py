"""``sakari serve --public``: listens beyond loopback, prints this machine's addresses and an invitation that works
from another device on the network (here: this machine's own non-loopback address)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from sakari.net.addresses import public_addresses
from sakari_process import SakariServer
from xmpp_harness import insecure_tls_context


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
    assert link == f"https://{address}:{public_server.http_port}/invite/{token}"
    assert f"xmpp:localhost?register;preauth={token}" in log
    # Another device on the network opens the link over TLS and may register in its browser.
    async with aiohttp.ClientSession() as http, http.get(link, ssl=insecure_tls_context()) as page:
        text = await page.text()
        assert page.status == 200 and "<svg" in text and "name='password'" in text
        # Plain HTTP is not served at all on the port: passwords never cross the network in the clear.
        with pytest.raises(aiohttp.ClientError):
            async with http.get(link.replace("https://", "http://")) as plain:
                await plain.read()
