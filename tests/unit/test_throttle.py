"""The abuse limits of sakari.net.throttle, without sockets: login back-off per address and per account,
connections per address, stanza rates per account; and the stream's answer to a throttled login."""

from __future__ import annotations

import pytest

from sakari.config import Config, ConfigError
from sakari.net import throttle
from sakari.net.throttle import Abuse, Backoff, ConnectionGate, LoginThrottle, StanzaShaper, address_key
from sakari.stream.c2s import AuthFailed, NeedCredentials
from sakari.stream.sasl import SaslFailure
from test_c2s_negotiation import SASL, Client, failure_condition, plain, q, sasl, scram_login


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(throttle, "_now", lambda: self.now)


def test_backoff_waits_after_the_free_failures_and_doubles_the_wait_up_to_the_ceiling() -> None:
    backoff = Backoff(free=2, base=1.0, ceiling=8.0)
    waits = []
    for _ in range(7):
        backoff.failed("k", 0.0)
        waits.append(backoff.wait("k", 0.0))
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.wait("k", 5.0) == 3.0  # the wait runs out with time
    assert backoff.wait("other", 0.0) == 0.0


def test_backoff_forgets_a_key_an_hour_after_its_last_failure() -> None:
    backoff = Backoff(free=1, base=1.0, ceiling=8.0)
    backoff.failed("k", 0.0)
    backoff.failed("k", 1.0)
    assert backoff.wait("k", throttle.FORGET + 10) == 0.0
    assert "k" not in backoff.entries
    backoff.failed("k", throttle.FORGET + 10)
    assert backoff.wait("k", throttle.FORGET + 10) == 1.0  # counting starts afresh


def test_an_attackers_address_waits_while_the_owner_logs_in_from_another(monkeypatch: pytest.MonkeyPatch) -> None:
    Clock(monkeypatch)
    logins = LoginThrottle(free=3, account_free=10, base=1.0, ceiling=300.0)
    for _ in range(5):
        logins.failed("203.0.113.9", "alice@example.org")
    assert logins.wait("203.0.113.9", "alice@example.org") > 0
    assert logins.wait("203.0.113.9", "bob@example.org") > 0  # the address waits, whichever account it tries
    assert logins.wait("198.51.100.7", "alice@example.org") == 0.0


def test_an_account_under_attack_from_many_addresses_waits_except_for_its_owners_known_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    logins = LoginThrottle(free=3, account_free=10, base=1.0, ceiling=300.0)
    logins.succeeded("198.51.100.7", "alice@example.org")  # the owner, earlier today
    for i in range(12):
        logins.failed(f"203.0.113.{i}", "alice@example.org")  # one guess from each of many addresses
    assert logins.wait("203.0.113.200", "alice@example.org") > 0
    assert logins.wait("198.51.100.7", "alice@example.org") == 0.0
    assert logins.wait("192.0.2.1", "alice@example.org", token=True) == 0.0  # a FAST token is the owner's device
    assert logins.wait("203.0.113.200", "bob@example.org") == 0.0


def test_logging_in_resets_neither_the_count_of_the_address_nor_that_of_the_account(monkeypatch: pytest.MonkeyPatch) -> None:
    Clock(monkeypatch)
    logins = LoginThrottle(free=2, account_free=3, base=1.0, ceiling=300.0)
    for _ in range(3):
        logins.failed("203.0.113.9", "victim@example.org")
    logins.succeeded("203.0.113.9", "mallory@example.org")  # the guesser's own account
    assert logins.wait("203.0.113.9", "victim@example.org") > 0
    logins.succeeded("198.51.100.7", "victim@example.org")  # the owner, from home
    assert logins.wait("192.0.2.44", "victim@example.org") > 0  # the next guessing address still waits


def test_ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.5") == "192.0.2.5"
    assert address_key(None) == address_key("not an address") == ""


