"""Abuse limits, kept in memory only: login back-off, connections per address, stanza rates per account.

- **Login back-off.** Failed logins are counted per client address and per account. Past a few free
  failures each further one doubles the time the address (or the account) must wait before its next
  attempt, up to a ceiling. An attempt made while waiting is refused at once with a SASL
  ``<temporary-auth-failure/>`` and a text saying how long to wait; no password is checked, so
  guessing gets slower, never faster. The per-account back-off does not lock the real user out:
  an address that logged in to the account since the server started, and a FAST token (which only
  the user's own devices hold), pass it; only the address back-off applies to them.
- **Connections per address**: how many may be open at once and how many may open per second.
- **Stanzas per account**: a token bucket shared by the account's connections; past it, reading
  from them slows down (shaping: nothing is dropped).

Addresses are never written anywhere: they live in these dictionaries, which forget an address a while
after its last failure or connection. IPv6 addresses are counted per /64, the block one subscriber
usually gets, so that an attacker cannot start afresh with each of its addresses.
"""

from __future__ import annotations

import functools
import ipaddress
import weakref
from time import monotonic as _now
from dataclasses import dataclass, field
from typing import Any

from sakari.config import Config, declare, non_negative, positive

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORGET = 3600.0  # seconds after its last failure that an address or account starts afresh
MAX_ENTRIES = 100_000  # per table: a flood of addresses costs bounded memory (the oldest are forgotten first)


def ip_networks(value: Any) -> str | None:
    """Validates a list of addresses or networks ("10.0.0.5", "10.0.0.0/24")."""
    for text in value:
        try:
            ipaddress.ip_network(text, strict=False)
        except (ValueError, TypeError):
            return f"holds {text!r}, which is not an IP address or network such as 10.0.0.5 or 10.0.0.0/24"
    return None


AUTH_FREE = declare(
    "limits.auth_free_failures", 3,
    "Failed logins from one address before it must wait; each further failure doubles the wait.", positive,
)
AUTH_ACCOUNT_FREE = declare(
    "limits.auth_account_free_failures", 10,
    "Failed logins on one account (from any address) before new addresses must wait to try it. An address the "
    "user logged in from since the server started, and FAST token logins, are not held back.", positive,
)
AUTH_BACKOFF = declare("limits.auth_backoff", 1.0, "Seconds of the first wait after the free failures.", positive)
AUTH_BACKOFF_MAX = declare("limits.auth_backoff_max", 300.0, "Longest wait between login attempts, in seconds.", positive)
CONNECTIONS_PER_IP = declare(
    "limits.connections_per_ip", 100,
    "Client connections one address may hold open at once (a school behind one NAT address needs many). 0: no limit.",
    non_negative,
)
CONNECTION_RATE = declare(
    "limits.connection_rate", 5.0, "New client connections per second one address may open, after a burst. 0: no limit.",
    non_negative,
)
CONNECTION_BURST = declare("limits.connection_burst", 30, "New connections one address may open at once.", positive)
STANZA_RATE = declare(
    "limits.stanza_rate", 30.0,
    "Stanzas per second one account may send over all its connections after a burst; beyond it the server reads "
    "its connections more slowly (nothing is dropped). 0: no limit.", non_negative,
)
STANZA_BURST = declare("limits.stanza_burst", 300, "Stanzas one account may send at once (a login with many rooms).", positive)
LOG_IP = declare(
    "log_ip", False,
    "Write client addresses into the log (one line per connection, naming its id). Off: log lines name a "
    "connection by a random id and never carry an address. 'sakari serve --log-ip' turns it on.",
)
EXEMPT = declare(
    "limits.exempt_networks", [],
    "Addresses or networks (\"127.0.0.1\", \"10.0.0.0/8\") to which none of the limits on logins, connections and "
    "stanza rates apply: a bridge or a trusted gateway. An IPv6 address exempts its /64. Loopback is not exempt unless "
    "listed here.", ip_networks,
)


