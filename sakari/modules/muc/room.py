"""One XEP-0045 room as a state machine without I/O: stanzas in, deliveries out.

Every method that changes the room returns a list of :class:`Out`: one
stanza (without 'to') and the real addresses that get it. Stanzas that are
the same for many recipients are one ``Out``, so the service serializes each
once and only splices in each recipient's 'to'. Refusals raise StanzaError,
which the service turns into the error XEP-0045 names, from the address the
request went to.

Entering, leaving, nick changes, messages and the subject are here;
moderation (roles, affiliations, lists, destruction) is in ``admin.py``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sakari.jid import JID
from sakari.modules.muc import model as M
from sakari.modules.muc.history import History, HistoryLimits
from sakari.modules.muc.model import Affiliation, Occupant, RoomConfig
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

# Payloads that mark a message as end-to-end encrypted: OMEMO (old and new), OpenPGP (XEP-0373, XEP-0027)
# and the explicit XEP-0380 marker.
ENCRYPTED = {
    ("encrypted", "eu.siacs.conversations.axolotl"),
    ("encrypted", "urn:xmpp:omemo:2"),
    ("openpgp", "urn:xmpp:openpgp:0"),
    ("x", "jabber:x:encrypted"),
    ("encryption", "urn:xmpp:eme:0"),
}


@dataclass(slots=True)
class Out:
    """One stanza for several recipients: 'from' is set, 'to' is spliced in per recipient."""

    stanza: Element
    to: list[JID]
    sender: JID | None = None  # an occupant's message: its real bare JID, for the recipients' block lists


@dataclass(slots=True)
class Change:
    """Why an occupant's presence goes out: who did it, the reason, a new nick, the status text."""

    actor: Occupant | None = None
    reason: str = ""
    new_nick: str = ""
    status: str = ""


@dataclass(slots=True)
class Limits:
    max_users: int  # the service's ceiling on occupants per room
    max_history: int
    join_presences: int = 0  # most occupant presences a newcomer gets on entering; 0: all of them


