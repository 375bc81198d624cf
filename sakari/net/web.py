"""What the web transports share: whether a request arrived over TLS, and where a browser finds them.

A browser on the same machine (the quick start at http://localhost:5280/)
and a browser behind a TLS-terminating reverse proxy both have a confidential
channel without TLS on our port, so their streams may authenticate. A proxy
is believed only when its address is configured (``http.trusted_proxies``):
``X-Forwarded-Proto`` and ``X-Forwarded-For`` from anyone else are ignored,
and a loopback peer that forwards someone else's request (an unconfigured
proxy on this machine) does not count as local.

XEP-0156 discovery (``/.well-known/host-meta`` and ``host-meta.json``) tells
clients the WebSocket and BOSH addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from aiohttp import web

from sakari.config import declare
from sakari.net.throttle import address_key, ip_networks

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _url(value: Any) -> str | None:
    if value and not str(value).startswith(("http://", "https://")):
        return "must start with http:// or https://"
    return None


HTTP_TLS = declare(
    "http.tls", False, "Serve the HTTP port over TLS with the server's certificate (needed for browsers on other machines "
    "unless a TLS-terminating proxy is in front).",
)
TRUSTED_PROXIES = declare(
    "http.trusted_proxies",
    [],
    "Addresses or networks (\"10.0.0.5\", \"10.0.0.0/24\") of reverse proxies that terminate TLS in front of the HTTP port. "
    "Their X-Forwarded-Proto and X-Forwarded-For headers are believed; anyone else's are ignored.",
    ip_networks,
)
PUBLIC_URL = declare(
    "http.public_url",
    "",
    "The address browsers reach the HTTP port at (\"https://chat.example.org\"), for discovery (XEP-0156) and upload "
    "links. Empty: taken from each request's Host header.",
    _url,
)

WEBSOCKET_PATH = "/xmpp-websocket"
BOSH_PATH = "/http-bind"
CORS_ANY = {"Access-Control-Allow-Origin": "*"}


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text) if text else None
    except ValueError:
        return None
    # On a dual-stack socket an IPv4 peer shows as ::ffff:a.b.c.d; judge it as the IPv4 address it is.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _last(header: str | None) -> str:
    # The hop nearest to us is the one our proxy wrote; earlier ones may come from the client.
    return header.rsplit(",", 1)[-1].strip().lower() if header else ""


@dataclass(frozen=True, slots=True)
class WebOrigin:
    """Judges where requests come from, by the configured proxies."""

    proxies: tuple[IPNetwork, ...] = ()
    public_url: str = ""

    @classmethod
    def from_lists(cls, proxies: Sequence[str], public_url: str = "") -> WebOrigin:
        return cls(tuple(ipaddress.ip_network(p, strict=False) for p in proxies), public_url.rstrip("/"))

    def _via_proxy(self, request: web.BaseRequest) -> bool:
        peer = _ip(request.remote)
        return peer is not None and any(peer in net for net in self.proxies)

    def is_secure(self, request: web.BaseRequest) -> bool:
        """TLS on our port, TLS at a trusted proxy, or a browser on this machine."""
        if request.secure:
            return True
        if self._via_proxy(request):
            if _last(request.headers.get("X-Forwarded-Proto")) == "https":
                return True
            client = _ip(_last(request.headers.get("X-Forwarded-For")))
            return client is not None and client.is_loopback
        return self._this_machine(request)

    def _this_machine(self, request: web.BaseRequest) -> bool:
        """A browser on this machine, not a proxy on it relaying someone else."""
        peer = _ip(request.remote)
        forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
        return peer is not None and peer.is_loopback and not forwarded and not self._via_proxy(request)

    def client_address(self, request: web.BaseRequest) -> str:
        """The client's address as the abuse limits count it: the one our trusted proxy saw, else the peer's."""
        text = _last(request.headers.get("X-Forwarded-For")) if self._via_proxy(request) else request.remote
        return address_key(text)

    def tls_here(self, request: web.BaseRequest) -> bool:
        """TLS ends on our own port, so the certificate's channel binding holds."""
        return request.secure

    def base_url(self, request: web.BaseRequest) -> str:
        """The address the browser reached us at: http.public_url, except for a browser on this machine, whose page
        is at the address it typed (``serve --public``'s http://localhost:5280/ beside its https://<address>:5281/;
        a certificate for the network's address is not one it trusts)."""
        if self.public_url and not self._this_machine(request):
            return self.public_url
        https = request.secure or (self._via_proxy(request) and _last(request.headers.get("X-Forwarded-Proto")) == "https")
        return f"{'https' if https else 'http'}://{request.host}"


class HostMeta:
    """XEP-0156 §3: the connection methods, as XRD and as JSON, readable from any origin (CORS)."""

    WEBSOCKET = "urn:xmpp:alt-connections:websocket"
    BOSH = "urn:xmpp:alt-connections:xbosh"

    def __init__(self, origin: WebOrigin) -> None:
        self.origin = origin

    def links(self, request: web.BaseRequest) -> list[tuple[str, str]]:
        base = self.origin.base_url(request)
        ws_base = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
        return [(self.WEBSOCKET, ws_base + WEBSOCKET_PATH), (self.BOSH, base + BOSH_PATH)]

    async def xrd(self, request: web.Request) -> web.Response:
        links = "".join(f"<Link rel={quoteattr(rel)} href={quoteattr(href)}/>" for rel, href in self.links(request))
        body = f"<?xml version='1.0' encoding='utf-8'?><XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>{links}</XRD>"
        return web.Response(text=body, content_type="application/xrd+xml", headers=CORS_ANY)

    async def json(self, request: web.Request) -> web.Response:
        links = [{"rel": rel, "href": href} for rel, href in self.links(request)]
        return web.json_response({"links": links}, headers=CORS_ANY)
