"""Harness for Sakari's integration tests.

Three tools, each used the way a real peer would use the server:

- ``SakariServer`` (sakari_process.py): a real ``python -m sakari serve``
  subprocess on ephemeral ports with its own data dir.
- ``Client``: a logged-in slixmpp client that records every stanza it receives,
  in arrival order, so a test can wait for an event (never a fixed sleep) and
  can check what did *not* arrive before a later "barrier" stanza.
- ``RawStream`` (in raw_xmpp.py): an XML stream written and read by hand, for what a
  well-behaved client library never sends (garbage, DTDs, huge stanzas,
  SCRAM channel binding that slixmpp does not implement).

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import xml.etree.ElementTree as ET
from typing import Callable
from xml.sax.saxutils import escape, quoteattr

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.util.sasl.mechanisms import SCRAM
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

from sakari_process import DOMAIN, Account, SakariServer

#: Safety net on every wait for an event. Events normally arrive in milliseconds.
WAIT = 10.0

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

STREAM_HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    f" to='{DOMAIN}' version='1.0' xml:lang='en'>"
)


def q(ns: str, name: str) -> str:
    """An ElementTree tag in Clark notation."""
    return f"{{{ns}}}{name}"


# --------------------------------------------------------------------------
# slixmpp quirk: its SCRAM "Hi" is a pure-Python HMAC loop, ~100x slower than
# hashlib. Same function, same result; keeps logins fast whatever iteration
# count the server picks.
def _fast_hi(self, text, salt, iterations):
    return hashlib.pbkdf2_hmac(self.hash().name, bytes(text), salt, iterations)


SCRAM.Hi = _fast_hi


def insecure_tls_context() -> ssl.SSLContext:
    """The server's certificate is self-signed for ``localhost``: do not verify it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------------------