class Room:
    def __init__(
        self,
        jid: JID,
        config: RoomConfig,
        limits: Limits,
        is_admin: Callable[[JID], bool],
        secret: bytes,
        stanza_id: Callable[[], str],
    ) -> None:
        self.jid = jid
        self.config = config
        self.limits = limits
        self.is_admin = is_admin  # the server's admins own every room
        self.secret = secret  # for occupant ids that outsiders cannot link across rooms
        self.new_stanza_id = stanza_id
        self.affiliations: dict[JID, Affiliation] = {}
        self.seen_nicks: dict[JID, str] = {}  # a member's bare JID → the nick it last used here (for mentions)
        self.hats: dict[JID, dict[str, str]] = {}  # XEP-0317: an account's bare JID → its hats (URI → title)
        self.occupants: dict[str, Occupant] = {}  # by nick
        self.by_jid: dict[JID, Occupant] = {}  # by real full JID
        self.subject = ""
        self.subject_from = ""  # the nick that set it ("" for the room)
        self.history = History()
        self.locked = False  # a new room waits for its owner's configuration (XEP-0045 §10.1)
        self.vcard: bytes | None = None  # the room's vCard (XEP-0054) as set by an owner
        self.avatar_hash = ""  # SHA-1 of the photo in that vCard, when it has one
        self.destroyed = False
        self._recipients: list[JID] | None = None  # every occupant's real JIDs, rebuilt after a change
        # Told when a real JID enters or leaves, so the service knows whom to take out when a session ends.
        self.on_enter: Callable[[JID, Room], None] = lambda real, room: None
        self.on_exit: Callable[[JID, Room], None] = lambda real, room: None

    # --- who is who ---------------------------------------------------------------
    def affiliation(self, bare: JID) -> str:
        if self.is_admin(bare):
            return "owner"
        found = self.affiliations.get(bare)
        return found.affiliation if found is not None else "none"

    def with_affiliation(self, affiliation: str) -> list[JID]:
        return sorted((j for j, a in self.affiliations.items() if a.affiliation == affiliation), key=lambda j: j.text)

    def reserved_by(self, nick: str) -> JID | None:
        for bare, entry in self.affiliations.items():
            if entry.nick == nick:
                return bare
        return None

    def nicks_of(self, bare: JID) -> set[str]:
        """The nicks that name a member here: its registered nick and the one it last used."""
        entry = self.affiliations.get(bare)
        return {n for n in (entry.nick if entry is not None else "", self.seen_nicks.get(bare, "")) if n}

    def occupant_jid(self, nick: str) -> JID:
        return JID(self.jid.local, self.jid.domain, nick)

    def recipients(self) -> list[JID]:
        if self._recipients is None:
            self._recipients = [jid for o in self.occupants.values() for jid in o.sessions]
        return self._recipients

    def changed(self) -> None:
        self._recipients = None

    def sees_jids(self, role: str) -> bool:
        return self.config.non_anonymous or role == "moderator"

    def occupant_id(self, bare: JID) -> str:
        digest = hashlib.sha256(self.secret + self.jid.text.encode() + b"\0" + bare.text.encode()).digest()
        return base64.b64encode(digest[:18]).decode()

    # --- presence stanzas -----------------------------------------------------------
    def presence_of(
        self, occupant: Occupant, show_jid: bool, codes: tuple[str, ...] = (), unavailable: bool = False,
        change: Change | None = None, sees_actor: bool | None = None,
    ) -> Element:
        """An occupant's presence as the room sends it (XEP-0045 §7.2.3); codes before the item but 110
        after it, the order Prosody uses and scripts expect. An actor's real JID is shown to those who see
        real JIDs (``sees_actor``, by default like ``show_jid``)."""
        base = occupant.sessions.get(occupant.last_jid) if occupant.last_jid is not None and not unavailable else None
        stanza = Element("presence", attrs={"from": self.occupant_jid(occupant.nick).text})
        if unavailable:
            stanza.attrs["type"] = "unavailable"
        elif base is not None:
            stanza.children = [c for c in base.children if c.__class__ is not Element or c.ns not in _STRIPPED]
        if change is not None and change.status:
            stanza.add("status", text=change.status)
        x = stanza.add("x", M.NS_USER)
        for code in codes:
            if code != M.SELF:
                x.add("status", attrs={"code": code})
        attrs = {}
        if show_jid and occupant.last_jid is not None:
            attrs["jid"] = occupant.last_jid.text
        attrs["affiliation"] = self.affiliation(occupant.bare)
        attrs["role"] = "none" if unavailable else occupant.role
        if change is not None and change.new_nick:
            attrs["nick"] = change.new_nick
        item = x.add("item", attrs=attrs)
        if change is not None and change.actor is not None:
            actor = {"nick": change.actor.nick}
            if (show_jid if sees_actor is None else sees_actor) and change.actor.last_jid is not None:
                actor["jid"] = change.actor.last_jid.text
            item.add("actor", attrs=actor)
        if change is not None and change.reason:
            item.add("reason", text=change.reason)
        if M.SELF in codes:
            x.add("status", attrs={"code": M.SELF})
        hats = self.hats.get(occupant.bare)
        if hats and not unavailable:
            worn = stanza.add("hats", M.NS_HATS)  # XEP-0317 §3.1
            for uri, title in hats.items():
                worn.add("hat", attrs={"uri": uri, "title": title})
        stanza.add("occupant-id", M.NS_OCCUPANT_ID, {"id": occupant.occupant_id})
        return stanza

    def broadcast_presence(
        self, occupant: Occupant, codes: tuple[str, ...] = (), unavailable: bool = False,
        change: Change | None = None, self_codes: tuple[str, ...] = (),
    ) -> list[Out]:
        """The occupant's presence to everyone: one stanza for those who see real JIDs, one for the others,
        and its own (with 110) to the occupant's sessions."""
        outs: list[Out] = []
        if unavailable or occupant.role in self.config.presence_broadcast:
            with_jid: list[JID] = []
            without: list[JID] = []
            for other in self.occupants.values():
                if other is occupant:
                    continue
                (with_jid if self.sees_jids(other.role) else without).extend(other.sessions)
            if with_jid:
                outs.append(Out(self.presence_of(occupant, True, codes, unavailable, change), with_jid))
            if without:
                outs.append(Out(self.presence_of(occupant, False, codes, unavailable, change), without))
        own = self.presence_of(occupant, True, codes + self_codes + (M.SELF,), unavailable, change,
                               self.sees_jids(occupant.role))
        outs.append(Out(own, list(occupant.sessions)))
        return outs

    # --- entering -----------------------------------------------------------------------
    def check_entry(self, real: JID, nick: str, password: str | None, creating: bool) -> str:
        """XEP-0045 §7.2.4-7.2.10 in the order Prosody checks; the affiliation the newcomer has."""
        affiliation = self.affiliation(real.bare)
        if self.locked and affiliation != "owner":
            raise StanzaError("item-not-found", "This room is locked: its owner has not configured it yet")
        if affiliation == "outcast":
            raise StanzaError("forbidden", "You are banned from this room")
        if self.config.members_only and affiliation == "none":
            raise StanzaError("registration-required", "Only members may enter this room")
        holder = self.occupants.get(nick)
        if holder is not None and holder.bare != real.bare:
            raise StanzaError("conflict", "That nick is taken")
        reserver = self.reserved_by(nick)
        if reserver is not None and reserver != real.bare:
            raise StanzaError("conflict", "That nick is reserved")
        if self.config.password and affiliation != "owner" and password != self.config.password:
            raise StanzaError("not-authorized", "A password is needed to enter this room")
        if holder is None and not creating and affiliation not in ("owner", "admin"):
            if len(self.occupants) >= min(self.config.max_users or self.limits.max_users, self.limits.max_users):
                raise StanzaError("service-unavailable", "This room is full")
        return affiliation

    def join(
        self, real: JID, nick: str, presence: Element, muc: Element, now: float, creating: bool = False
    ) -> list[Out]:
        """An available presence to room/nick from someone not in the room under any nick."""
        password = muc.child_text("password")
        affiliation = self.check_entry(real, nick, password, creating)
        occupant = self.occupants.get(nick)
        outs: list[Out] = []
        if occupant is None:
            occupant = Occupant(nick, real.bare, M.default_role(affiliation, self.config.moderated),
                                self.occupant_id(real.bare))
            self.occupants[nick] = occupant
            fresh = True
        else:
            fresh = False  # another resource of the same account joins under the same nick (§7.2.7 multi-session)
        occupant.sessions[real] = _payload(presence)
        occupant.last_jid = real
        self.by_jid[real] = occupant
        self.on_enter(real, self)
        self.changed()
        sees = self.sees_jids(occupant.role)
        for other in self.present_on_entering(occupant):
            outs.append(Out(self.presence_of(other, sees), [real]))
        codes: tuple[str, ...] = ()
        if creating:
            codes += (M.CREATED,)
        if self.config.non_anonymous:
            codes += (M.NON_ANONYMOUS,)
        if self.config.logging:
            codes += (M.LOGGED,)
        if fresh:
            outs += self.broadcast_presence(occupant, self_codes=codes)
        else:
            outs.append(Out(self.presence_of(occupant, True, codes + (M.SELF,)), [real]))
        history = muc.find("history")
        limits = HistoryLimits.parse(history, self.config.history_length)
        for stanza in self.history.select(limits, now):
            outs.append(Out(stanza, [real]))
        outs.append(Out(self.subject_message(), [real]))
        if self.avatar_hash:
            outs.append(Out(self.avatar_presence(), [real]))
        return outs

    def present_on_entering(self, newcomer: Occupant) -> list[Occupant]:
        """The occupants whose presence a newcomer gets. In a room above ``join_presences`` occupants, only
        that many: moderators first, then the others in the order they came, as ejabberd does for its
        overcrowded rooms, so that one join does not send thousands of stanzas to one client."""
        shown = [o for o in self.occupants.values() if o is not newcomer and o.role in self.config.presence_broadcast]
        cap = self.limits.join_presences
        if cap and len(shown) > cap:
            shown.sort(key=lambda o: o.role != "moderator")  # stable: arrival order within each group
            del shown[cap:]
        return shown

    def avatar_presence(self) -> Element:
        """The room's own presence with its avatar's hash (vcard-temp:x:update, as clients read room avatars)."""
        presence = Element("presence", attrs={"from": self.jid.text})
        presence.add("x", M.NS_VCARD_UPDATE).add("photo", text=self.avatar_hash)
        return presence

    def subject_message(self) -> Element:
        sender = self.occupant_jid(self.subject_from).text if self.subject_from else self.jid.text
        message = Element("message", attrs={"from": sender, "type": "groupchat"})
        message.add("subject", text=self.subject) if self.subject else message.add("subject")
        return message

    # --- presence changes of occupants ------------------------------------------------------
    def update_presence(self, real: JID, presence: Element) -> list[Out]:
        occupant = self.by_jid[real]
        occupant.sessions[real] = _payload(presence)
        occupant.last_jid = real
        return self.broadcast_presence(occupant)

    def change_nick(self, real: JID, new_nick: str, presence: Element) -> list[Out]:
        """XEP-0045 §7.6: unavailable with 303 from the old nick, then available from the new one."""
        occupant = self.by_jid[real]
        if not self.config.change_nick and self.affiliation(real.bare) not in ("owner", "admin"):
            raise StanzaError("not-acceptable", "Nick changes are not allowed in this room")
        if len(occupant.sessions) > 1:
            raise StanzaError("not-acceptable", "Leave with your other devices before changing nick")
        holder = self.occupants.get(new_nick)
        reserver = self.reserved_by(new_nick)
        if (holder is not None and holder is not occupant) or (reserver is not None and reserver != real.bare):
            raise StanzaError("conflict", "That nick is taken")
        outs = self.broadcast_presence(occupant, (M.NEW_NICK,), unavailable=True, change=Change(new_nick=new_nick))
        del self.occupants[occupant.nick]
        occupant.nick = new_nick
        self.occupants[new_nick] = occupant
        occupant.sessions[real] = _payload(presence)
        self.changed()
        return outs + self.broadcast_presence(occupant)

    def leave(self, real: JID, status: Element | None = None) -> list[Out]:
        """An unavailable presence from one of an occupant's resources."""
        occupant = self.by_jid.pop(real)
        self.on_exit(real, self)
        self.changed()
        if len(occupant.sessions) > 1:
            del occupant.sessions[real]
            if occupant.last_jid == real:
                occupant.last_jid = next(iter(occupant.sessions))
            own = self.presence_of(occupant, True, (M.SELF,), unavailable=True)
            return [Out(own, [real])]
        status_text = status.child_text("status") if status is not None else None
        outs = self.broadcast_presence(occupant, unavailable=True, change=Change(status=status_text or ""))
        del self.occupants[occupant.nick]
        return outs

    def remove(
        self, occupant: Occupant, code: str, actor: Occupant | None = None, reason: str = "", status_text: str = ""
    ) -> list[Out]:
        """Take an occupant out (kick, ban, loss of membership, an error from its client), telling everyone."""
        outs = self.broadcast_presence(occupant, (code,), unavailable=True, change=Change(actor, reason, "", status_text))
        for real in occupant.sessions:
            self.by_jid.pop(real, None)
            self.on_exit(real, self)
        del self.occupants[occupant.nick]
        self.changed()
        return outs

    # --- messages --------------------------------------------------------------------------
    def groupchat(self, real: JID, message: Element, now: float) -> list[Out]:
        """XEP-0045 §7.4 (messages) and §8.1 (the subject)."""
        occupant = self.by_jid.get(real)
        if occupant is None:
            raise StanzaError("not-acceptable", "Only occupants may send messages to the room")
        body = message.find("body")
        subject = message.find("subject")
        if subject is not None and body is None:
            return self.set_subject(occupant, message, subject.text)
        if occupant.role == "visitor" or occupant.role == "none":
            raise StanzaError("forbidden", "You have no voice in this moderated room")
        retraction = message.find("retract", M.NS_RETRACT) is not None  # its body is only a fallback text
        if self.config.encrypted_only and body is not None and not retraction and not _encrypted(message):
            raise StanzaError("not-acceptable", "This room accepts only end-to-end encrypted messages")
        occupant.last_jid = real
        out = Element("message", attrs={"from": self.occupant_jid(occupant.nick).text, "type": "groupchat"})
        if "id" in message.attrs:
            out.attrs["id"] = message.attrs["id"]
        if "xml:lang" in message.attrs:
            out.attrs["xml:lang"] = message.attrs["xml:lang"]
        out.children = [c for c in message.children if c.__class__ is not Element or not _foreign_ids(c, self.jid)]
        out.add("stanza-id", M.NS_SID, {"id": self.new_stanza_id(), "by": self.jid.text})
        out.add("occupant-id", M.NS_OCCUPANT_ID, {"id": occupant.occupant_id})
        if body is not None:
            self.history.add(out, now, self.config.history_length, self.jid.text)
        return [Out(out, self.recipients(), real.bare)]

    def set_subject(self, occupant: Occupant, message: Element, text: str) -> list[Out]:
        allowed = occupant.role == "moderator" or (self.config.change_subject and occupant.role == "participant")
        if not allowed:
            raise StanzaError("forbidden", "You may not change the subject of this room")
        self.subject = text
        self.subject_from = occupant.nick
        out = Element("message", attrs={"from": self.occupant_jid(occupant.nick).text, "type": "groupchat"})
        if "id" in message.attrs:
            out.attrs["id"] = message.attrs["id"]
        out.add("subject", text=text) if text else out.add("subject")
        return [Out(out, self.recipients())]

    def private_message(self, real: JID, nick: str, message: Element) -> list[Out]:
        """XEP-0045 §7.5: to an occupant, from the sender's room address, to every resource in the room."""
        sender = self.by_jid.get(real)
        if sender is None:
            raise StanzaError("not-acceptable", "Only occupants may send private messages")
        if message.attrs.get("type") == "groupchat":
            raise StanzaError("bad-request", "A groupchat message goes to the room, not to an occupant")
        if not M.may_send_pm(self.config.allow_pm, sender.role):
            raise StanzaError("forbidden", "Private messages are not allowed in this room")
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "No such occupant")
        out = message.shallow_copy()
        out.attrs.pop("to", None)
        out.attrs["from"] = self.occupant_jid(sender.nick).text
        out.children = [c for c in message.children if c.__class__ is not Element or c.ns != M.NS_USER]
        out.children.append(Element("x", M.NS_USER))
        return [Out(out, list(target.sessions))]


_STRIPPED = {M.NS_MUC, M.NS_USER, M.NS_OCCUPANT_ID, M.NS_HATS}  # what only the room may say about an occupant


def _payload(presence: Element) -> Element:
    """What of a client's presence the room repeats: show, status, priority, caps, and so on."""
    kept = Element("presence")
    kept.children = [c for c in presence.children if c.__class__ is not Element or c.ns not in _STRIPPED]
    return kept


def _foreign_ids(child: Element, room: JID) -> bool:
    """XEP-0359 §3.1 and XEP-0421 §4: ids the room vouches for are its own; a sender's claims are dropped."""
    if child.name == "stanza-id" and child.ns == M.NS_SID:
        return child.attrs.get("by") == room.text
    return child.name == "occupant-id" and child.ns == M.NS_OCCUPANT_ID


def _encrypted(message: Element) -> bool:
    return any((c.name, c.ns) in ENCRYPTED for c in message.elements())
