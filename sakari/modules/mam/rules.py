"""Which messages go into a user's archive, the stanza-id they carry, and the archiving preferences.

XEP-0313 §7 (business rules) keeps chat and normal messages with a body; where the XEP
is silent Sakari keeps what Prosody's mod_mam keeps: the payloads a client builds on
(receipts, markers, reactions, retractions, encrypted messages, call signalling), so
that history replays them. XEP-0334 hints decide first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from sakari.jid import JIDError, parse_jid
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_HINTS = "urn:xmpp:hints"
NS_CLIENT = "jabber:client"

# Payloads that make a message worth keeping even without a body.
KEPT_PAYLOADS = frozenset(
    {
        "urn:xmpp:receipts",  # XEP-0184
        "urn:xmpp:chat-markers:0",  # XEP-0333
        "urn:xmpp:reactions:0",  # XEP-0444
        "urn:xmpp:message-retract:0",  # XEP-0424
        "urn:xmpp:message-retract:1",
        "urn:xmpp:fasten:0",  # XEP-0422, which carried retractions before
        "urn:xmpp:eme:0",  # XEP-0380: encrypted, so we cannot know it is not important
        "eu.siacs.conversations.axolotl",  # OMEMO
        "urn:xmpp:omemo:2",
        "urn:xmpp:openpgp:0",
        "jabber:x:conference",  # XEP-0249 invitations
        "urn:xmpp:jingle-message:0",  # XEP-0353 calls
        "urn:xmpp:jingle-message:1",
    }
)


def worth_keeping(stanza: Element) -> bool:
    """Whether a message belongs in a user archive, by its type, its hints and its payloads."""
    if stanza.attrs.get("type", "normal") not in ("chat", "normal"):
        return False  # groupchat is the room's archive's; errors and headlines are not history
    keep = False
    for child in stanza.children:
        if child.__class__ is not Element:
            continue
        ns = child.ns  # type: ignore[union-attr]
        name = child.name  # type: ignore[union-attr]
        if ns == NS_HINTS:
            if name in ("no-store", "no-permanent-store"):
                return False
            if name == "store":
                keep = True
        elif ns == NS_CLIENT:
            keep = keep or name in ("body", "subject")
        elif ns in KEPT_PAYLOADS:
            keep = True
    return keep


def body_of(stanza: Element) -> str | None:
    """The text full-text search finds."""
    return stanza.child_text("body", NS_CLIENT)


def _claims(child: Element | str, archive: str) -> bool:
    return (
        child.__class__ is Element
        and child.ns == NS_SID  # type: ignore[union-attr]
        and child.name == "stanza-id"  # type: ignore[union-attr]
        and child.attrs.get("by") == archive  # type: ignore[union-attr]
    )


def claims_archive(stanza: Element, archive: str) -> bool:
    """Whether the stanza carries a stanza-id of this archive."""
    # Asked of every message an online user receives: a plain loop, cheaper than any() over a generator.
    for c in stanza.children:
        if c.__class__ is Element and c.ns == NS_SID and _claims(c, archive):  # type: ignore[union-attr]
            return True
    return False


def unclaimed(stanza: Element, archive: str) -> Element:
    """The stanza without stanza-ids that claim to be ``archive``'s (XEP-0359 §3: only the archive
    says what its ids are, so one a sender put there is removed); the stanza itself when it has none."""
    if not claims_archive(stanza, archive):
        return stanza
    copy = stanza.shallow_copy()
    copy.children = [c for c in stanza.children if not _claims(c, archive)]
    return copy


def with_stanza_id(stanza: Element, archive: str, id: str) -> Element:
    """A copy of an unclaimed stanza carrying the archive's id (the element given is left alone)."""
    copy = stanza.shallow_copy()
    copy.children = [*stanza.children, Element("stanza-id", NS_SID, {"by": archive, "id": id})]
    return copy


# --- preferences (XEP-0313 §6) ------------------------------------------------------------

DEFAULTS = ("always", "never", "roster")
MAX_PREFS_JIDS = 1000


@dataclass(frozen=True, slots=True)
class Prefs:
    default: str
    always: frozenset[str] = field(default_factory=frozenset)
    never: frozenset[str] = field(default_factory=frozenset)

    def decides(self, contact: str) -> bool | None:
        """True/False when the lists name the contact (never wins), None when the default decides."""
        if contact in self.never:
            return False
        if contact in self.always:
            return True
        return None

    def dump(self) -> bytes:
        return json.dumps({"default": self.default, "always": sorted(self.always), "never": sorted(self.never)}).encode()

    def to_element(self) -> Element:
        prefs = Element("prefs", NS_MAM, {"default": self.default})
        for name, jids in (("always", self.always), ("never", self.never)):
            listing = prefs.add(name)
            for jid in sorted(jids):
                listing.add("jid", text=jid)
        return prefs


@lru_cache(maxsize=4096)
def load_prefs(data: bytes) -> Prefs:
    """Stored preferences (cached by value: the same bytes are read for every message of that user)."""
    raw = json.loads(data)
    return Prefs(raw["default"], frozenset(raw["always"]), frozenset(raw["never"]))


def parse_prefs(element: Element) -> Prefs:
    default = element.attrs.get("default")
    if default not in DEFAULTS:
        raise StanzaError("bad-request", "default must be always, never or roster")
    lists: dict[str, frozenset[str]] = {}
    for name in ("always", "never"):
        listing = element.find(name)
        jids = set()
        for item in listing.find_all("jid") if listing is not None else []:
            try:
                jids.add(str(parse_jid(item.text.strip())))
            except JIDError as e:
                raise StanzaError("jid-malformed", e.text) from None
        lists[name] = frozenset(jids)
    if len(lists["always"]) + len(lists["never"]) > MAX_PREFS_JIDS:
        raise StanzaError("not-acceptable", f"at most {MAX_PREFS_JIDS} addresses in the preferences")
    return Prefs(default, lists["always"], lists["never"])
