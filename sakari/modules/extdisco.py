"""XEP-0215 External Service Discovery: the STUN and TURN servers that audio and video calls need.

- §3.1 ``<services/>`` (optionally of one ``type``) lists a STUN service and TURN services, per
  transport, at ``extdisco.turn_host``; TURN ones carry short-lived credentials. §3.3
  ``<credentials/>`` gives fresh credentials for a named TURN service.
- The credentials follow the shared-secret scheme that coturn implements (``use-auth-secret``,
  draft-uberti-behave-turn-rest): the username is ``<expiry unix time>:<name>``, the password
  base64(HMAC-SHA1(secret, username)). The TURN server checks them without asking Sakari. The
  name is a pseudonym of the account (keyed by the secret), so the TURN server's logs and quotas
  see a stable name per user and never an address.
- Only this server's users get an answer: a relay costs bandwidth, and the credentials are
  valid for anyone who holds them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
from typing import Any

from sakari.config import declare, port, positive
from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.util import payload, utc_stamp
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_EXTDISCO = "urn:xmpp:extdisco:2"

TURN_HOST = declare(
    "extdisco.turn_host", "", "Name of the STUN/TURN server for calls (coturn; docs/calls.md). Empty: no services.",
)
TURN_PORT = declare("extdisco.turn_port", 3478, "Port of STUN and TURN over UDP and TCP.", port)
TURN_TLS_PORT = declare("extdisco.turn_tls_port", 0, "Port of TURN over TLS (coturn's tls-listening-port, "
                        "usually 5349). 0: not offered.", port)
TURN_SECRET = declare(
    "extdisco.turn_secret", "", "The secret shared with the TURN server (coturn's static-auth-secret). Empty: only "
    "STUN is offered.",
)
TURN_TTL = declare("extdisco.turn_ttl", 86400, "Seconds TURN credentials handed out stay valid.", positive)


def _transports(value: Any) -> str | None:
    return None if set(value) <= {"udp", "tcp"} else "lists 'udp' and/or 'tcp'"


TURN_TRANSPORTS = declare(
    "extdisco.turn_transports", ["udp", "tcp"], "Transports of TURN offered on turn_port.", _transports,
)


def turn_credentials(secret: str, name: str, expires: int) -> tuple[str, str]:
    """coturn's REST scheme: (username, password) valid until ``expires`` (unix time)."""
    username = f"{expires}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def pseudonym(secret: str, account: str) -> str:
    """A stable name per account that does not reveal it (nor, without the secret, link it to one)."""
    digest = hmac.new(secret.encode(), b"sakari-turn-user\0" + account.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


class ExternalServices:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod

    def _check(self, event: StanzaEvent) -> None:
        sender = event.from_jid
        if not sender.local or not self.mod.hosts.has_accounts(sender.domain):
            raise StanzaError("forbidden", "calls services are for this server's users")

    def _services(self, event: StanzaEvent) -> list[Element]:
        """Every service, TURN ones with credentials for the sender."""
        domain = event.to_jid.domain
        host = self.mod.option(TURN_HOST, host=domain)
        if not host:
            return []
        udp_tcp = self.mod.option(TURN_PORT, host=domain)
        services = [Element("service", NS_EXTDISCO, {"type": "stun", "host": host, "port": str(udp_tcp), "transport": "udp"})]
        secret = self.mod.option(TURN_SECRET, host=domain)
        if not secret:
            return services
        expires = int(time.time()) + self.mod.option(TURN_TTL, host=domain)
        username, password = turn_credentials(secret, pseudonym(secret, str(event.from_jid.bare)), expires)
        credentials = {
            "username": username, "password": password, "restricted": "1",
            "expires": utc_stamp(datetime.datetime.fromtimestamp(expires, datetime.UTC)),
        }
        offered = [("turn", udp_tcp, t) for t in self.mod.option(TURN_TRANSPORTS, host=domain)]
        tls = self.mod.option(TURN_TLS_PORT, host=domain)
        if tls:
            offered.append(("turns", tls, "tcp"))
        for type_, number, transport in offered:
            attrs = {"type": type_, "host": host, "port": str(number), "transport": transport, **credentials}
            services.append(Element("service", NS_EXTDISCO, attrs))
        return services

    def services(self, event: StanzaEvent) -> Element:
        self._check(event)
        wanted = payload(event).attrs.get("type")
        answer = Element("services", NS_EXTDISCO, {"type": wanted} if wanted else None)
        for service in self._services(event):
            if wanted in (None, service.attrs["type"]):
                answer.append(service)
        return answer

    def credentials(self, event: StanzaEvent) -> Element:
        """§3.3: fresh credentials for the service the client names by host and type (and port, if given)."""
        self._check(event)
        asked = payload(event).find("service")
        if asked is None:
            raise StanzaError("bad-request", "name the service: <service host='…' type='…'/>")
        want = {k: asked.attrs[k] for k in ("host", "type", "port") if k in asked.attrs}
        matching = [s for s in self._services(event) if "username" in s.attrs
                    and all(s.attrs.get(k) == v for k, v in want.items())]
        if not matching:
            raise StanzaError("item-not-found", "no service with credentials by that name")
        answer = Element("credentials", NS_EXTDISCO)
        answer.append(matching[0])
        return answer


def setup(mod: ModuleAPI) -> None:
    services = ExternalServices(mod)
    mod.add_feature(NS_EXTDISCO)
    mod.hook(f"iq-get/host/{NS_EXTDISCO}:services", services.services)
    mod.hook(f"iq-get/host/{NS_EXTDISCO}:credentials", services.credentials)
