"""Fuzzing the stanza handlers: stanzas from a grammar of what Sakari's default modules handle (iq get/set with
payloads in their namespaces, messages, presence, random attributes and children) go from a bound client into
a real in-process Server (router, modules, SQLite storage; no sockets). Every iq is answered (a result or an
error), no handler fails with a traceback in the log, the stream stays open and the server goes on answering."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from sakari.config import Config
from sakari.credentials import derive
from sakari.net.c2s import C2SConnection
from sakari.server import Server
from sakari.stream.c2s import State

DOMAIN = "localhost"
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)

# (namespace, payload element) of the requests the default modules answer, and a few they do not.
PAYLOADS = [
    ("jabber:iq:roster", "query"), ("http://jabber.org/protocol/disco#info", "query"),
    ("http://jabber.org/protocol/disco#items", "query"), ("vcard-temp", "vCard"), ("jabber:iq:private", "query"),
    ("urn:xmpp:blocking", "block"), ("urn:xmpp:blocking", "unblock"), ("urn:xmpp:blocking", "blocklist"),
    ("jabber:iq:last", "query"), ("urn:xmpp:time", "time"), ("urn:xmpp:ping", "ping"), ("jabber:iq:version", "query"),
    ("urn:xmpp:mam:2", "query"), ("urn:xmpp:mam:2", "prefs"), ("urn:xmpp:mam:2", "metadata"),
    ("urn:xmpp:carbons:2", "enable"), ("urn:xmpp:carbons:2", "disable"),
    ("http://jabber.org/protocol/pubsub", "pubsub"), ("http://jabber.org/protocol/pubsub#owner", "pubsub"),
    ("http://jabber.org/protocol/muc#admin", "query"), ("http://jabber.org/protocol/muc#owner", "query"),
    ("jabber:iq:register", "query"), ("http://jabber.org/protocol/commands", "command"),
    ("urn:xmpp:extdisco:2", "services"), ("urn:xmpp:extdisco:2", "credentials"),
    ("urn:xmpp:http:upload:0", "request"), ("urn:xmpp:push:0", "enable"), ("urn:xmpp:push:0", "disable"),
    ("http://jabber.org/protocol/bytestreams", "query"), ("urn:ietf:params:xml:ns:vcard-4.0", "vcard"),
    ("jabber:iq:privacy", "query"), ("urn:ietf:params:xml:ns:xmpp-session", "session"),
    ("urn:ietf:params:xml:ns:xmpp-bind", "bind"), ("urn:xmpp:invite", "invite"), ("urn:example:unknown", "q"),
]
CHILD_NAMESPACES = ["jabber:x:data", "http://jabber.org/protocol/rsm", "urn:xmpp:reporting:1", "urn:xmpp:sid:0",
                    "http://jabber.org/protocol/muc#user", "http://jabber.org/protocol/pubsub#publish-options",
                    "urn:xmpp:forward:0", "urn:xmpp:bookmarks:1", "storage:bookmarks", "urn:xmpp:avatar:metadata",
                    "eu.siacs.conversations.axolotl", "urn:xmpp:hints", "urn:xmpp:message-retract:1",
                    "urn:xmpp:fasten:0", "urn:xmpp:message-moderate:1", "urn:xmpp:reactions:0", "urn:xmpp:receipts",
                    "http://jabber.org/protocol/chatstates", "urn:xmpp:chat-markers:0", "urn:xmpp:mucsub:0"]
CHILD_NAMES = ["item", "items", "publish", "retract", "subscribe", "unsubscribe", "options", "configure", "create",
               "delete", "purge", "affiliations", "affiliation", "subscriptions", "field", "value", "x", "set", "max",
               "before", "after", "index", "first", "last", "jid", "group", "reason", "destroy", "invite", "decline",
               "password", "username", "remove", "storage", "conference", "nick", "FN", "PHOTO", "BINVAL", "TYPE",
               "publish-options", "actions", "note", "text", "report", "service", "node", "query", "body", "always",
               "never", "forwarded", "message", "moderate", "apply-to", "reaction", "reactions", "request", "active",
               "displayed", "received", "store", "no-store", "origin-id", "stanza-id", "thread", "subject", "show",
               "status", "priority", "c", "data", "info", "list", "device", "header", "pubsub", "filename", "size"]
ATTR_NAMES = ["jid", "node", "id", "name", "subscription", "ask", "var", "type", "affiliation", "role", "nick",
              "action", "with", "start", "end", "max", "after", "before", "filename", "size", "content-type",
              "sessionid", "host", "port", "category", "item", "version", "ver", "reason", "queryid", "by", "xml:lang",
              "mechanism", "label", "publish_model", "access_model", "hash"]
VALUES = ["", "alice@localhost", "bob@localhost", "bob@localhost/r", "localhost", "conference.localhost",
          "room1@conference.localhost", "room1@conference.localhost/nick", "nobody@localhost", "remote.example",
          "pubsub.localhost", "upload.localhost", "@@", "a/b", "/", "urn:xmpp:avatar:metadata", "urn:xmpp:avatar:data",
          "eu.siacs.conversations.axolotl.devicelist", "urn:xmpp:bookmarks:1", "storage:bookmarks", "urn:xmpp:mam:2",
          "http://jabber.org/protocol/admin#add-user", "http://jabber.org/protocol/admin#delete-user",
          "http://jabber.org/protocol/rc#set-status", "1", "0", "-1", "99999999999999999999", "1e9", "NaN",
          "2026-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "not-a-date", "9999-12-31T23:59:59Z", "owner", "admin",
          "member", "outcast", "none", "moderator", "participant", "visitor", "both", "from", "to", "remove",
          "subscribe", "execute", "cancel", "complete", "next", "prev", "submit", "form", "result", "get", "set",
          "true", "false", "FORM_TYPE", "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly",
          "http://jabber.org/protocol/muc#roomconfig", "http://jabber.org/protocol/pubsub#publish-options",
          "pubsub#persist_items", "pubsub#access_model", "open", "whitelist", "presence", "current", "max", "text-single",
          "list-multi", "jid-multi", "boolean", "hidden", "image/png", "../../etc/passwd", "x" * 300, "\u00e9\u263a",
          "&amp;&lt;", "always", "never", "roster", "turn", "stun", "udp", "tcp", "spam", "abuse",
          "urn:xmpp:reporting:spam", "urn:xmpp:reporting:abuse"]
TARGETS = ["", DOMAIN, "alice@localhost", "bob@localhost", "nobody@localhost", "conference.localhost",
           "room1@conference.localhost", "room2@conference.localhost", "pubsub.localhost", "upload.localhost",
           "proxy.localhost", "remote.example", "localhost/resource", "xn--bcher-kva.example", "a@b@c", "@localhost",
           "localhost/", "\u00e9@localhost"]
MESSAGE_TARGETS = TARGETS + ["bob@localhost/r", "room1@conference.localhost/nick", "room1@conference.localhost/bob"]


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


@st.composite
def element(draw: st.DrawFn, depth: int = 0, name: str | None = None, ns: str | None = None) -> str:
    name = name or draw(st.sampled_from(CHILD_NAMES))
    attrs = draw(st.dictionaries(st.sampled_from(ATTR_NAMES), st.sampled_from(VALUES), max_size=3))
    if ns is None and draw(st.integers(0, 3)) == 0:
        ns = draw(st.sampled_from(CHILD_NAMESPACES))
    text = "".join(f" {k}='{esc(v)}'" for k, v in attrs.items()) + (f" xmlns='{ns}'" if ns else "")
    children = draw(st.lists(element(depth + 1), max_size=2)) if depth < 2 else []
    body = esc(draw(st.sampled_from(VALUES))) if draw(st.booleans()) else ""
    return f"<{name}{text}>{body}{''.join(children)}</{name}>" if children or body else f"<{name}{text}/>"


def stanza_attrs(draw: st.DrawFn, targets: list[str], types: list[str]) -> str:
    attrs = {"to": draw(st.sampled_from(targets)), "type": draw(st.sampled_from(types))}
    if draw(st.integers(0, 4)) == 0:
        attrs["xml:lang"] = draw(st.sampled_from(["en", "", "x" * 80, "de-CH"]))
    return "".join(f" {k}='{esc(v)}'" for k, v in attrs.items() if v)


# Where requests of a namespace usually go, so that half of them reach the module that handles them rather
# than a service-unavailable from an address that does not.
HOMES = {
    "http://jabber.org/protocol/muc#admin": ["room1@conference.localhost", "room2@conference.localhost"],
    "http://jabber.org/protocol/muc#owner": ["room1@conference.localhost", "room2@conference.localhost"],
    "http://jabber.org/protocol/pubsub": ["pubsub.localhost", "", "bob@localhost"],
    "http://jabber.org/protocol/pubsub#owner": ["pubsub.localhost", ""],
    "urn:xmpp:http:upload:0": ["upload.localhost"], "http://jabber.org/protocol/bytestreams": ["proxy.localhost"],
    "http://jabber.org/protocol/commands": [DOMAIN], "urn:xmpp:extdisco:2": [DOMAIN], "jabber:iq:version": [DOMAIN],
    "urn:xmpp:time": [DOMAIN], "jabber:iq:last": ["bob@localhost", DOMAIN],
}


@st.composite
def iq(draw: st.DrawFn) -> str:
    ns, name = draw(st.sampled_from(PAYLOADS))
    payload = draw(element(name=name, ns=ns))
    targets = HOMES.get(ns, [""]) if draw(st.booleans()) else TARGETS
    return f"<iq id='{{id}}'{stanza_attrs(draw, targets, ['get', 'set'])}>{payload}</iq>"


@st.composite
def message(draw: st.DrawFn) -> str:
    children = draw(st.lists(element(depth=1), max_size=3))
    body = draw(st.sampled_from(["", "<body>hi</body>", "<body>@alice hello</body>", "<subject>s</subject>"]))
    attrs = stanza_attrs(draw, MESSAGE_TARGETS, ["chat", "groupchat", "normal", "headline", "error", ""])
    return f"<message{attrs}>{body}{''.join(children)}</message>"


@st.composite
def presence(draw: st.DrawFn) -> str:
    children = draw(st.lists(element(depth=1), max_size=3))
    muc = "<x xmlns='http://jabber.org/protocol/muc'/>" if draw(st.booleans()) else ""
    attrs = stanza_attrs(draw, MESSAGE_TARGETS, ["", "unavailable", "subscribe", "subscribed", "unsubscribe",
                                                  "unsubscribed", "probe", "error"])
    return f"<presence{attrs}>{muc}{''.join(children)}</presence>"


stanza = st.one_of(iq(), iq(), message(), presence())


class Transport(asyncio.Transport):
    """A client connection that keeps what the server writes and never fills up (a loopback client: no limits)."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.out += data

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:  # as a socket would: the protocol hears of it (the server's stop waits for that)
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