# Stanza helpers (plain ElementTree; slixmpp's stanza objects return '' for typos)


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def kind(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def body_of(el: ET.Element) -> str | None:
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else (b.text or "")


def presence_type(el: ET.Element) -> str:
    return el.get("type", "available")


def child_text(el: ET.Element, name: str) -> str | None:
    c = el.find(q(NS_CLIENT, name))
    return None if c is None else (c.text or "")


def error_condition(el: ET.Element) -> str | None:
    """The defined condition of a stanza error (RFC 6120 §8.3), or None."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for c in err:
        if c.tag.startswith("{" + NS_STANZA_ERRORS + "}") and kind(c) != "text":
            return kind(c)
    return "<no condition>"


def stream_error_condition(el: ET.Element) -> str | None:
    for c in el:
        if c.tag.startswith("{" + NS_STREAM_ERRORS + "}") and kind(c) != "text":
            return kind(c)
    return None


def _from_matches(el: ET.Element, sender: str | None) -> bool:
    if sender is None:
        return True
    frm = el.get("from", "")
    return frm == sender if "/" in sender else bare(frm) == sender


def is_message(body: str | None = None, sender: str | None = None, type: str | None = None) -> Callable[[ET.Element], bool]:
    def pred(el: ET.Element) -> bool:
        return (
            kind(el) == "message"
            and el.get("type") != "error"
            and (body is None or body_of(el) == body)
            and _from_matches(el, sender)
            and (type is None or el.get("type", "normal") == type)
        )

    pred.__doc__ = f"message body={body!r} from={sender!r} type={type!r}"
    return pred


def is_message_error(sender: str | None = None) -> Callable[[ET.Element], bool]:
    def pred(el: ET.Element) -> bool:
        return kind(el) == "message" and el.get("type") == "error" and _from_matches(el, sender)

    pred.__doc__ = f"message error from={sender!r}"
    return pred


def is_presence(sender: str | None = None, type: str | None = "available", show: str | None = None) -> Callable[[ET.Element], bool]:
    """type=None matches any presence type; 'available' means no type attribute."""

    def pred(el: ET.Element) -> bool:
        return (
            kind(el) == "presence"
            and _from_matches(el, sender)
            and (type is None or presence_type(el) == type)
            and (show is None or child_text(el, "show") == show)
        )

    pred.__doc__ = f"presence type={type!r} from={sender!r} show={show!r}"
    return pred


def roster_item(iq: ET.Element) -> ET.Element | None:
    query = iq.find(q(NS_ROSTER, "query"))
    if query is None:
        return None
    items = query.findall(q(NS_ROSTER, "item"))
    return items[0] if len(items) == 1 else None


def is_roster_push(jid: str | None = None, subscription: str | None = None, ask: str | None | bool = False) -> Callable[[ET.Element], bool]:
    """ask=False: don't care; ask=None: no ask attribute; ask='subscribe': that value."""

    def pred(el: ET.Element) -> bool:
        if kind(el) != "iq" or el.get("type") != "set":
            return False
        item = roster_item(el)
        return (
            item is not None
            and (jid is None or item.get("jid") == jid)
            and (subscription is None or item.get("subscription", "none") == subscription)
            and (ask is False or item.get("ask") == ask)
        )

    pred.__doc__ = f"roster push jid={jid!r} subscription={subscription!r} ask={ask!r}"
    return pred


def is_iq_set(ns: str, name: str) -> Callable[[ET.Element], bool]:
    def pred(el: ET.Element) -> bool:
        return kind(el) == "iq" and el.get("type") == "set" and el.find(q(ns, name)) is not None

    pred.__doc__ = f"iq set {{{ns}}}{name}"
    return pred


def describe(el: ET.Element) -> str:
    text = ET.tostring(el, encoding="unicode")
    return text if len(text) < 400 else text[:400] + "…"


# --------------------------------------------------------------------------
# What a client received


class Inbox:
    """Every stanza a client received, in arrival order.

    ``wait_for`` claims the first unclaimed stanza that matches, so waiting
    twice for "a message from B" returns two different messages.
    """

    def __init__(self) -> None:
        self.history: list[ET.Element] = []
        self._claimed: set[int] = set()
        self._changed = asyncio.Event()

    def put(self, el: ET.Element) -> None:
        self.history.append(el)
        self._changed.set()

    def mark(self) -> int:
        return len(self.history)

    def since(self, mark: int) -> list[ET.Element]:
        return self.history[mark:]

    def before(self, el: ET.Element, mark: int = 0) -> list[ET.Element]:
        """Stanzas received after ``mark`` and before ``el``."""
        idx = next(i for i, h in enumerate(self.history) if h is el)
        return self.history[mark:idx]

    async def wait_for(self, pred: Callable[[ET.Element], bool], what: str = "", timeout: float = WAIT, after: int = 0) -> ET.Element:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i in range(after, len(self.history)):
                if i not in self._claimed and pred(self.history[i]):
                    self._claimed.add(i)
                    return self.history[i]
            self._changed.clear()
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._changed.wait(), remaining)
            except (TimeoutError, asyncio.TimeoutError):
                got = "\n  ".join(describe(h) for h in self.history[after:][-15:]) or "(nothing)"
                raise AssertionError(
                    f"waited {timeout}s for {what or pred.__doc__ or 'a stanza'}; received meanwhile:\n  {got}"
                ) from None


class _IqSetMatcher(MatcherBase):
    def match(self, xml) -> bool:  # noqa: D102 - slixmpp API
        return xml.xml.tag == q(NS_CLIENT, "iq") and xml.xml.get("type") == "set"


class _TagMatcher(MatcherBase):
    def match(self, xml) -> bool:  # noqa: D102 - slixmpp API
        return xml.xml.tag == self._criteria


class LoginFailed(Exception):
    def __init__(self, reason: str, detail: object):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # failed_auth | stream_error | disconnected | connection_failed | timeout
        self.detail = detail  # e.g. the SASL condition 'not-authorized'


