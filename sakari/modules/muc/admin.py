"""Moderation and administration of a room, without I/O: roles and affiliations (XEP-0045 §8-§10),
their lists, invitations (§7.8), voice requests (§8.6), nick registration (§7.10) and destruction (§10.9).

Like the room's own methods, each returns the deliveries to make (``Out``) and raises StanzaError with the
conditions the XEP lists: ``forbidden`` for someone without the privilege at all, ``not-allowed`` for a
change the privilege does not cover, ``conflict`` for removing the last owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.muc import forms
from sakari.modules.muc import model as M
from sakari.modules.muc.model import Affiliation, Occupant
from sakari.modules.muc.room import Change, Out, Room
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError


@dataclass(slots=True)
class Outcome:
    outs: list[Out] = field(default_factory=list)
    affiliations: list[JID] = field(default_factory=list)  # bare JIDs whose stored affiliation changed


def _moderator(room: Room, real: JID) -> Occupant:
    actor = room.by_jid.get(real)
    if actor is None or actor.role != "moderator":
        raise StanzaError("forbidden", "Only moderators may do this")
    return actor


# --- roles (§8.2 kick, §8.3-8.4 voice, §9.6-9.7 moderator) ----------------------------------------
def set_role(room: Room, real: JID, nick: str, role: str, reason: str = "") -> list[Out]:
    actor = _moderator(room, real)
    target = room.occupants.get(nick)
    if target is None:
        raise StanzaError("item-not-found", f"No occupant is called {nick}")
    actor_aff = room.affiliation(actor.bare)
    target_aff = room.affiliation(target.bare)
    if not M.can_change_role(actor.role, actor_aff, target_aff, target.role, role):
        raise StanzaError("not-allowed", f"You may not make a {target_aff} {role if role != 'none' else 'leave'}")
    if role == "none":
        return room.remove(target, M.KICKED, actor, reason)
    target.role = role
    return room.broadcast_presence(target, change=Change(actor, reason))


# --- affiliations (§9.1-9.5, §10.3-10.7) -------------------------------------------------------------
def set_affiliation(
    room: Room, real: JID, target: JID, affiliation: str, reason: str = "", nick: str | None = None
) -> Outcome:
    actor_aff = room.affiliation(real.bare)
    if actor_aff not in ("owner", "admin"):
        raise StanzaError("forbidden", "Only admins and owners change affiliations")
    now = room.affiliation(target)
    if room.is_admin(target) and affiliation != "owner":
        raise StanzaError("not-allowed", "The server's administrators own every room")
    if not M.can_change_affiliation(actor_aff, now, affiliation):
        raise StanzaError("not-allowed", f"An {actor_aff} may not make a {now} {affiliation}")
    if now == "owner" and affiliation != "owner" and room.with_affiliation("owner") == [target]:
        raise StanzaError("conflict", "A room keeps at least one owner")
    outcome = Outcome(affiliations=[target])
    entry = room.affiliations.get(target)
    kept_nick = entry.nick if entry is not None else ""
    if affiliation == "none" and not kept_nick:
        room.affiliations.pop(target, None)
    else:
        room.affiliations[target] = Affiliation(affiliation, nick if nick is not None else kept_nick, reason)
    actor = room.by_jid.get(real)
    for occupant in [o for o in room.occupants.values() if o.bare == target]:
        if affiliation == "outcast":
            outcome.outs += room.remove(occupant, M.BANNED, actor, reason)
        elif affiliation == "none" and room.config.members_only:
            outcome.outs += room.remove(occupant, M.REMOVED_AFFILIATION, actor, reason)
        else:
            occupant.role = M.default_role(affiliation, room.config.moderated)
            outcome.outs += room.broadcast_presence(occupant, change=Change(actor, reason))
    return outcome


def members_only_now(room: Room) -> list[Out]:
    """§10.2: a room that became members-only removes whoever is not affiliated, with 322."""
    outs: list[Out] = []
    for occupant in list(room.occupants.values()):
        if room.affiliation(occupant.bare) == "none":
            outs += room.remove(occupant, M.REMOVED_MEMBERS_ONLY)
    return outs


def admin_set(room: Room, real: JID, query: Element) -> Outcome:
    """An iq set of muc#admin items: all are checked against the actor's rights, then applied in order."""
    outcome = Outcome()
    items = query.find_all("item")
    if not items:
        raise StanzaError("bad-request", "No item to change")
    for item in items:
        reason = item.child_text("reason") or ""
        if "affiliation" in item.attrs:
            affiliation = item.attrs["affiliation"]
            if affiliation not in M.AFFILIATIONS:
                raise StanzaError("bad-request", f"No such affiliation: {affiliation}")
            target = _target_of(room, item)
            done = set_affiliation(room, real, target, affiliation, reason, item.attrs.get("nick"))
            outcome.outs += done.outs
            outcome.affiliations += done.affiliations
        elif "role" in item.attrs:
            role = item.attrs["role"]
            if role not in M.ROLES or "nick" not in item.attrs:
                raise StanzaError("bad-request", "A role change names a role and a nick")
            outcome.outs += set_role(room, real, item.attrs["nick"], role, reason)
        else:
            raise StanzaError("bad-request", "An item changes a role or an affiliation")
    return outcome