async def bound_client(server: Server, user: str) -> tuple[C2SConnection, Transport]:
    conn = C2SConnection(server.port, direct_tls=False)
    transport = Transport(conn)
    conn.connection_made(transport)
    conn.data_received(HEADER)
    # SASL is fuzzed on its own (test_fuzz_sasl.py): continue from the restart after it.
    conn.stream.user = user
    conn.stream._restart()
    conn.data_received(HEADER)
    assert conn.stream.state is State.BIND
    conn.data_received(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource>"
                       b"</bind></iq><presence/>")
    deadline = time.monotonic() + 30
    while not (conn.session is not None and server.router.resource_of(conn.session).available):
        assert time.monotonic() < deadline, f"{user} did not become available"
        await asyncio.sleep(0.001)
    return conn, transport


class Failures(logging.Handler):
    """Error records of the server (task failures, handler tracebacks), whichever logger wrote them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ANSWER = re.compile(rb"<iq\b[^>]*>")
ATTR = re.compile(rb"""([\w:-]+)=["']([^"']*)["']""")


def answered(out: bytes) -> set[str]:
    ids = set()
    for tag in ANSWER.findall(out):
        attrs = dict(ATTR.findall(tag))
        if attrs.get(b"type") in (b"result", b"error"):
            ids.add(attrs.get(b"id", b"").decode())
    return ids


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, Server, C2SConnection, Transport, Failures]]:
    loop = asyncio.new_event_loop()
    failures = Failures()
    logging.getLogger().addHandler(failures)
    config = Config({
        "data_dir": str(tmp_path), "network.c2s_port": 0, "network.c2s_tls_port": 0, "network.http_port": 0,
        "network.https_port": 0, "c2s.require_encryption": False, "limits.c2s_rate_bytes": 0,
        "limits.exempt_networks": ["127.0.0.0/8"], "s2s.enabled": False, "proxy65.port": 0, "scram_iterations": 4096,
    })
    server = Server(config)

    async def setup() -> tuple[C2SConnection, Transport]:
        await server.start()
        for user in ("alice", "bob"):
            await server.storage.accounts.create(f"{user}@{DOMAIN}", derive("pw-" + user, 64))
        await bound_client(server, "bob")
        return await bound_client(server, "alice")

    try:
        conn, transport = loop.run_until_complete(setup())
        yield loop, server, conn, transport, failures
        loop.run_until_complete(server.stop())
    finally:
        logging.getLogger().removeHandler(failures)
        loop.close()


async def exchange(conn: C2SConnection, transport: Transport, stanzas: list[str], first: int) -> None:
    """Send the stanzas (iqs numbered from ``first``), then a ping to the server; wait for every iq's answer."""
    ids = [f"fz{first + i}" for i in range(len(stanzas) + 1)]
    texts = [s.replace("{id}", ident) if "{id}" in s else s for s, ident in zip(stanzas, ids)]
    texts.append(f"<iq type='get' id='{ids[-1]}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
    expected = {ident for s, ident in zip(stanzas + ["{id}"], ids) if "{id}" in s}
    transport.out.clear()
    conn.data_received("".join(texts).encode())
    deadline = time.monotonic() + 20
    while not expected <= answered(bytes(transport.out)):
        assert conn.stream.state is not State.CLOSED, f"the stream ended: {bytes(transport.out)[-600:]!r}"
        assert time.monotonic() < deadline, (
            f"unanswered: {sorted(expected - answered(bytes(transport.out)))} of {texts}")
        await asyncio.sleep(0.002)


def test_stanza_handlers_answer_every_iq_and_log_no_failure(world: Any) -> None:
    loop, server, conn, transport, failures = world
    counter = iter(range(0, 10**9, 100))

    @fuzz(100)
    @given(stanzas=st.lists(stanza, min_size=1, max_size=4))
    def check(stanzas: list[str]) -> None:
        loop.run_until_complete(exchange(conn, transport, stanzas, next(counter)))
        assert not failures.records, [failures.format(r) for r in failures.records][:3]

    check()
