"""XEP-0215 external service discovery against a real server, and the TURN credentials it hands out
used for a real allocation on Debian's coturn, started on loopback with a shared secret."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import time

import pytest

from bridge_peers import Peer, port_open, require_debian
from sakari.settings import DEFAULT_MODULES
from sakari_process import HOST, free_ports
from xmpp_harness import q

NS_EXTDISCO = "urn:xmpp:extdisco:2"
SECRET = "coturn-shared-secret-for-tests"


class Coturn(Peer):
    """Debian's coturn in the foreground: TURN REST credentials only, loopback only, no TLS, no CLI."""

    name = "coturn"

    def start(self, port: int) -> None:
        binary = require_debian("turnserver", "coturn")
        self.spawn([
            binary, "-n", f"--listening-ip={HOST}", f"--listening-port={port}", f"--relay-ip={HOST}",
            "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=localhost", "--no-tls", "--no-dtls",
            "--no-cli", "--allow-loopback-peers", "--log-file=stdout", "--simple-log",
            f"--pidfile={self.workdir / 'turnserver.pid'}",
        ])
        self.wait_ready(lambda: port_open(port), timeout=30)


@pytest.fixture(scope="module")
def turn_port(tmp_path_factory):
    (port,) = free_ports(1)
    coturn = Coturn(tmp_path_factory.mktemp("coturn"))
    try:
        coturn.start(port)
        yield port
    finally:
        coturn.stop()


@pytest.fixture(scope="module")
def calls_server(spawn_server, turn_port):
    config = (
        f"[modules]\nenabled = {list(DEFAULT_MODULES) + ['extdisco']!r}\n\n"
        f'[extdisco]\nturn_host = "{HOST}"\nturn_port = {turn_port}\nturn_tls_port = 5349\n'
        f'turn_secret = "{SECRET}"\nturn_ttl = 600\n'
    )
    with spawn_server("extdisco", config) as srv:
        yield srv


def services_of(el) -> list[dict[str, str]]:
    return [dict(s.attrib) for s in el.iter(q(NS_EXTDISCO, "service"))]


def allocate(port: int, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """coturn's own test client: two allocations that relay packets to each other (-y)."""
    return subprocess.run(
        ["turnutils_uclient", "-y", "-n", "2", "-m", "1", "-u", username, "-w", password, "-p", str(port), HOST],
        check=False, capture_output=True, text=True, timeout=60,
    )


async def test_a_user_gets_stun_and_turn_with_credentials_that_coturn_accepts(calls_server, turn_port, session_for):
    client = await session_for(calls_server).login()
    reply = await client.iq("get", f"<services xmlns='{NS_EXTDISCO}'/>", to="localhost")
    services = services_of(reply)
    kinds = [(s["type"], s["port"], s["transport"]) for s in services]
    assert kinds == [("stun", str(turn_port), "udp"), ("turn", str(turn_port), "udp"), ("turn", str(turn_port), "tcp"),
                     ("turns", "5349", "tcp")]
    turn = services[1]
    expiry, name = turn["username"].split(":")
    assert abs(int(expiry) - (time.time() + 600)) < 60 and turn["restricted"] == "1"
    assert datetime.datetime.fromisoformat(turn["expires"]).timestamp() == int(expiry)
    assert client.account.localpart not in name  # coturn's logs see a pseudonym
    done = await asyncio.to_thread(allocate, turn_port, turn["username"], turn["password"])
    assert done.returncode == 0, done.stdout[-2000:]
    refused = await asyncio.to_thread(allocate, turn_port, turn["username"], "not-the-password")
    assert refused.returncode != 0 and "Cannot complete Allocation" in refused.stdout


async def test_services_by_type_and_fresh_credentials_for_a_named_service(calls_server, turn_port, session_for):
    client = await session_for(calls_server).login()
    reply = await client.iq("get", f"<services xmlns='{NS_EXTDISCO}' type='stun'/>", to="localhost")
    assert [s["type"] for s in services_of(reply)] == ["stun"] and "username" not in services_of(reply)[0]
    reply = await client.iq(
        "get", f"<credentials xmlns='{NS_EXTDISCO}'><service host='{HOST}' type='turn' port='{turn_port}'/></credentials>",
        to="localhost",
    )
    (service,) = services_of(reply)
    assert service["type"] == "turn" and service["password"]
    condition, _ = await client.iq_error(
        "get", f"<credentials xmlns='{NS_EXTDISCO}'><service host='elsewhere.example' type='turn'/></credentials>",
        to="localhost",
    )
    assert condition == "item-not-found"
    condition, _ = await client.iq_error("get", f"<credentials xmlns='{NS_EXTDISCO}'/>", to="localhost")
    assert condition == "bad-request"
