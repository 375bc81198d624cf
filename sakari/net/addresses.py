"""This machine's network addresses, read from the kernel's interface table (no packet is sent to find them).

``serve --public`` prints them so that phones on the same network know
where to connect. Loopback and link-local addresses are left out: nobody
else can use them.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address
IF_INET6 = Path("/proc/net/if_inet6")  # Linux: one IPv6 address per line, in hex, with its interface

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ipv4() -> list[IPAddress]:
    found: list[IPAddress] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            found.append(ipaddress.IPv4Address(answer[20:24]))
    return found


def _ipv6() -> list[IPAddress]:
    try:
        lines = IF_INET6.read_text().splitlines()
    except OSError:
        return []
    return [ipaddress.IPv6Address(bytes.fromhex(line.split()[0])) for line in lines if line.split()]


def public_addresses() -> list[IPAddress]:
    """Addresses others can reach this machine at: IPv4 first, no loopback or link-local, no duplicates."""
    seen: list[IPAddress] = []
    for address in _ipv4() + _ipv6():
        if not (address.is_loopback or address.is_link_local or address.is_unspecified) and address not in seen:
            seen.append(address)
    return seen