def _target_of(room: Room, item: Element) -> JID:
    if "jid" in item.attrs:
        try:
            return parse_jid(item.attrs["jid"]).bare
        except JIDError:
            raise StanzaError("jid-malformed", "Not an address") from None
    occupant = room.occupants.get(item.attrs.get("nick", ""))
    if occupant is None:
        raise StanzaError("item-not-found", "No such occupant")
    return occupant.bare


def admin_list(room: Room, real: JID, query: Element) -> Element:
    """§9.5, §9.8, §10.5, §10.8 (affiliation lists) and §8.5, §9.7 (role lists)."""
    item = query.find("item")
    if item is None:
        raise StanzaError("bad-request", "Ask for one affiliation or one role")
    answer = Element("query", M.NS_ADMIN)
    actor_aff = room.affiliation(real.bare)
    occupant = room.by_jid.get(real)
    if "affiliation" in item.attrs:
        wanted = item.attrs["affiliation"]
        if wanted not in M.AFFILIATIONS or wanted == "none":
            raise StanzaError("bad-request", f"No list of {wanted}")
        may = (
            actor_aff in ("owner", "admin")
            or (wanted == "member" and occupant is not None and occupant.role in room.config.get_member_list)
            # OMEMO group chat: a members-only room with real JIDs shows its members who else is in it
            # (owners and admins too), in the room or not, so that their clients encrypt for everyone.
            or (room.config.members_only and room.config.non_anonymous and actor_aff == "member" and wanted != "outcast")
        )
        if not may:
            raise StanzaError("forbidden", "You may not see this list")
        for bare in room.with_affiliation(wanted):
            entry = room.affiliations[bare]
            attrs = {"affiliation": wanted, "jid": bare.text}
            if entry.nick:
                attrs["nick"] = entry.nick
            listed = answer.add("item", attrs=attrs)
            if entry.reason:
                listed.add("reason", text=entry.reason)
        return answer
    wanted = item.attrs.get("role", "")
    if wanted not in ("moderator", "participant", "visitor"):
        raise StanzaError("bad-request", "Ask for moderators, participants or visitors")
    if occupant is None or occupant.role != "moderator":
        raise StanzaError("forbidden", "Only moderators see the lists of roles")
    for other in room.occupants.values():
        if other.role == wanted:
            answer.add("item", attrs={"nick": other.nick, "role": wanted, "jid": other.jid.text,
                                      "affiliation": room.affiliation(other.bare)})
    return answer


# --- destruction (§10.9) ------------------------------------------------------------------------------
def destroy(room: Room, real: JID | None, destroy_el: Element | None) -> list[Out]:
    if real is not None and room.affiliation(real.bare) != "owner":
        raise StanzaError("forbidden", "Only owners may destroy the room")
    notice = Element("destroy", M.NS_USER)
    if destroy_el is not None:
        if "jid" in destroy_el.attrs:
            notice.attrs["jid"] = destroy_el.attrs["jid"]
        for child in destroy_el.elements():
            if child.name in ("reason", "password"):
                notice.add(child.name, text=child.text)
    outs: list[Out] = []
    for occupant in room.occupants.values():
        presence = Element("presence", attrs={"from": room.occupant_jid(occupant.nick).text, "type": "unavailable"})
        x = presence.add("x", M.NS_USER)
        x.add("item", attrs={"affiliation": "none", "role": "none"})
        x.append(notice)
        outs.append(Out(presence, list(occupant.sessions)))
    for inside in room.by_jid:
        room.on_exit(inside, room)
    room.occupants.clear()
    room.by_jid.clear()
    room.changed()
    room.destroyed = True
    return outs


