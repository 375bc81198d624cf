"""Support for the test_peer_* files: scripted exchanges in the style of
Prosody's scansion scripts (spec/scansion/*.scs), over raw XML streams.

Each ``Character`` is one client connection (a ``RawStream``: STARTTLS,
SASL PLAIN, bind). ``receives`` takes the *next* stanza that client got and
matches it against an expected stanza with scansion's rules, as its
documentation states them:

- non-strict (the default for elements in the stream's default namespace,
  jabber:client): every expected attribute is present with the same value
  (``ANY`` accepts any value); every expected child matches a distinct child
  of the received element, in any order; extra attributes and children are
  ignored; expected text, when there is some, is equal;
- strict (the default for every other namespace, i.e. payloads): the same
  attributes and no others, the same children in the same order and no
  others, the same text;
- ``s:strict='true'`` / ``s:strict='false'`` on an expected element
  overrides its default (scansion's ``scansion:strict``).

As in scansion, a stanza that arrives before the expected one is a failure,
not something to skip over. Whatever arrives after the last expectation is
not looked at. This file also holds the tests of the matcher itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import xml.etree.ElementTree as ET

from raw_xmpp import RawStream
from sakari_process import Account, SakariServer
from xmpp_harness import NS_CLIENT, WAIT, describe

#: Namespace of the ``s:strict`` marker in expected stanzas.
NS_MARK = "urn:sakari:test:scansion"
#: An attribute value that accepts anything (scansion's ``{scansion:any}``).
ANY = "{any}"

_STRICT = f"{{{NS_MARK}}}strict"
_WRAP_OPEN = f"<wrap xmlns='{NS_CLIENT}' xmlns:s='{NS_MARK}'>"


def parse_expected(xml: str) -> ET.Element:
    """An expected stanza written in the jabber:client default namespace."""
    wrapper = ET.fromstring(_WRAP_OPEN + xml + "</wrap>")
    children = list(wrapper)
    assert len(children) == 1, f"expected exactly one stanza in {xml!r}"
    return children[0]


def _is_strict(expected: ET.Element) -> bool:
    mark = expected.get(_STRICT)
    if mark is not None:
        return mark != "false"
    return not expected.tag.startswith(f"{{{NS_CLIENT}}}")


def _text(el: ET.Element) -> str:
    """Text content; whitespace-only text (script indentation) counts as none."""
    text = el.text or ""
    return "" if not text.strip() else text


def mismatch(expected: ET.Element, received: ET.Element, path: str = "") -> str | None:
    """Why ``received`` does not match ``expected`` (scansion's rules), or None."""
    here = f"{path}/{expected.tag}"
    if expected.tag != received.tag:
        return f"{path}: expected element {expected.tag}, got {received.tag}"
    strict = _is_strict(expected)
    wanted = {k: v for k, v in expected.attrib.items() if k != _STRICT}
    for name, value in wanted.items():
        if name not in received.attrib:
            return f"{here}: attribute {name!r} missing (expected {value!r})"
        if value != ANY and received.get(name) != value:
            return f"{here}: attribute {name!r} is {received.get(name)!r}, expected {value!r}"
    if strict:
        extra = sorted(set(received.attrib) - set(wanted))
        if extra:
            return f"{here}: unexpected attributes {extra} (strict match)"
    exp_text, got_text = _text(expected), _text(received)
    if (strict or exp_text) and exp_text != got_text:
        return f"{here}: text is {got_text!r}, expected {exp_text!r}"
    exp_children, got_children = list(expected), list(received)
    if strict:
        if [c.tag for c in exp_children] != [c.tag for c in got_children]:
            return (f"{here}: children are {[c.tag for c in got_children]}, "
                    f"expected exactly {[c.tag for c in exp_children]} in that order (strict match)")
        for e, r in zip(exp_children, got_children):
            problem = mismatch(e, r, here)
            if problem:
                return problem
        return None
    unused = list(got_children)
    for e in exp_children:
        problems = []
        for r in unused:
            problem = mismatch(e, r, here)
            if problem is None:
                unused.remove(r)
                break
            problems.append(problem)
        else:
            why = "; ".join(problems) if problems else "no such child at all"
            return f"{here}: no child matches expected {e.tag} ({why})"
    return None


class Character:
    """One scripted client connection (scansion's ``[Client]``).

    Stanzas are read as they arrive, as scansion's event loop does. Scansion
    compares a stanza with an expectation only while a ``receives`` of that
    client is waiting; a stanza that finds none is dropped unexamined. Here,
    what a client has received but not examined when the script turns to
    another client's ``receives`` (or connects, disconnects) is set aside
    likewise, into ``Cast.unchecked`` for the failure report. What arrives
    while the script waits on another client is kept and examined, which is
    as strict as scansion or stricter (scansion examines it only if it is
    read after the awaited stanza).
    """

    def __init__(self, cast: Cast, name: str, account: Account, resource: str | None = None):
        self.cast = cast
        self.name = name
        self.server = cast.server
        self.account = account
        self.resource = resource or f"scansion-{secrets.token_hex(4)}"
        self.stream: RawStream | None = None
        self.full_jid = ""
        self._inbox: list[ET.Element] = []
        self._arrived = asyncio.Event()
        self._closed = False
        self._reader: asyncio.Task | None = None

    @property
    def bare_jid(self) -> str:
        return self.account.jid

    def _attend(self) -> None:
        previous = self.cast.attention
        if previous is not self:
            if previous is not None:
                previous._set_aside()
            self.cast.attention = self

    def _set_aside(self) -> None:
        self.cast.unchecked.extend((self.name, el) for el in self._inbox)
        self._inbox.clear()

    async def _read(self) -> None:
        assert self.stream is not None
        while True:
            try:
                el = await self.stream.next_element(timeout=3600)
            except AssertionError as e:  # unparseable XML (or an hour of silence)
                self.cast.unchecked.append((self.name, ET.Element("unreadable", {"error": str(e)[:300]})))
                el = None
            if el is None:
                self._closed = True
                self._arrived.set()
                return
            self._inbox.append(el)
            self._arrived.set()

    async def connects(self) -> None:
        self._attend()
        self.stream = await RawStream.connect(self.server.c2s_port)
        self.full_jid = await self.stream.login_plain(self.account, self.resource)
        self._reader = asyncio.create_task(self._read())

    async def sends(self, xml: str) -> None:
        """Sending does not move the script's attention: scansion's send does not wait."""
        assert self.stream is not None, f"{self.name} is not connected"
        await self.stream.send(xml)

    async def receives(self, xml: str, timeout: float = WAIT) -> ET.Element:
        """The next stanza this client gets (and has not set aside) must match ``xml``."""
        assert self.stream is not None, f"{self.name} is not connected"
        self._attend()
        expected = parse_expected(xml)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._inbox:
                got = self._inbox.pop(0)
                break
            assert not self._closed, f"{self.name}: stream closed while waiting for\n    {xml.strip()}"
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise AssertionError(
                    f"{self.name} waited {timeout}s for\n    {xml.strip()}\n  and got nothing; {self.cast.report()}"
                ) from None
        problem = mismatch(expected, got)
        assert problem is None, (
            f"{self.name} received\n    {describe(got)}\n  but the script expects\n    {xml.strip()}\n  {problem}"
            f"\n  {self.cast.report()}"
        )
        return got

    async def disconnects(self) -> None:
        """Close the stream as a client does and wait for the server to close its side."""
        if self.stream is None:
            return
        self._attend()
        await self.stream.send("</stream:stream>")
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), WAIT)
        self.abort()

    def abort(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class Cast:
    """The characters of one test, and where the script's attention is."""

    def __init__(self, server: SakariServer):
        self.server = server
        self.characters: list[Character] = []
        self.attention: Character | None = None
        #: (character name, stanza) set aside unexamined, as scansion would have dropped them.
        self.unchecked: list[tuple[str, ET.Element]] = []

    def client(self, name: str, account: Account | None = None, resource: str | None = None) -> Character:
        c = Character(self, name, account or self.server.new_account(), resource)
        self.characters.append(c)
        return c

    def report(self) -> str:
        if not self.unchecked:
            return "nothing was set aside unexamined"
        lines = "\n    ".join(f"{who}: {describe(el)}" for who, el in self.unchecked)
        return f"set aside unexamined (not read before the script turned to another client):\n    {lines}"

    def close(self) -> None:
        for c in self.characters:
            c.abort()


@contextlib.contextmanager
def cast_on(server: SakariServer):
    """A Cast whose connections end with the block; for a test's fixture:

        @pytest_asyncio.fixture
        async def cast(server):
            with cast_on(server) as c:
                yield c
    """
    c = Cast(server)
    try:
        yield c
    finally:
        c.close()
        if c.unchecked:  # shown with -rP: what scansion would not have looked at either
            print(c.report())


# -- the matcher itself ------------------------------------------------------


def _matches(expected: str, received: str) -> str | None:
    return mismatch(parse_expected(expected), parse_expected(received))


def test_stanza_level_match_ignores_extra_attributes_and_children():
    assert _matches(
        "<presence from='a@b/c'/>",
        "<presence from='a@b/c' to='a@b' xml:lang='en'><x xmlns='vcard-temp:x:update'/></presence>",
    ) is None


def test_expected_attribute_must_be_present_and_equal_unless_any():
    assert _matches("<iq id='x' type='result'/>", "<iq id='y' type='result'/>")
    assert _matches("<iq type='result'/>", "<iq id='y'/>")
    assert _matches(f"<iq id='{ANY}'/>", "<iq id='y'/>") is None


def test_payload_is_strict_about_attributes_children_order_and_text():
    roster = "<iq><query xmlns='jabber:iq:roster' ver='{any}'><item jid='n@l' subscription='none'/></query></iq>"
    assert _matches(roster, "<iq><query xmlns='jabber:iq:roster' ver='3'><item jid='n@l' subscription='none'/></query></iq>") is None
    # an extra attribute on a payload element
    assert _matches(roster, "<iq><query xmlns='jabber:iq:roster' ver='3'><item jid='n@l' subscription='none' name='N'/></query></iq>")
    # an extra payload child
    assert _matches(roster, "<iq><query xmlns='jabber:iq:roster' ver='3'><item jid='n@l' subscription='none'/><item jid='m@l' subscription='none'/></query></iq>")
    # children in another order
    assert _matches(
        "<iq><q xmlns='u:x'><a/><b/></q></iq>", "<iq><q xmlns='u:x'><b/><a/></q></iq>"
    )
    # text
    assert _matches("<iq><q xmlns='u:x'>Goodbye</q></iq>", "<iq><q xmlns='u:x'>Bye</q></iq>")
    assert _matches("<iq><q xmlns='u:x'/></iq>", "<iq><q xmlns='u:x'>text</q></iq>")


def test_strict_marker_overrides_the_default():
    assert _matches(
        "<iq><q xmlns='u:x' s:strict='false'><a/></q></iq>", "<iq><q xmlns='u:x' extra='1'><b/><a/></q></iq>"
    ) is None
    assert _matches("<iq><q xmlns='u:x'><v s:strict='false'/></q></iq>", "<iq><q xmlns='u:x'><v>1.2</v></q></iq>") is None
    assert _matches("<presence s:strict='true'/>", "<presence><status/></presence>")


def test_non_strict_children_match_in_any_order_but_each_only_once():
    assert _matches("<message><body>hi</body></message>", "<message><thread>t</thread><body>hi</body></message>") is None
    assert _matches("<message><body>hi</body></message>", "<message><body>ho</body></message>")
    assert _matches("<m><a xmlns='u:x'/><a xmlns='u:x'/></m>", "<m><a xmlns='u:x'/></m>")