@functools.lru_cache(maxsize=4096)  # every connection asks, parsing costs more than the rest of the accept path
def address_key(text: str | None) -> str:
    """What limits count an address under: an IPv4 address, or an IPv6 /64 (IPv4-mapped ones as IPv4)."""
    try:
        address = ipaddress.ip_address(text) if text else None
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address) if address is not None else ""


class _Failures:
    __slots__ = ("count", "until", "last")

    def __init__(self) -> None:
        self.count = 0
        self.until = 0.0  # no attempt before this time
        self.last = 0.0


class Backoff:
    """Failure counts with exponential back-off, by key."""

    def __init__(self, free: int, base: float, ceiling: float) -> None:
        self.free = free
        self.base = base
        self.ceiling = ceiling
        self.entries: dict[str, _Failures] = {}  # oldest failure first: the one forgotten when the table is full

    def wait(self, key: str, now: float) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        entry = self.entries.get(key)
        if entry is None:
            return 0.0
        if now - entry.last > FORGET and now >= entry.until:
            del self.entries[key]
            return 0.0
        return max(0.0, entry.until - now)

    def failed(self, key: str, now: float) -> None:
        entry = self.entries.pop(key, None)
        if entry is None or (now - entry.last > FORGET and now >= entry.until):
            entry = _Failures()
        entry.count += 1
        entry.last = now
        beyond = entry.count - self.free  # from the last free one on, each failure doubles the wait
        if beyond >= 0:
            entry.until = now + min(self.ceiling, self.base * 2 ** min(beyond, 30))
        self.entries[key] = entry  # to the end: the most recently failing are forgotten last
        if len(self.entries) > MAX_ENTRIES:
            del self.entries[next(iter(self.entries))]

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)


class LoginThrottle:
    """Back-off per address and per account, and the addresses each account logged in from (since start)."""

    def __init__(self, free: int, account_free: int, base: float, ceiling: float) -> None:
        self.addresses = Backoff(free, base, ceiling)
        self.accounts = Backoff(account_free, base, ceiling)
        # (account, address) pairs that logged in: exempt from the account's back-off, so that guessing at an
        # account from elsewhere does not lock its owner out. Bounded like the failure tables.
        self.known: dict[tuple[str, str], None] = {}

    def wait(self, address: str, account: str, token: bool = False) -> float:
        """Seconds before ``address`` may try to log in to ``account``; 0: go ahead. A FAST ``token`` login
        waits only for the address."""
        now = _now()
        delay = self.addresses.wait(address, now)
        if not token and (account, address) not in self.known:
            delay = max(delay, self.accounts.wait(account, now))
        return delay

    def failed(self, address: str, account: str) -> None:
        now = _now()
        self.addresses.failed(address, now)
        self.accounts.failed(account, now)

    def succeeded(self, address: str, account: str) -> None:
        # Neither count is reset: logging in to an account of one's own must not reset a guesser's count, nor the
        # owner's logins the count of a guessing spread over many addresses (the owner's address is known now).
        self.known.pop((account, address), None)
        self.known[(account, address)] = None
        if len(self.known) > MAX_ENTRIES:
            del self.known[next(iter(self.known))]


class _Bucket:
    """A token bucket; slotted with a weak reference so that a table of them frees those nobody uses."""

    __slots__ = ("tokens", "time", "__weakref__")

    def __init__(self, tokens: float, time: float) -> None:
        self.tokens = tokens
        self.time = time


def _take(bucket: _Bucket, rate: float, burst: float, amount: float, now: float) -> float:
    """Take ``amount`` from ``bucket``; returns the deficit in seconds (0: within the rate)."""
    tokens = min(burst, bucket.tokens + (now - bucket.time) * rate) - amount
    bucket.tokens, bucket.time = tokens, now
    return -tokens / rate if tokens < 0 else 0.0