class Client:
    """A slixmpp client logged in to Sakari, recording what it receives."""

    def __init__(self, account: Account, xmpp: slixmpp.ClientXMPP, label: str):
        self.account = account
        self.xmpp = xmpp
        self.label = label
        self.inbox = Inbox()
        self.stream_errors: list[str] = []
        self.sasl_failures: list[str] = []
        self.disconnected = asyncio.get_running_loop().create_future()
        self._counter = 0

        def record(stanza) -> None:
            self.inbox.put(stanza.xml)

        def record_iq_set(stanza) -> None:
            el = stanza.xml
            self.inbox.put(el)
            # slixmpp answers roster pushes itself; answer the other pushes
            # from our own account (e.g. XEP-0191 block/unblock) with a result.
            frm = el.get("from")
            if el.find(q(NS_ROSTER, "query")) is None and (not frm or bare(frm) == account.jid or frm == DOMAIN):
                xmpp.send_raw(f"<iq type='result' id={quoteattr(el.get('id', ''))}/>")
            elif el.find(q(NS_ROSTER, "query")) is None:
                xmpp.send_raw(
                    f"<iq type='error' id={quoteattr(el.get('id', ''))} to={quoteattr(frm)}>"
                    "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                )

        xmpp.register_handler(Callback("test:message", _TagMatcher(q(NS_CLIENT, "message")), record))
        xmpp.register_handler(Callback("test:presence", _TagMatcher(q(NS_CLIENT, "presence")), record))
        xmpp.register_handler(Callback("test:iq-set", _IqSetMatcher(None), record_iq_set))
        xmpp.add_event_handler("stream_error", lambda err: self.stream_errors.append(stream_error_condition(err.xml) or "?"))

        def on_disconnected(_reason) -> None:
            if not self.disconnected.done():
                self.disconnected.set_result(True)

        xmpp.add_event_handler("disconnected", on_disconnected)

    # -- identity ----------------------------------------------------------

    @property
    def jid(self) -> str:
        """The full JID the server bound."""
        return str(self.xmpp.boundjid.full)

    @property
    def bare(self) -> str:
        return self.account.jid

    @property
    def connected(self) -> bool:
        return self.xmpp.transport is not None

    def next_id(self, prefix: str = "t") -> str:
        self._counter += 1
        return f"{prefix}-{self.label}-{self._counter}"

    # -- sending (all through slixmpp's send queue, so order is kept) -----

    def send(self, xml: str) -> None:
        self.xmpp.send(xml)

    def message(self, to: str, body: str, type: str = "chat", id: str | None = None, extra: str = "") -> str:
        mid = id or self.next_id("m")
        type_attr = f" type={quoteattr(type)}" if type else ""
        self.send(f"<message to={quoteattr(to)}{type_attr} id={quoteattr(mid)}><body>{escape(body)}</body>{extra}</message>")
        return mid

    def presence(self, to: str | None = None, type: str | None = None, priority: int | None = None,
                 show: str | None = None, status: str | None = None) -> None:
        attrs = ""
        if to:
            attrs += f" to={quoteattr(to)}"
        if type:
            attrs += f" type={quoteattr(type)}"
        inner = ""
        if show:
            inner += f"<show>{escape(show)}</show>"
        if status:
            inner += f"<status>{escape(status)}</status>"
        if priority is not None:
            inner += f"<priority>{priority}</priority>"
        self.send(f"<presence{attrs}>{inner}</presence>" if inner else f"<presence{attrs}/>")

    async def iq(self, type: str, payload: str | None = None, to: str | None = None) -> ET.Element:
        """Send an iq and return the result stanza; an error reply fails the test."""
        iq = self._build_iq(type, payload, to)
        try:
            result = await iq.send(timeout=WAIT)
        except IqError as e:
            raise AssertionError(f"expected an iq result, got error {error_condition(e.iq.xml)}: {describe(e.iq.xml)}") from None
        except IqTimeout:
            raise AssertionError(f"no reply within {WAIT}s to iq {type} {payload} to={to}") from None
        return result.xml

    async def iq_error(self, type: str, payload: str | None = None, to: str | None = None) -> tuple[str | None, ET.Element]:
        """Send an iq that must fail; return (defined condition, error stanza)."""
        iq = self._build_iq(type, payload, to)
        try:
            result = await iq.send(timeout=WAIT)
        except IqError as e:
            return error_condition(e.iq.xml), e.iq.xml
        except IqTimeout:
            raise AssertionError(f"no reply within {WAIT}s to iq {type} {payload} to={to}") from None
        raise AssertionError(f"expected an iq error, got a result: {describe(result.xml)}")

    async def iq_reply(self, type: str, payload: str | None = None, to: str | None = None) -> ET.Element:
        """Send an iq and return the reply, result or error."""
        iq = self._build_iq(type, payload, to)
        try:
            return (await iq.send(timeout=WAIT)).xml
        except IqError as e:
            return e.iq.xml
        except IqTimeout:
            raise AssertionError(f"no reply within {WAIT}s to iq {type} {payload} to={to}") from None

    def _build_iq(self, type: str, payload: str | None, to: str | None):
        iq = self.xmpp.Iq()
        iq["type"] = type
        iq["id"] = self.next_id("iq")
        if to:
            iq["to"] = to
        if payload:
            iq.append(ET.fromstring(payload))
        return iq

    async def ping_server(self) -> None:
        """A round trip: everything we sent before has been processed by the server."""
        await self.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)

    async def roster(self, ver: str | None = None) -> ET.Element:
        """Roster get; returns the iq result stanza."""
        ver_attr = "" if ver is None else f" ver={quoteattr(ver)}"
        return await self.iq("get", f"<query xmlns='{NS_ROSTER}'{ver_attr}/>")

    async def roster_items(self) -> dict[str, ET.Element]:
        result = await self.roster()
        query = result.find(q(NS_ROSTER, "query"))
        assert query is not None, f"roster result without query: {describe(result)}"
        return {item.get("jid"): item for item in query.findall(q(NS_ROSTER, "item"))}

    # -- waiting ----------------------------------------------------------

    async def expect(self, pred: Callable[[ET.Element], bool], what: str = "", after: int = 0, timeout: float = WAIT) -> ET.Element:
        return await self.inbox.wait_for(pred, what=f"{self.label} to receive {what or pred.__doc__}", after=after, timeout=timeout)

    async def expect_message(self, body: str, sender: str | None = None) -> ET.Element:
        return await self.expect(is_message(body=body, sender=sender))

    async def expect_disconnect(self, timeout: float = WAIT) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise AssertionError(f"{self.label} was not disconnected within {timeout}s") from None

    # -- leaving ----------------------------------------------------------

    async def close(self) -> None:
        """Close the stream cleanly (</stream:stream>) and wait for the TCP close."""
        if self.connected:
            self.xmpp.disconnect(wait=WAIT / 2)
            await self.expect_disconnect()

    def abort(self) -> None:
        """Drop the TCP connection without closing the stream."""
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is not None:
            self.xmpp.transport.abort()


