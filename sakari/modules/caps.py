"""XEP-0115 Entity Capabilities of clients: what each resource supports, learned from the caps in its presence.

A resource's broadcast presence names a verification string; the first time
a string is seen, the server asks that resource for its disco#info and
checks the answer against the string (§5.4). Verified feature sets are kept
by string: the string is a hash of the features, so one entry serves every
resource that announces it, on every account (a cache of content, not of
anyone's state). A resource whose answer does not match keeps its features
in its own session only. Modules read ``features(resource)`` and hook
``caps/changed`` to act when a resource's features become known or change
(PEP sends the last items of nodes it now wants, XEP-0163 §4.3.3).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.router import Resource
from sakari.core.session import Session
from sakari.modules.disco import NS_CAPS, NS_DATA, NS_INFO, caps_ver
from sakari.xml.element import Element

CAPS_CHANGED = "caps/changed"  # CapsEvent: a resource's features are known for the first time, or changed
CACHE_SIZE = 10_000
REQUEST_TIMEOUT = 15.0  # a client that does not answer disco#info in this time is taken to support nothing  # verification strings remembered; clients in the wild use a few hundred
_PROP_VER = "caps-ver"  # session props: the string of the resource's last presence
_PROP_OWN = "caps-features"  # session props: features answered that did not match their string


@dataclass(slots=True)
class CapsEvent:
    session: Session
    features: frozenset[str]


def caps_of(presence: Element | None) -> tuple[str, str] | None:
    """(node, ver) of a presence's SHA-1 caps, or None."""
    c = presence.find("c", NS_CAPS) if presence is not None else None
    if c is None or c.attrs.get("hash") != "sha-1" or not c.attrs.get("ver") or not c.attrs.get("node"):
        return None
    return c.attrs["node"], c.attrs["ver"]


def verify(query: Element, ver: str) -> tuple[frozenset[str], bool]:
    """The features of a disco#info answer, and whether they hash to ``ver``.

    Identities with xml:lang are rare and hash differently; such an answer counts as unverified
    (its features still serve the resource that gave it).
    """
    features = [f.attrs.get("var", "") for f in query.find_all("feature")]
    identity_elements = query.find_all("identity")
    if any("xml:lang" in i.attrs for i in identity_elements):
        return frozenset(features), False
    identities = [(i.attrs.get("category", ""), i.attrs.get("type", ""), i.attrs.get("name", "")) for i in identity_elements]
    return frozenset(features), caps_ver(identities, features, query.find_all("x", NS_DATA)) == ver


class Caps:
    """The ``caps`` service."""

    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.known: OrderedDict[str, frozenset[str]] = OrderedDict()  # ver → features, least recently used first

    def features(self, resource: Resource) -> frozenset[str] | None:
        """What the resource supports, or None while it is not known."""
        caps = caps_of(resource.presence)
        if caps is not None:
            found = self.known.get(caps[1])
            if found is not None:
                return found
        session = resource.session
        return session.props.get(_PROP_OWN) if session is not None else None

    async def observe(self, event: StanzaEvent) -> None:
        """A broadcast presence: learn the features behind its caps if they are new."""
        session = event.origin
        stanza = event.stanza
        if session is None or stanza.attrs.get("type") is not None or stanza.attrs.get("to") is not None:
            return
        caps = caps_of(stanza)
        if caps is None or session.props.get(_PROP_VER) == caps[1]:
            return
        session.props[_PROP_VER] = caps[1]
        session.props.pop(_PROP_OWN, None)
        found = self.known.get(caps[1])
        if found is not None:
            self.known.move_to_end(caps[1])
            await self.mod.events.fire_all(CAPS_CHANGED, CapsEvent(session, found))
        else:
            self.mod.spawn(self.learn(session, *caps))
        return

    async def learn(self, session: Session, node: str, ver: str) -> None:
        iq = Element("iq", attrs={"type": "get"})
        iq.add("query", NS_INFO, {"node": f"{node}#{ver}"})
        try:
            answer = await self.mod.request(iq, session.jid, timeout=REQUEST_TIMEOUT)
        except TimeoutError:
            self.mod.log.info("event=caps-timeout jid=%s", session.jid)
            return
        query = answer.find("query", NS_INFO)
        if answer.attrs.get("type") != "result" or query is None or session.closed:
            return
        features, verified = verify(query, ver)
        if verified:
            self.known[ver] = features
            if len(self.known) > CACHE_SIZE:
                self.known.popitem(last=False)
        elif session.props.get(_PROP_VER) == ver:
            session.props[_PROP_OWN] = features
        if session.props.get(_PROP_VER) == ver:
            await self.mod.events.fire_all(CAPS_CHANGED, CapsEvent(session, features))


def setup(mod: ModuleAPI) -> None:
    caps = Caps(mod)
    mod.provide("caps", caps)
    mod.events.declare(CAPS_CHANGED)
    # Before the presence module broadcasts (and ends the dispatch): observe only.
    mod.hook("pre-presence/self", caps.observe, priority=10)