# --- invitations (§7.8.2) and declines (§7.8.3) --------------------------------------------------------
def invite(room: Room, real: JID, x: Element) -> Outcome:
    sender = room.by_jid.get(real)
    if sender is None:
        raise StanzaError("not-acceptable", "Only occupants may invite")
    sender_aff = room.affiliation(real.bare)
    if room.config.members_only and not room.config.allow_invites and sender_aff not in ("owner", "admin"):
        raise StanzaError("forbidden", "Only admins may invite to this members-only room")
    outcome = Outcome()
    for invitation in x.find_all("invite"):
        try:
            invitee = parse_jid(invitation.attrs.get("to", ""))
        except JIDError:
            raise StanzaError("jid-malformed", "An invitation needs an address to go to") from None
        if room.affiliation(invitee.bare) == "outcast":
            raise StanzaError("forbidden", f"{invitee.bare.text} is banned from this room")
        reason = invitation.child_text("reason") or ""
        message = Element("message", attrs={"from": room.jid.text})
        text = f"{sender.nick} invites you to the room {room.jid.text}"
        message.add("body", text=f"{text}: {reason}" if reason else text)
        user = message.add("x", M.NS_USER)
        sent = user.add("invite", attrs={"from": real.bare.text})
        if reason:
            sent.add("reason", text=reason)
        if room.config.password:
            user.add("password", text=room.config.password)
        direct = {"jid": room.jid.text}
        if reason:
            direct["reason"] = reason
        message.add("x", M.NS_CONFERENCE, direct)
        outcome.outs.append(Out(message, [invitee]))
        if room.config.members_only and room.affiliation(invitee.bare) == "none":
            # The invitation is the way in: the invitee becomes a member (as with Prosody).
            room.affiliations[invitee.bare] = Affiliation("member")
            outcome.affiliations.append(invitee.bare)
    return outcome


def decline(room: Room, real: JID, x: Element) -> list[Out]:
    refusal = x.find("decline")
    assert refusal is not None
    try:
        inviter = parse_jid(refusal.attrs.get("to", ""))
    except JIDError:
        raise StanzaError("jid-malformed", "A decline goes back to the inviter's address") from None
    message = Element("message", attrs={"from": room.jid.text})
    sent = message.add("x", M.NS_USER).add("decline", attrs={"from": real.bare.text})
    reason = refusal.child_text("reason")
    if reason:
        sent.add("reason", text=reason)
    return [Out(message, [inviter])]


# --- voice requests (§7.13 and §8.6) ------------------------------------------------------------------
def voice_form(room: Room, real: JID, form: Element) -> list[Out]:
    """A visitor asks for voice (the request goes to the moderators), or a moderator answers one."""
    values = forms.read_form(form, forms.FORM_REQUEST)
    occupant = room.by_jid.get(real)
    if occupant is None:
        raise StanzaError("not-acceptable", "Only occupants may ask for voice")
    if form.attrs.get("type") == "submit" and "muc#request_allow" in values:
        if (values.get("muc#request_allow") or ["0"])[0] not in forms.TRUE:
            return []
        nick = (values.get("muc#roomnick") or [""])[0]
        return set_role(room, real, nick, "participant")
    if (values.get("muc#role") or ["participant"])[0] != "participant":
        raise StanzaError("bad-request", "Only voice (the participant role) may be requested")
    if not room.config.voice_requests:
        raise StanzaError("forbidden", "Voice requests are off in this room")
    if occupant.role != "visitor":
        return []
    moderators = [o for o in room.occupants.values() if o.role == "moderator"]
    if not moderators:
        return []
    message = Element("message", attrs={"from": room.jid.text})
    message.append(forms.voice_request_form(occupant.nick, occupant.jid))
    return [Out(message, [jid for o in moderators for jid in o.sessions])]


# --- registered nicks (§7.10) ----------------------------------------------------------------------------
def register_query(room: Room, real: JID) -> Element:
    answer = Element("query", M.NS_REGISTER)
    entry = room.affiliations.get(real.bare)
    if entry is not None and entry.nick:
        answer.add("registered")
        answer.add("username", text=entry.nick)
    answer.append(forms.register_form(entry.nick if entry is not None else ""))
    return answer


def register(room: Room, real: JID, query: Element) -> Outcome:
    bare = real.bare
    affiliation = room.affiliation(bare)
    if affiliation == "outcast":
        raise StanzaError("forbidden", "You are banned from this room")
    entry = room.affiliations.get(bare)
    if query.find("remove") is not None:
        if entry is None or not entry.nick:
            raise StanzaError("item-not-found", "You have no registered nick here")
        entry.nick = ""
        return Outcome(affiliations=[bare])
    if room.config.members_only and affiliation == "none":
        raise StanzaError("registration-required", "Only members may register a nick in this room")
    x = query.find("x", M.NS_DATA)
    if x is None:
        raise StanzaError("bad-request", "Submit the muc#register form")
    values = forms.read_form(x, forms.FORM_REGISTER)
    nick = (values.get("muc#register_roomnick") or [""])[0].strip()
    if not nick:
        raise StanzaError("not-acceptable", "A nick is needed")
    holder = room.reserved_by(nick)
    occupant = room.occupants.get(nick)
    if (holder is not None and holder != bare) or (occupant is not None and occupant.bare != bare):
        raise StanzaError("conflict", "That nick is someone else's")
    if entry is None:
        room.affiliations[bare] = Affiliation("member" if affiliation == "none" else affiliation, nick)
    else:
        entry.nick = nick
        if entry.affiliation == "none":
            entry.affiliation = "member"
    return Outcome(affiliations=[bare])
