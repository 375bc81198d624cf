"""Which web requests count as secure, and the addresses discovery gives, by the configured proxies."""

from __future__ import annotations

import ssl
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from sakari.net.web import HostMeta, WebOrigin


def request(peer: str, headers: dict[str, str] | None = None, tls: bool = False):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 40000) if name == "peername" else default
    return make_mocked_request(
        "GET", "/", headers={"Host": "chat.example.org", **(headers or {})}, transport=transport,
        sslcontext=ssl.create_default_context() if tls else None,
    )


@pytest.mark.parametrize(
    "peer, headers, tls, secure",
    [
        ("127.0.0.1", {}, False, True),
        ("::1", {}, False, True),
        ("::ffff:127.0.0.1", {}, False, True),  # IPv4 loopback on a dual-stack socket
        ("192.0.2.7", {}, False, False),
        ("192.0.2.7", {}, True, True),
        ("192.0.2.7", {"X-Forwarded-Proto": "https"}, False, False),  # not a configured proxy
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, False, False),  # an unconfigured local proxy
        ("10.0.0.5", {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}, False, True),
        ("10.0.0.5", {"X-Forwarded-Proto": "https, http"}, False, False),  # only the proxy's own value counts
        ("10.0.0.5", {"X-Forwarded-Proto": "http", "X-Forwarded-For": "127.0.0.1"}, False, True),
        ("10.0.0.5", {"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.9"}, False, False),
    ],
)
def test_secure_requests(peer, headers, tls, secure):
    origin = WebOrigin.from_lists(["10.0.0.0/24"])
    assert origin.is_secure(request(peer, headers, tls)) is secure


def test_discovery_uses_the_public_url_when_set_and_the_scheme_the_proxy_saw_otherwise():
    behind_proxy = request("10.0.0.5", {"X-Forwarded-Proto": "https"})
    links = dict(HostMeta(WebOrigin.from_lists(["10.0.0.5"])).links(behind_proxy))
    assert links[HostMeta.WEBSOCKET] == "wss://chat.example.org/xmpp-websocket"
    assert links[HostMeta.BOSH] == "https://chat.example.org/http-bind"
    fixed = dict(HostMeta(WebOrigin.from_lists([], "http://example.net:8080/")).links(behind_proxy))
    assert fixed[HostMeta.WEBSOCKET] == "ws://example.net:8080/xmpp-websocket"


def test_a_browser_on_this_machine_is_at_the_address_it_typed_even_with_a_public_url():
    # serve --public: phones use https://<address>:5281, this machine's browser http://localhost:5280.
    origin = WebOrigin.from_lists(["10.0.0.5"], "https://192.0.2.7:5281")
    local = make_mocked_request("GET", "/", headers={"Host": "localhost:5280"}, transport=_peer("127.0.0.1"))
    assert origin.base_url(local) == "http://localhost:5280"
    assert origin.base_url(request("192.0.2.9")) == "https://192.0.2.7:5281"
    assert origin.base_url(request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"})) == "https://192.0.2.7:5281"
    assert origin.base_url(request("10.0.0.5", {"X-Forwarded-Proto": "https"})) == "https://192.0.2.7:5281"


def _peer(address: str):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (address, 40000) if name == "peername" else default
    return transport