def test_connection_gate_limits_open_connections_and_their_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    gate = ConnectionGate(concurrent=3, rate=1.0, burst=2)
    assert gate.admit("a") is None and gate.admit("a") is None
    refused = gate.admit("a")
    assert refused is not None and "per second" in refused
    assert gate.admit("b") is None  # another address has its own
    clock.now += 1.0
    assert gate.admit("a") is None
    clock.now += 10.0
    refused = gate.admit("a")
    assert refused is not None and "at most 3" in refused
    gate.release("a")
    assert gate.admit("a") is None
    for _ in range(3):
        gate.release("a")
    assert "a" not in gate.open


def test_stanza_shaper_shares_one_bucket_among_an_accounts_connections() -> None:
    shaper = StanzaShaper(rate=10.0, burst=5)
    first, second = shaper.bucket("alice@example.org"), shaper.bucket("alice@example.org")
    assert first is second and first is not None
    assert shaper.delay(first, 5, first.time) == 0.0
    assert shaper.delay(second, 10, first.time) == pytest.approx(1.0)  # 10 over the burst at 10 per second
    assert StanzaShaper(rate=0.0, burst=5).bucket("alice@example.org") is None


def test_exempt_networks_cover_addresses_and_ipv6_blocks() -> None:
    abuse = Abuse(exempt=(throttle.ipaddress.ip_network("127.0.0.0/8"), throttle.ipaddress.ip_network("2001:db8::/32")))
    assert abuse.is_exempt("127.0.0.2")
    assert abuse.is_exempt("2001:db8:1:2::/64")
    assert Abuse(exempt=(throttle.ipaddress.ip_network("::1"),)).is_exempt(address_key("::1"))  # a /64 holding it
    assert not abuse.is_exempt("192.0.2.1") and not abuse.is_exempt("")


def test_limits_are_read_from_the_configuration_with_their_defaults() -> None:
    abuse = Abuse.from_config(Config.parse("[limits]\nauth_free_failures = 5\nexempt_networks = [\"10.0.0.0/8\"]\n"))
    assert abuse.logins is not None and abuse.logins.addresses.free == 5
    assert abuse.logins.accounts.free == throttle.AUTH_ACCOUNT_FREE.default
    assert abuse.is_exempt("10.1.2.3") and not abuse.log_ip
    defaults = Abuse.from_config(Config.parse(""))
    assert not defaults.is_exempt("127.0.0.1") and not defaults.is_exempt("::1/128")  # loopback is not exempt by default
    assert defaults.gate is not None and defaults.gate.concurrent == throttle.CONNECTIONS_PER_IP.default


def test_a_bad_exempt_network_is_named_in_the_configuration_error() -> None:
    with pytest.raises(ConfigError) as error:
        Config.parse("[limits]\nexempt_networks = [\"localhost\"]\n")
    assert "exempt_networks" in str(error.value) and "localhost" in str(error.value)


# --- the stream's side ---------------------------------------------------------------------------
def test_a_refused_login_gets_temporary_auth_failure_with_a_text_at_once() -> None:
    client = Client()
    client.starttls()
    assert client.send(sasl("auth", plain("juliet", "pw"), "PLAIN")) == [NeedCredentials("juliet")]
    client.after(client.stream.refuse(SaslFailure("temporary-auth-failure", "try again in 4 seconds")))
    answer = client.last()
    assert failure_condition(answer) == "temporary-auth-failure"
    assert answer.findtext(q(SASL, "text")) == "try again in 4 seconds"
    assert not any(isinstance(e, AuthFailed) for e in client.events)  # a refusal is not a failure to count


def test_a_wrong_password_is_reported_for_counting_and_a_right_one_is_not() -> None:
    client = Client()
    client.starttls()
    assert failure_condition(scram_login(client, "SCRAM-SHA-256", password="wrong")) == "not-authorized"
    assert [e for e in client.events if isinstance(e, AuthFailed)] == [AuthFailed("juliet")]
    client.events.clear()
    assert scram_login(client, "SCRAM-SHA-256").tag == q(SASL, "success")
    assert not any(isinstance(e, AuthFailed) for e in client.events)
