"""XEP-0280 Message Carbons: copies of a user's chats to the user's other online resources.

- §4/§5 enable and disable per resource; the choice is a flag on the resource in the router. Enabling
  may also come inside a Bind 2 request (XEP-0386 §3.2: it always succeeds, nothing is answered).
- §6 what is copied (``urn:xmpp:carbons:rules:0``): chat messages, normal messages with a body,
  MUC private messages, XEP-0353 call signalling, and errors bounced from an account's bare JID;
  never groupchat, headline, messages marked ``<private/>`` or with the XEP-0334 ``<no-copy/>`` hint,
  nor carbons themselves.
- Sent copies (§7) come from an inbound filter of the sending session, received copies (§8) from an
  outbound filter of the receiving one; a resource that gets the message itself by the delivery
  rules (RFC 6121 §8.5) gets no copy.

The filters are added to a session only once another resource of its account enables carbons, so
accounts without carbons, or with a single resource, pay nothing per stanza.
"""

from __future__ import annotations

from sakari.core import events as E
from sakari.core.events import SessionEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.router import Resource
from sakari.core.session import Session
from sakari.xml import ns as NS
from sakari.xml.element import Element

NS_CARBONS = "urn:xmpp:carbons:2"
NS_RULES = "urn:xmpp:carbons:rules:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CALLS = frozenset(("urn:xmpp:jingle-message:0", "urn:xmpp:jingle-message:1"))
FLAG = "carbons"  # on a resource that enabled carbons
PROP = "carbons"  # in a session's props once its filters are in place
FILTER_PRIORITY = 100  # before filters that hold or count what goes out: a copy must not wait for its origin


def should_copy(stanza: Element, received: bool) -> bool:
    """XEP-0280 §6: whether a message sent or received by a user is copied to the user's other resources."""
    mtype = stanza.attrs.get("type", "normal")
    if mtype in ("groupchat", "headline"):
        return False
    body = call = muc_user = False
    for child in stanza.children:
        if child.__class__ is not Element:
            continue
        ns, name = child.ns, child.name  # type: ignore[union-attr]
        if ns == NS_CARBONS or (ns == NS_HINTS and name == "no-copy"):
            return False  # <private/>, <no-copy/>, or a carbon itself
        if name == "body" and ns == NS.CLIENT:
            body = True
        elif ns in NS_CALLS:
            call = True
        elif ns == NS_MUC_USER:
            muc_user = True
    if mtype == "chat" or call or (mtype == "normal" and body) or (received and muc_user):
        return True
    # The bounce of a message the user sent to someone's bare JID.
    return received and mtype == "error" and "/" not in stanza.attrs.get("from", "/")


def recipients_by_rules(resources: list[Resource], stanza: Element) -> list[Resource]:
    """The resources that a message to the bare JID reaches (RFC 6121 §8.5.2.1.1)."""
    candidates = [r for r in resources if r.available and r.priority >= 0]
    if not candidates or stanza.attrs.get("type") == "headline":
        return candidates
    top = max(r.priority for r in candidates)
    return [r for r in candidates if r.priority == top]


class Carbons:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.router = mod.router

    # --- enabling ---------------------------------------------------------------
    def enable(self, event: StanzaEvent) -> bool | None:
        if event.origin is None:
            return None
        self.enable_for(event.origin)
        return True

    def enable_inline(self, session: Session, element: Element) -> None:
        if element.name == "enable":
            self.enable_for(session)

    def enable_for(self, session: Session) -> None:
        self.router.mark(session, FLAG)
        for other in self.mod.sessions.sessions_of(session.bare):
            if other is not session or self.wanted_elsewhere(session):
                self.add_filters(other)

    def disable(self, event: StanzaEvent) -> bool | None:
        if event.origin is None:
            return None
        self.router.unmark(event.origin, FLAG)
        return True

    def session_bound(self, event: SessionEvent) -> None:
        session = event.session
        if self.wanted_elsewhere(session):
            self.add_filters(session)

    def wanted_elsewhere(self, session: Session) -> bool:
        """Whether another resource of the account wants carbons: only then does this session need the
        filters (a phone alone with carbons on costs nothing per message)."""
        return any(FLAG in r.flags and r.session is not session for r in self.router.resources(session.bare))

    def add_filters(self, session: Session) -> None:
        if PROP not in session.props:
            session.props[PROP] = True
            session.inbound.add(self.copy_sent, FILTER_PRIORITY)
            session.outbound.add(self.copy_received, FILTER_PRIORITY)

    # --- copies -------------------------------------------------------------------
    def others(self, session: Session) -> tuple[list[Resource], list[Resource]]:
        """The account's resources, and those of them besides ``session`` that want carbons."""
        resources = self.router.resources(session.bare)
        return resources, [r for r in resources if FLAG in r.flags and r.session is not session]

    def copy_sent(self, session: Session, stanza: Element) -> Element:
        """§7: a message the client sends, to the user's other resources that enabled carbons."""
        if stanza.name != "message" or "to" not in stanza.attrs or not should_copy(stanza, received=False):
            return stanza
        _, targets = self.others(session)
        if targets:
            stanza.attrs["from"] = session.jid_text  # as the router stamps it: the copy shows the sender
            self.send_copies(session, "sent", stanza, targets)
        return stanza

    def copy_received(self, session: Session, stanza: Element) -> Element:
        """§8: a message delivered to this session, to the user's other resources that enabled carbons."""
        if stanza.name != "message" or not should_copy(stanza, received=True):
            return stanza
        sender = stanza.attrs.get("from", "")
        if sender.partition("/")[0] == session.bare.text:
            return stanza  # the user's own message: the sent copy covers it
        resources, targets = self.others(session)
        if not targets:
            return stanza
        if stanza.attrs.get("to") != session.jid_text:
            # Delivered by the rules for the bare JID, perhaps to several resources at once: the first of
            # them copies it, to the resources that do not get it themselves.
            receivers = recipients_by_rules(resources, stanza)
            if not receivers or receivers[0].session is not session:
                return stanza
            targets = [r for r in targets if r not in receivers]
        self.send_copies(session, "received", stanza, targets)
        return stanza

    def send_copies(self, session: Session, direction: str, stanza: Element, targets: list[Resource]) -> None:
        carbon = Element("message", NS.CLIENT, {"from": session.bare.text, "type": stanza.attrs.get("type", "normal")})
        # Its own top-level attributes, so that changes made to the original later do not show in the copy.
        carbon.add(direction, NS_CARBONS).add("forwarded", NS_FORWARD).children.append(stanza.shallow_copy())
        for target in targets:
            copy = carbon.shallow_copy()
            copy.attrs["to"] = target.jid.text
            self.router.send_to([target], copy)


def setup(mod: ModuleAPI) -> None:
    carbons = Carbons(mod)
    mod.add_feature(NS_CARBONS)
    mod.add_feature(NS_RULES)
    for target in ("self", "host"):
        mod.hook(f"iq-set/{target}/{NS_CARBONS}:enable", carbons.enable)
        mod.hook(f"iq-set/{target}/{NS_CARBONS}:disable", carbons.disable)
    mod.hook(E.SESSION_BOUND, carbons.session_bound)
    mod.add_bind_inline(NS_CARBONS, carbons.enable_inline)