class _ConnectingFrom:
    """The event loop for one slixmpp client, except that its connections start from a given local address
    (slixmpp's connect() takes none)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: str) -> None:
        self._loop = loop
        self._source = source

    def __getattr__(self, name: str):
        return getattr(self._loop, name)

    async def create_connection(self, *args, **kwargs):
        return await self._loop.create_connection(*args, local_addr=(self._source, 0), **kwargs)


async def login(
    server: SakariServer,
    account: Account,
    *,
    resource: str | None = "test",
    password: str | None = None,
    mechanisms: Iterable[str] | None = None,
    direct_tls: bool = False,
    roster: bool = True,
    presence: bool = True,
    priority: int | None = None,
    label: str | None = None,
    source: str | None = None,
) -> Client:
    """Connect and log in with slixmpp.

    ``source``: the local address to connect from (127.0.0.2, …: another client address to the server).

    STARTTLS on the c2s port by default, direct TLS (XEP-0368) on the c2s-tls
    port with ``direct_tls=True``. Then, like a normal client (RFC 6121 §2.2):
    fetch the roster and send initial presence, unless told not to.
    Raises ``LoginFailed`` if the session does not start.
    """
    jid = f"{account.jid}/{resource}" if resource else account.jid
    plugin_config = {}
    if mechanisms is not None:
        plugin_config["feature_mechanisms"] = {"use_mechs": list(mechanisms)}
    xmpp = slixmpp.ClientXMPP(jid, password if password is not None else account.password, plugin_config=plugin_config)
    xmpp.ssl_context = insecure_tls_context()
    # Exactly one way to connect, so connect() does not try the others.
    xmpp.enable_direct_tls = direct_tls
    xmpp.enable_starttls = not direct_tls
    xmpp.enable_plaintext = False
    xmpp.whitespace_keepalive = False
    # No automatic answers to subscription requests: tests do the dance.
    xmpp.auto_authorize = None
    xmpp.auto_subscribe = False
    client = Client(account, xmpp, label or f"{account.localpart}/{resource}")

    loop = asyncio.get_running_loop()
    outcome = loop.create_future()

    def settle(reason: str, detail: object = None) -> None:
        if not outcome.done():
            outcome.set_result((reason, detail))

    def on_failed_auth(stanza) -> None:
        condition = next((kind(c) for c in stanza.xml if kind(c) != "text"), "?")
        client.sasl_failures.append(condition)
        settle("failed_auth", condition)

    xmpp.add_event_handler("session_start", lambda _: settle("ok"))
    xmpp.add_event_handler("failed_auth", on_failed_auth)
    xmpp.add_event_handler("failed_all_auth", lambda _: settle("failed_all_auth", "no acceptable mechanism"))
    xmpp.add_event_handler("stream_error", lambda err: settle("stream_error", stream_error_condition(err.xml)))
    xmpp.add_event_handler("disconnected", lambda reason: settle("disconnected", reason))
    xmpp.add_event_handler("connection_failed", lambda err: settle("connection_failed", err))

    port = server.c2s_tls_port if direct_tls else server.c2s_port
    if source is not None:
        attempt = xmpp._attempt_connection

        async def attempt_from_source(*args):
            # Only while connecting: futures slixmpp makes later must belong to the real loop.
            xmpp._loop = _ConnectingFrom(loop, source)
            try:
                return await attempt(*args)
            finally:
                xmpp._loop = loop

        xmpp._attempt_connection = attempt_from_source
    xmpp.connect(server.host, port)
    try:
        reason, detail = await asyncio.wait_for(outcome, WAIT)
    except (TimeoutError, asyncio.TimeoutError):
        reason, detail = "timeout", f"no session within {WAIT}s"
    if reason != "ok":
        client.abort()
        raise LoginFailed(reason, detail)

    if roster:
        await client.roster()
    if presence:
        client.presence(priority=priority)
    return client


def mechanism_used(client: Client) -> str:
    return client.xmpp.plugin["feature_mechanisms"].mech.name


def tls_version(client: Client) -> str | None:
    transport = client.xmpp.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    return ssl_object.version() if ssl_object else None


async def befriend(a: Client, b: Client) -> None:
    """The full RFC 6121 §3 subscription dance, until both roster items are 'both'."""
    a.presence(to=b.bare, type="subscribe")
    await b.expect(is_presence(sender=a.bare, type="subscribe"))
    b.presence(to=a.bare, type="subscribed")
    b.presence(to=a.bare, type="subscribe")
    await a.expect(is_presence(sender=b.bare, type="subscribe"))
    a.presence(to=b.bare, type="subscribed")
    await a.expect(is_roster_push(jid=b.bare, subscription="both"))
    await b.expect(is_roster_push(jid=a.bare, subscription="both"))
