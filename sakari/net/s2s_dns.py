"""Where a remote domain's XMPP server is: the static host map, then DNS (RFC 6120 §3.2, XEP-0368).

``_xmpps-server._tcp`` (direct TLS) and ``_xmpp-server._tcp`` (STARTTLS)
SRV records are merged and tried in priority order, weighted at random
within a priority (RFC 2782), direct TLS first among equals (XEP-0368 §3);
a domain with neither is tried itself on port 5269. A lone "." target
means the domain offers no such service (RFC 2782).

A ``.onion`` domain (a Tor onion service) is never looked up: DNS has no answer for it, and asking would tell the
resolver which onion service the server talks to. It is reached on port 5269 (or its host map entry) through
the SOCKS5 proxy of ``s2s.tor_proxy``, which takes the name itself.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

log = logging.getLogger("sakari.s2s")

DEFAULT_PORT = 5269
DIRECT_TLS_PREFIX = "tls:"  # in s2s.host_map: connect with TLS from the first byte


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    direct_tls: bool = False


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    target: Target


def is_onion(domain: str) -> bool:
    return domain.rstrip(".").lower().endswith(".onion")


def parse_host_map(table: dict[str, str]) -> dict[str, Target]:
    """``{"example.org": "192.0.2.1:5269", "example.net": "tls:192.0.2.2:5270"}`` → targets (``tls:``: direct TLS,
    XEP-0368); raises ValueError naming a bad entry."""
    out: dict[str, Target] = {}
    for domain, where in table.items():
        direct_tls = where.startswith(DIRECT_TLS_PREFIX)
        host, sep, port_text = where.removeprefix(DIRECT_TLS_PREFIX).rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{domain} = {where!r}: give \"address:port\" or \"tls:address:port\"")
        out[domain.lower()] = Target(host.strip("[]"), int(port_text), direct_tls)
    return out


def order(records: Iterable[SrvRecord], rng: random.Random | None = None) -> list[Target]:
    """RFC 2782 order: by priority, then by weighted random draw within a priority."""
    rng = rng or random.Random()
    by_priority: dict[int, list[SrvRecord]] = {}
    for r in records:
        by_priority.setdefault(r.priority, []).append(r)
    out: list[Target] = []
    for priority in sorted(by_priority):
        # Direct TLS first among equals (XEP-0368 §3): it saves a round trip.
        group = sorted(by_priority[priority], key=lambda r: not r.target.direct_tls)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.uniform(0, total) if total else 0
            chosen = group[0]
            for r in group:
                pick -= r.weight
                if pick <= 0:
                    chosen = r
                    break
            group.remove(chosen)
            out.append(chosen.target)
    return out


class Resolver:
    def __init__(
        self, host_map: dict[str, Target], timeout: float, nameservers: list[str] | None = None,
        tor_proxy: tuple[str, int] | None = None,
    ) -> None:
        self.host_map = host_map
        self.tor_proxy = tor_proxy  # (host, port) of the SOCKS5 proxy for .onion domains
        self._dns = dns.asyncresolver.Resolver()
        if nameservers:
            self._dns.nameservers = nameservers
        self._dns.lifetime = timeout

    async def targets(self, domain: str) -> list[Target]:
        mapped = self.host_map.get(domain)
        if mapped is not None:
            return [mapped]
        if is_onion(domain):
            return [Target(domain, DEFAULT_PORT)]  # for the Tor proxy, which resolves it; never DNS
        records: list[SrvRecord] = []
        refused = False
        for service, direct_tls in (("_xmpps-server._tcp.", True), ("_xmpp-server._tcp.", False)):
            try:
                answer = await self._dns.resolve(service + domain, "SRV")
            except dns.exception.DNSException as e:
                log.debug("event=srv-lookup-failed service=%s domain=%s reason=%s", service, domain, e.__class__.__name__)
                continue
            for r in answer:
                if r.target == dns.name.root:
                    refused = True
                    continue
                records.append(SrvRecord(r.priority, r.weight, Target(r.target.to_text(omit_final_dot=True), r.port, direct_tls)))
        if records:
            return order(records)
        return [] if refused else [Target(domain, DEFAULT_PORT)]

    async def addresses(self, host: str) -> list[str]:
        """The IPv6 and IPv4 addresses of a target, asked of the same DNS servers as its SRV record; a literal
        address is itself. None found: the host name itself, for the system's resolver (e.g. /etc/hosts)."""
        if is_onion(host):
            return []  # only the Tor proxy can reach it; DNS must never be asked
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        found: list[str] = []
        for rdtype in ("AAAA", "A"):
            try:
                answer = await self._dns.resolve(host, rdtype)
            except dns.exception.DNSException:
                continue
            found.extend(r.to_text() for r in answer)
        return found or [host]