class ConnectionGate:
    """Open connections and new connections per second, per address."""

    def __init__(self, concurrent: int, rate: float, burst: int) -> None:
        self.concurrent = concurrent
        self.rate = rate
        self.burst = burst
        self.open: dict[str, int] = {}
        self.buckets: dict[str, _Bucket] = {}

    def admit(self, address: str) -> str | None:
        """Counts a new connection from ``address``; or the reason it is refused (then it is not counted)."""
        if self.concurrent and self.open.get(address, 0) >= self.concurrent:
            return f"too many connections from your address (at most {self.concurrent})"
        if self.rate:
            now = _now()
            bucket = self.buckets.get(address)
            if bucket is None:
                if len(self.buckets) >= MAX_ENTRIES:
                    self._sweep(now)
                bucket = self.buckets[address] = _Bucket(float(self.burst), now)
            if _take(bucket, self.rate, self.burst, 1.0, now):
                bucket.tokens += 1.0  # a refused connection costs nothing: it was never made
                return f"too many new connections from your address (at most {self.rate:g} per second)"
        self.open[address] = self.open.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        count = self.open.get(address, 0) - 1
        if count > 0:
            self.open[address] = count
        else:
            self.open.pop(address, None)

    def _sweep(self, now: float) -> None:
        """Forget buckets that have filled up again: they hold nothing a new one would not."""
        full = [a for a, b in self.buckets.items() if b.tokens + (now - b.time) * self.rate >= self.burst]
        for address in full:
            del self.buckets[address]
        while len(self.buckets) >= MAX_ENTRIES:
            del self.buckets[next(iter(self.buckets))]


class StanzaShaper:
    """One token bucket per account, shared by its connections while any holds it."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: weakref.WeakValueDictionary[str, _Bucket] = weakref.WeakValueDictionary()

    def bucket(self, account: str) -> _Bucket | None:
        """The account's bucket (None: no limit). A connection keeps it while it lives."""
        if not self.rate:
            return None
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = _Bucket(float(self.burst), _now())
        return bucket

    def delay(self, bucket: _Bucket, stanzas: int, now: float) -> float:
        """Seconds to stop reading after ``stanzas`` more stanzas of the account."""
        return _take(bucket, self.rate, self.burst, stanzas, now)


@dataclass(slots=True)
class Abuse:
    """The limits one server's client connections share. The defaults limit nothing (tests, tools)."""

    logins: LoginThrottle | None = None
    gate: ConnectionGate | None = None
    shaper: StanzaShaper = field(default_factory=lambda: StanzaShaper(0.0, 1))
    exempt: tuple[Network, ...] = ()
    log_ip: bool = False  # write client addresses into the log (serve --log-ip)
    _exempt_seen: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)  # address -> is_exempt

    @classmethod
    def from_config(cls, config: Config) -> Abuse:
        return cls(
            logins=LoginThrottle(config[AUTH_FREE], config[AUTH_ACCOUNT_FREE], config[AUTH_BACKOFF], config[AUTH_BACKOFF_MAX]),
            gate=ConnectionGate(config[CONNECTIONS_PER_IP], config[CONNECTION_RATE], config[CONNECTION_BURST]),
            shaper=StanzaShaper(config[STANZA_RATE], config[STANZA_BURST]),
            exempt=tuple(ipaddress.ip_network(n, strict=False) for n in config[EXEMPT]),
            log_ip=config[LOG_IP],
        )

    def is_exempt(self, address: str) -> bool:
        """Whether ``address`` (a key of :func:`address_key`) is in an exempt network; unknown ones are not. An IPv6
        key is a /64, exempt when it holds an exempt address or network: limits count the /64 as one client."""
        if not address or not self.exempt:
            return False
        seen = self._exempt_seen.get(address)
        if seen is None:
            if len(self._exempt_seen) >= 4096:  # bounded: many addresses are a reason to limit, not to remember
                self._exempt_seen.clear()
            network = ipaddress.ip_network(address, strict=False)
            seen = self._exempt_seen[address] = any(
                network.version == n.version and network.overlaps(n) for n in self.exempt  # type: ignore[arg-type]
            )
        return seen
