"""The MUC service of one domain (conference.example.org): stanzas in, room logic, deliveries out.

Rooms are state machines without I/O (``room.py``, ``admin.py``); this class
routes stanzas to them, keeps persistent rooms in storage, enforces the
service's limits and delivers what the rooms return. A stanza for many
occupants is serialized once: each recipient's bytes are that serialization
with its own ``to`` spliced in after the element name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID, parse_jid
from sakari.modules.blocking import matches
from sakari.modules.mam.query import form_fields
from sakari.modules.adhoc import NS_COMMANDS
from sakari.modules.muc import admin, forms, hats, retract
from sakari.modules.muc import model as M
from sakari.modules.muc.archive import NS_MAM, RoomArchive
from sakari.modules.muc.mentions import mentions
from sakari.modules.muc.model import Affiliation, RoomConfig
from sakari.modules.muc.room import Limits, Out, Room
from sakari.xml import fragment
from sakari.xml.element import Element, escape_attr
from sakari.xml.errors import StanzaError
from sakari.xml.ns import STANZA_ERRORS

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_UNIQUE = f"{M.NS_MUC}#unique"
USER_NODE = "x-roomuser-item"  # XEP-0045 §7.12: one's registered nick

SERVICE_FEATURES = {M.NS_MUC, NS_UNIQUE, M.NS_SELF_PING, M.NS_OCCUPANT_ID, M.NS_STABLE_ID, M.NS_HATS}


@dataclass(slots=True)
class Policy:
    """The service's options, read once per domain."""

    create_rooms: str  # "local", "admins", "anyone"
    max_rooms_per_user: int
    joins_per_minute: int
    lock_new_rooms: bool
    default_history: int
    limits: Limits
    max_results: int = 100  # the largest page of a room's archive (mam.max_results)


class MucService:
    def __init__(self, mod: ModuleAPI, domain: str, policy: Policy, secret: bytes) -> None:
        self.mod = mod
        self.router = mod.router
        self.domain = domain
        self.policy = policy
        self.secret = secret
        self.rooms: dict[str, Room] = {}
        self.where: dict[JID, set[Room]] = {}  # real full JID → rooms it is in (to leave them when it goes)
        self.joins: dict[JID, tuple[float, float]] = {}  # bare JID → (join allowance, when it was counted)
        self.room_store = mod.storage.map("muc_rooms")  # owner: the service domain; key: the room's name
        self.affiliation_store = mod.storage.map("muc_affiliations")  # owner: the room's bare JID
        self.vcard_store = mod.storage.keyvalue("muc_vcard")  # owner: the room's bare JID
        # owner: the room's bare JID; key: a member's bare JID; value: the nick it last used there (mentions)
        self.nick_store = mod.storage.map("muc_nicks")
        self.hat_store = mod.storage.map("muc_hats")  # owner: the room's bare JID; key: a bare JID; value: its hats
        self.blocklists = mod.storage.blocklist  # cached: peek answers without I/O
        self.archive = RoomArchive(mod.storage.archive("muc_mam"), mod.spawn)

    # --- rooms ------------------------------------------------------------------------------
    def new_room(self, name: str, config: RoomConfig) -> Room:
        # The room's stanza-ids are archive ids, so the id occupants see is the one they page by.
        room = Room(JID(name, self.domain), config, self.policy.limits, self.mod.is_admin, self.secret,
                    self.archive.new_id)
        room.on_enter = self._entered
        room.on_exit = self._exited
        self.rooms[name] = room
        return room

    def _entered(self, real: JID, room: Room) -> None:
        self.where.setdefault(real, set()).add(room)

    def _exited(self, real: JID, room: Room) -> None:
        rooms = self.where.get(real)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.where[real]

    async def load(self) -> None:
        """Persistent rooms, their configuration, affiliations and recent history, after a restart."""
        for name, data in (await self.room_store.items(self.domain)).items():
            saved = json.loads(data)
            room = self.new_room(name, RoomConfig.from_json(saved["config"]))
            room.subject, room.subject_from = saved.get("subject", ""), saved.get("subject_from", "")
            for bare, entry in (await self.affiliation_store.items(room.jid.text)).items():
                room.affiliations[parse_jid(bare)] = Affiliation.load(entry)
            for bare, nick in (await self.nick_store.items(room.jid.text)).items():
                room.seen_nicks[parse_jid(bare)] = nick.decode()
            for bare, worn in (await self.hat_store.items(room.jid.text)).items():
                room.hats[parse_jid(bare)] = hats.load(worn)
            length = room.config.history_length
            room.history.restore(await self.archive.recent(room, length), length, room.jid.text)
            room.vcard = await self.vcard_store.get(room.jid.text)
            if room.vcard is not None:
                room.avatar_hash = _photo_hash(fragment.load(room.vcard))

    async def save(self, room: Room, affiliations: list[JID] | None = None) -> None:
        """Write a persistent room (and the affiliations that changed; None: all of them)."""
        if not room.config.persistent or room.destroyed:
            return
        state = {"config": room.config.to_json(), "subject": room.subject, "subject_from": room.subject_from}
        await self.room_store.set(self.domain, room.jid.local, json.dumps(state).encode())
        changed = list(room.affiliations) if affiliations is None else affiliations
        for bare in changed:
            entry = room.affiliations.get(bare)
            await self.affiliation_store.set(room.jid.text, bare.text, entry.dump() if entry is not None else None)
        if affiliations is None:  # the whole room (it just became persistent): the nicks members used too
            for bare, nick in room.seen_nicks.items():
                await self.nick_store.set(room.jid.text, bare.text, nick.encode())
            for bare, worn in room.hats.items():
                await self.hat_store.set(room.jid.text, bare.text, hats.dump(worn))

    async def forget(self, room: Room) -> None:
        """A destroyed room, or an empty temporary one: gone from memory and storage."""
        if self.rooms.get(room.jid.local) is room:
            del self.rooms[room.jid.local]
        room.destroyed = True
        await self.room_store.set(self.domain, room.jid.local, None)
        await self.affiliation_store.clear(room.jid.text)
        await self.nick_store.clear(room.jid.text)
        await self.hat_store.clear(room.jid.text)
        await self.vcard_store.set(room.jid.text, None)
        await self.archive.clear(room)

    async def remove_gone(self, room: Room, real: JID, stanza: Element) -> None:
        """An occupant whose client or server answered the room with an error leaves it (status 333)."""
        await self.deliver(room.remove(room.by_jid[real], M.REMOVED_ERROR, status_text=_kick_text(stanza)))
        await self.close_if_empty(room)

    async def close_if_empty(self, room: Room) -> None:
        if not room.occupants and not room.config.persistent and not room.destroyed:
            if self.rooms.get(room.jid.local) is room:
                del self.rooms[room.jid.local]
            room.destroyed = True

    # --- delivery ---------------------------------------------------------------------------------
    async def deliver(self, outs: list[Out]) -> None:
        resource = self.router.resource
        has_accounts = self.router.hosts.has_accounts
        remote: list[tuple[Element, JID]] = []
        for out in outs:
            stanza, recipients = out.stanza, out.to
            if out.sender is not None:
                recipients = await self.unblocked(out.sender, recipients)
            head = tail = b""
            if len(recipients) > 1:
                text = stanza.serialize()
                cut = len(stanza.name) + 1
                head, tail = text[:cut].encode(), text[cut:].encode()
            for jid in recipients:
                copy = stanza.shallow_copy()  # each session its own element: a filter may keep it
                copy.attrs["to"] = jid.text
                entry = resource(jid) if jid.resource else None
                if entry is not None and entry.session is not None:
                    entry.session.send(copy, head + b' to="' + escape_attr(jid.text).encode() + b'"' + tail if head else None)
                elif entry is not None or not jid.resource or not has_accounts(jid.domain):
                    remote.append((copy, jid))
                # else: a local resource that is gone; session/closed takes it out of the room
        for copy, jid in remote:
            await self.router.route(copy, parse_jid(copy.attrs["from"]), jid)

    async def unblocked(self, sender: JID, recipients: list[JID]) -> list[JID]:
        """XEP-0191 in rooms, as Prosody does: who blocked an occupant gets none of its messages. Block
        lists are cached; one not cached yet (rare: entering loads it) is read first."""
        peek = self.blocklists.peek
        has_accounts = self.router.hosts.has_accounts
        kept: list[JID] = []
        for jid in recipients:
            if not has_accounts(jid.domain):
                kept.append(jid)
                continue
            blocked = peek(jid.bare.text)
            if blocked is None:
                blocked = await self.blocklists.get(jid.bare.text)
            if not blocked or not matches(blocked, sender):
                kept.append(jid)
        return kept

    # --- the service handler --------------------------------------------------------------------------
    async def handle(self, event: StanzaEvent) -> Any:
        to = event.to_jid
        kind = event.stanza.name
        if not to.local:
            if kind == "iq":
                return self.service_iq(event)
            return True if kind == "presence" else None
        room = self.rooms.get(to.local)
        if kind == "presence":
            await self.presence(event, room)
            return True
        if kind == "message":
            await self.message(event, room)
            return True
        if event.stanza.attrs.get("type") not in ("get", "set"):
            return True  # a result or error nobody waits for
        if room is None or room.destroyed:
            raise StanzaError("item-not-found", "No such room")
        if to.resource:
            await self.occupant_iq(event, room)
            return True
        return await self.room_iq(event, room)

    # --- presence: entering, leaving, nick changes -------------------------------------------------------
    async def presence(self, event: StanzaEvent, room: Room | None) -> None:
        stanza, real, to = event.stanza, event.from_jid, event.to_jid
        ptype = stanza.attrs.get("type")
        inside = room is not None and real in room.by_jid
        if ptype == "unavailable":
            if inside:
                assert room is not None
                await self.deliver(room.leave(real, stanza))
                await self.close_if_empty(room)
            return
        if ptype == "error":
            if inside:
                assert room is not None
                await self.remove_gone(room, real, stanza)
            return
        if ptype is not None:
            return  # subscriptions and probes mean nothing to a room
        if not to.resource:
            raise StanzaError("jid-malformed", "Enter a room as room@service/nick")
        if inside:
            assert room is not None
            if room.by_jid[real].nick == to.resource:
                await self.deliver(room.update_presence(real, stanza))
            else:
                await self.deliver(room.change_nick(real, to.resource, stanza))
                await self.remember_nick(room, real.bare, to.resource)
            return
        self.count_join(real.bare)
        if self.router.hosts.has_accounts(real.domain):
            await self.blocklists.get(real.bare.text)  # cached now, so fan-out to this occupant peeks
        room = self.rooms.get(to.local)  # again: the room may have come or gone while the list loaded
        creating = room is None or room.destroyed
        if creating:
            room = self.create(real, to.local, locked=stanza.find("x", M.NS_MUC) is not None)
        assert room is not None
        muc = stanza.find("x", M.NS_MUC) or Element("x", M.NS_MUC)
        try:
            outs = room.join(real, to.resource, stanza, muc, time.time(), creating=creating)
        except StanzaError:
            if creating:
                await self.close_if_empty(room)
            raise
        await self.deliver(outs)
        await self.remember_nick(room, real.bare, to.resource)

    async def remember_nick(self, room: Room, bare: JID, nick: str) -> None:
        """A member's nick, so that a mention of it reaches the member's phone once the member is away."""
        if room.seen_nicks.get(bare) == nick or M.AFFILIATION_RANK[room.affiliation(bare)] < 1:
            return
        room.seen_nicks[bare] = nick
        if room.config.persistent and not room.destroyed:
            await self.nick_store.set(room.jid.text, bare.text, nick.encode())

    def count_join(self, bare: JID) -> None:
        """A token bucket per account: ``joins_per_minute``, with as many in one burst."""
        rate = self.policy.joins_per_minute
        if rate <= 0:
            return
        now = time.monotonic()
        allowance, then = self.joins.get(bare, (float(rate), now))
        allowance = min(float(rate), allowance + (now - then) * rate / 60.0)
        if allowance < 1.0:
            raise StanzaError("resource-constraint", f"Too many rooms entered: at most {rate} a minute")
        self.joins[bare] = (allowance - 1.0, now)
        if len(self.joins) > 10_000:  # forget full buckets so the table stays small
            self.joins = {b: v for b, v in self.joins.items() if v[0] < rate - 1}

    def create(self, real: JID, name: str, locked: bool) -> Room:
        """XEP-0045 §10.1: the first to enter creates the room and owns it. Runs without a wait, so two
        first comers cannot both create it."""
        policy = self.policy.create_rooms
        admin_user = self.mod.is_admin(real)
        if policy == "admins" and not admin_user:
            raise StanzaError("not-allowed", "Only the server's administrators may create rooms")
        if policy == "local" and not self.router.hosts.has_accounts(real.domain):
            raise StanzaError("not-allowed", "Only users of this server may create rooms")
        if not admin_user:
            owned = sum(1 for r in self.rooms.values() if r.affiliation(real.bare) == "owner")
            if owned >= self.policy.max_rooms_per_user:
                raise StanzaError("policy-violation",
                                  f"You own {owned} rooms already, the most one may own here")
        room = self.new_room(name, RoomConfig(history_length=self.policy.default_history))
        room.affiliations[real.bare] = Affiliation("owner")
        room.locked = locked and self.policy.lock_new_rooms
        return room

    # --- messages -------------------------------------------------------------------------------------------
    async def message(self, event: StanzaEvent, room: Room | None) -> None:
        stanza, real, to = event.stanza, event.from_jid, event.to_jid
        mtype = stanza.attrs.get("type", "normal")
        if mtype == "error":
            # A message the room sent bounced: an occupant whose server or client is gone (a remote server that
            # cannot be reached any more, above all) leaves, or every later message would bounce again.
            if room is not None and real in room.by_jid and _occupant_gone(stanza):
                await self.remove_gone(room, real, stanza)
            return
        if room is None or room.destroyed:
            raise StanzaError("item-not-found", "No such room")
        if to.resource:
            await self.deliver(room.private_message(real, to.resource, stanza))
            return
        if room.locked and real in room.by_jid and _puts_room_to_use(stanza, mtype):
            # Some clients (Dino) never answer the 201 with a configuration: an owner who speaks in the new
            # room or invites someone to it takes it as an instant room (XEP-0045 §10.1.2), default settings.
            room.locked = False
        if mtype == "groupchat":
            await self.groupchat(room, real, stanza)
            return
        x = stanza.find("x", M.NS_USER)
        if x is not None and x.find("invite") is not None:
            outcome = admin.invite(room, real, x)
            await self.deliver(outcome.outs)
            await self.save(room, outcome.affiliations)
            return
        if x is not None and x.find("decline") is not None:
            await self.deliver(admin.decline(room, real, x))
            return
        form = stanza.find("x", M.NS_DATA)
        if form is not None:
            await self.deliver(admin.voice_form(room, real, form))
            return
        raise StanzaError("bad-request", "Send groupchat messages to the room, or chat to an occupant")

    async def groupchat(self, room: Room, real: JID, stanza: Element) -> None:
        """A message to everyone: relayed, archived, and for a retraction (XEP-0424) the original's tombstone."""
        retraction = stanza.find("retract", M.NS_RETRACT)
        retracted = None
        if retraction is not None:
            retracted = retraction.attrs.get("id", "")
            original = await self.original(room, retracted)
            if original is None:
                raise StanzaError("item-not-found", "This room has no message with that id")
            retract.check_own(room, real, original)
        subject = room.subject, room.subject_from
        now = time.time()
        outs = room.groupchat(real, stanza, now)
        await self.deliver(outs)
        if (room.subject, room.subject_from) != subject:
            await self.save(room, [])
        message = outs[0].stanza
        if room.config.members_only and outs[0].sender is not None:
            self.notify_away(room, message, real.bare)
        if room.config.persistent and (message.find("body") is not None or retraction is not None):
            self.archive.keep(room, message, real.bare)
        if retracted is not None:
            await self.tombstone(room, retracted, now, None)

    # --- members who are away (XEP-0357 push, through the push module) ------------------------------------
    def notify_away(self, room: Room, message: Element, sender: JID) -> None:
        """A message in a members-only room wakes the phones of members who are neither in the room nor
        connected at all; it says so when it mentions them. Who is away is found here, on the message's
        path, with no I/O; the notifications themselves (block lists, registrations) are a task of their own."""
        push = self._push()
        if push is None or not push.wakes(message) or message.find("retract", M.NS_RETRACT) is not None:
            return  # a retraction's body is only a fallback: nothing new to wake anyone for
        present = {o.bare for o in room.occupants.values()}
        has_accounts = self.router.hosts.has_accounts
        away = [bare for bare, entry in room.affiliations.items()
                if M.AFFILIATION_RANK[entry.affiliation] >= 1 and bare not in present and bare != sender
                and has_accounts(bare.domain) and not self._connected(bare)]
        if away:
            self.mod.spawn(self._notify_away(push, room, message, sender, away))

    async def _notify_away(self, push: Any, room: Room, message: Element, sender: JID, away: list[JID]) -> None:
        for bare in await self.unblocked(sender, away):
            await push.room_message(bare, message, mentions(message, room.jid, room.nicks_of(bare), bare))

    def _push(self) -> Any:
        try:
            return self.mod.require("push")
        except RuntimeError:
            return None  # push notifications are not switched on

    def _connected(self, bare: JID) -> bool:
        """Whether one of the account's clients is connected (a resource on another node counts as one)."""
        return any(r.session is None or r.session.connection is not None for r in self.router.resources(bare))

    def mentioned(self, occupant: JID, message: Element) -> bool:
        """Whether a message of one of this service's rooms mentions the occupant with that real JID."""
        room = self.rooms.get(parse_jid(message.attrs.get("from", "")).local or "")
        inside = room.by_jid.get(occupant) if room is not None else None
        if room is None or inside is None:
            return False
        return mentions(message, room.jid, room.nicks_of(occupant.bare) | {inside.nick}, occupant.bare)

    async def original(self, room: Room, stanza_id: str) -> Element | None:
        """A message of the room by its stanza-id: in the recent history, else in the archive."""
        found = room.history.find(stanza_id)
        if found is None and room.config.persistent:
            found = await self.archive.original(room, stanza_id)
        return found

    async def tombstone(self, room: Room, stanza_id: str, now: float, moderation: Element | None) -> None:
        kept = room.history.find(stanza_id)
        if kept is not None:
            room.history.replace(stanza_id, retract.tombstone(kept, now, moderation))
        if room.config.persistent:
            stored = await self.archive.original(room, stanza_id)
            if stored is not None:
                await self.archive.replace(room, stanza_id, retract.tombstone(stored, now, moderation))

    async def moderate(self, room: Room, real: JID, request: Element) -> None:
        """XEP-0425: a moderator retracts a message: announced to everyone, archived, tombstoned."""
        stanza_id = request.attrs.get("id", "")
        out, moderation = retract.moderate(room, real, request)
        if not stanza_id or await self.original(room, stanza_id) is None:
            raise StanzaError("item-not-found", "This room has no message with that id")
        now = time.time()
        await self.deliver([out])
        if room.config.persistent:
            self.archive.keep(room, out.stanza, None)
        await self.tombstone(room, stanza_id, now, moderation)

    async def vcard(self, room: Room, real: JID, vcard: Element, get: bool) -> Element | None:
        """The room's vCard (XEP-0054), whose photo is its avatar: anyone reads it, owners set it; occupants
        learn the new avatar's hash from the room's presence (vcard-temp:x:update)."""
        if get:
            return fragment.load(room.vcard) if room.vcard is not None else Element("vCard", M.NS_VCARD)
        if room.affiliation(real.bare) != "owner":
            raise StanzaError("forbidden", "Only owners set the room's vCard")
        avatar_hash = _photo_hash(vcard)
        room.vcard = fragment.dump(vcard) if vcard.children else None
        room.avatar_hash = avatar_hash
        if room.config.persistent:
            await self.vcard_store.set(room.jid.text, room.vcard)
        presence = room.avatar_presence()
        await self.deliver([Out(presence, room.recipients())])
        return None

    # --- iq ---------------------------------------------------------------------------------------------------
    def service_iq(self, event: StanzaEvent) -> bool | None:
        child = event.stanza.first_child()
        if event.stanza.attrs.get("type") != "get" or child is None:
            return None
        if child.ns == NS_DISCO_ITEMS and child.name == "query" and not child.attrs.get("node"):
            query = Element("query", NS_DISCO_ITEMS)
            for name, room in sorted(self.rooms.items()):
                if room.config.public and not room.locked and not room.destroyed:
                    query.add("item", attrs={"jid": room.jid.text, "name": room.config.name or name})
            self.router.reply_result(event, query)
            return True
        if child.ns == NS_UNIQUE and child.name == "unique":
            name = secrets.token_hex(8)
            while name in self.rooms:
                name = secrets.token_hex(8)
            unique = Element("unique", NS_UNIQUE, children=[name])
            self.router.reply_result(event, unique)
            return True
        return None  # disco#info of the service: the server answers from what was registered

    async def room_iq(self, event: StanzaEvent, room: Room) -> Any:
        stanza, real = event.stanza, event.from_jid
        child = stanza.first_child()
        if child is None:
            raise StanzaError("bad-request", "An iq carries one payload")
        get = stanza.attrs["type"] == "get"
        ns = child.ns
        if ns == NS_DISCO_INFO and get:
            answer = self.room_info(room, real, child.attrs.get("node"))
        elif ns == NS_DISCO_ITEMS and get and child.attrs.get("node") == NS_COMMANDS:
            answer = hats.command_items(room, real)
        elif ns == NS_DISCO_ITEMS and get:
            answer = Element("query", NS_DISCO_ITEMS)  # occupants stay private (XEP-0045 §6.5 allows it)
        elif ns == NS_COMMANDS and child.name == "command" and not get:
            answer = await self.hat_command(room, real, child)
        elif ns == NS_PING and get:
            answer = None
        elif ns == NS_MAM and child.name == "query":
            if get:
                answer = form_fields()
            elif not room.config.persistent:
                raise StanzaError("feature-not-implemented", "Only persistent rooms keep an archive")
            else:
                answer = await self.archive.query(event, room, child, self.policy.max_results)
        elif ns == M.NS_MODERATE and child.name == "moderate" and not get:
            await self.moderate(room, real, child)
            answer = None
        elif ns == M.NS_VCARD and child.name == "vCard":
            answer = await self.vcard(room, real, child, get)
        elif ns == M.NS_OWNER:
            answer = await self.owner_iq(room, real, child, get)
        elif ns == M.NS_ADMIN:
            if get:
                answer = admin.admin_list(room, real, child)
            else:
                outcome = admin.admin_set(room, real, child)
                await self.save(room, outcome.affiliations)
                await self.deliver(outcome.outs)
                answer = None
        elif ns == M.NS_REGISTER:
            if get:
                answer = admin.register_query(room, real)
            else:
                outcome = admin.register(room, real, child)
                await self.save(room, outcome.affiliations)
                answer = None
        else:
            raise StanzaError("service-unavailable")
        self.router.reply_result(event, answer)
        return True

    async def hat_command(self, room: Room, real: JID, command: Element) -> Element:
        """XEP-0317: a step of the don or doff command; the wearer's presence tells the room at once."""
        answer, wearer = hats.run(room, real, command)
        if wearer is not None:
            if room.config.persistent and not room.destroyed:
                worn = room.hats.get(wearer)
                await self.hat_store.set(room.jid.text, wearer.text, hats.dump(worn) if worn else None)
            outs: list[Out] = []
            for occupant in room.occupants.values():
                if occupant.bare == wearer:
                    outs += room.broadcast_presence(occupant)
            await self.deliver(outs)
        return answer

    async def owner_iq(self, room: Room, real: JID, query: Element, get: bool) -> Element | None:
        """XEP-0045 §10.1-10.2 and §10.9: the configuration form, its submission or cancel, destruction."""
        if room.affiliation(real.bare) != "owner":
            raise StanzaError("forbidden", "Only owners configure the room")
        limits = self.policy.limits
        if get:
            answer = Element("query", M.NS_OWNER)
            answer.append(forms.config_form(room.config, room.with_affiliation("owner"),
                                            room.with_affiliation("admin"), limits.max_users))
            return answer
        destroy_el = query.find("destroy")
        if destroy_el is not None:
            outs = admin.destroy(room, real, destroy_el)
            await self.forget(room)
            await self.deliver(outs)
            return None
        x = query.find("x", M.NS_DATA)
        if x is None:
            raise StanzaError("bad-request", "Submit or cancel the configuration form")
        if x.attrs.get("type") == "cancel":
            if room.locked:  # §10.1.3: cancelling the first configuration destroys the new room
                outs = admin.destroy(room, None, None)
                await self.forget(room)
                await self.deliver(outs)
            return None
        if x.attrs.get("type") != "submit":
            raise StanzaError("bad-request", "The configuration form is submitted or cancelled")
        values = forms.read_form(x, forms.FORM_CONFIG)
        config, owners, admins = forms.apply_config(room.config, values, limits.max_users, limits.max_history)
        changed = self.set_lists(room, real, owners, admins)
        was_persistent = room.config.persistent
        became_members_only = config.members_only and not room.config.members_only
        # A room's first configuration changes nobody's privacy: it had no one else in it.
        anonymity_changed = config.whois != room.config.whois and not room.locked
        room.config = config
        room.locked = False
        if was_persistent and not config.persistent:
            await self.forget(room)
            self.rooms[room.jid.local] = room
            room.destroyed = False
        await self.save(room, None if config.persistent and not was_persistent else changed)
        outs = admin.members_only_now(room) if became_members_only else []
        if anonymity_changed:
            outs += [self.config_notice(room, "172" if config.non_anonymous else "173")]
        await self.deliver(outs)
        await self.close_if_empty(room)
        return None

    def set_lists(self, room: Room, real: JID, owners: list[JID] | None, admins: list[JID] | None) -> list[JID]:
        """Owner and admin lists from the form replace the old ones (XEP-0045 §10.2)."""
        changed: list[JID] = []
        for wanted, affiliation in ((owners, "owner"), (admins, "admin")):
            if wanted is None:
                continue
            if affiliation == "owner" and not wanted:
                raise StanzaError("conflict", "A room keeps at least one owner")
            for bare in room.with_affiliation(affiliation):
                if bare not in wanted:
                    room.affiliations.pop(bare)
                    changed.append(bare)
            for bare in wanted:
                if room.affiliation(bare) != affiliation and not self.mod.is_admin(bare):
                    entry = room.affiliations.get(bare)
                    room.affiliations[bare] = Affiliation(affiliation, entry.nick if entry else "")
                    changed.append(bare)
        for occupant in room.occupants.values():
            if occupant.bare in changed:
                occupant.role = M.default_role(room.affiliation(occupant.bare), room.config.moderated)
        return changed

    def config_notice(self, room: Room, code: str) -> Out:
        """§10.2.1: occupants learn that a change of configuration affects their privacy."""
        message = Element("message", attrs={"from": room.jid.text, "type": "groupchat"})
        message.add("x", M.NS_USER).add("status", attrs={"code": code})
        return Out(message, room.recipients())

    def room_info(self, room: Room, real: JID, node: str | None) -> Element:
        query = Element("query", NS_DISCO_INFO)
        if node == USER_NODE:
            query.attrs["node"] = node
            entry = room.affiliations.get(real.bare)
            if entry is not None and entry.nick:
                query.add("identity", attrs={"category": "conference", "type": "text", "name": entry.nick})
            return query
        if node:
            raise StanzaError("item-not-found")
        config = room.config
        query.add("identity", attrs={"category": "conference", "type": "text", "name": config.name or room.jid.local})
        flags = [
            M.NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS, M.NS_REGISTER, M.NS_REQUEST, M.NS_SID, M.NS_OCCUPANT_ID,
            M.NS_SELF_PING, M.NS_STABLE_ID, NS_PING, M.NS_RETRACT, M.NS_MODERATE, M.NS_VCARD, M.NS_HATS, NS_COMMANDS,
            "muc_public" if config.public else "muc_hidden",
            "muc_persistent" if config.persistent else "muc_temporary",
            "muc_membersonly" if config.members_only else "muc_open",
            "muc_moderated" if config.moderated else "muc_unmoderated",
            "muc_nonanonymous" if config.non_anonymous else "muc_semianonymous",
            "muc_passwordprotected" if config.password else "muc_unsecured",
        ]
        if config.persistent:
            flags.append(NS_MAM)  # temporary rooms keep nothing beyond their recent history
        for var in sorted(flags):
            query.add("feature", attrs={"var": var})
        query.append(forms.info_form(config, len(room.occupants), room.subject, room.avatar_hash))
        return query

    async def occupant_iq(self, event: StanzaEvent, room: Room) -> None:
        """XEP-0045 §7.5 iq between occupants, forwarded to the real address; XEP-0410 self-ping."""
        stanza, real = event.stanza, event.from_jid
        sender = room.by_jid.get(real)
        if sender is None:
            raise StanzaError("not-acceptable", "You are not in this room")
        nick = event.to_jid.resource
        child = stanza.first_child()
        if nick == sender.nick and child is not None and child.ns == NS_PING:
            self.router.reply_result(event)
            return
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "No such occupant")
        if not M.may_send_pm(room.config.allow_pm, sender.role):
            raise StanzaError("forbidden", "Private exchanges are not allowed in this room")
        to = target.bare if child is not None and child.ns == M.NS_VCARD else target.jid
        # Awaited apart from the sender's stanzas: two clients that query each other at once (caps, as
        # profanity does on entering) would otherwise each wait on the other until the timeout.
        self.mod.spawn(self.forward_iq(event, to, room.occupant_jid(sender.nick)))

    async def forward_iq(self, event: StanzaEvent, to: JID, sender: JID) -> None:
        stanza = event.stanza
        request = Element("iq", attrs={"type": stanza.attrs["type"]}, children=list(stanza.children))
        try:
            answer = await self.mod.request(request, to, sender)
        except TimeoutError:
            self.router.reply_error(event, StanzaError("recipient-unavailable", "The occupant did not answer"))
            return
        reply = Element("iq", attrs={"type": answer.attrs.get("type", "error")}, children=list(answer.children))
        if "id" in stanza.attrs:
            reply.attrs["id"] = stanza.attrs["id"]
        await self.router.route(reply, event.to_jid, event.from_jid)

    # --- sessions that end ---------------------------------------------------------------------------------
    async def session_gone(self, real: JID) -> None:
        for room in list(self.where.get(real, ())):
            if real in room.by_jid:
                await self.deliver(room.leave(real))
                await self.close_if_empty(room)


def _photo_hash(vcard: Element) -> str:
    """XEP-0153 §4: the SHA-1 of the photo's bytes, hex; "" for a vCard without a photo."""
    photo = vcard.find("PHOTO", M.NS_VCARD)
    binval = photo.child_text("BINVAL", M.NS_VCARD) if photo is not None else None
    if not binval:
        return ""
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except binascii.Error:
        raise StanzaError("bad-request", "The photo's BINVAL is not base64") from None
    return hashlib.sha1(data).hexdigest()


# Errors that say the occupant cannot be reached at all, not that its client refused one message.
_GONE = frozenset({
    "gone", "internal-server-error", "item-not-found", "jid-malformed", "recipient-unavailable", "redirect",
    "remote-server-not-found", "remote-server-timeout", "service-unavailable",
})


def _puts_room_to_use(stanza: Element, mtype: str) -> bool:
    """A message to everyone with text or a subject, or a mediated invitation."""
    if mtype == "groupchat":
        return stanza.find("body") is not None or stanza.find("subject") is not None
    x = stanza.find("x", M.NS_USER)
    return x is not None and x.find("invite") is not None


def _occupant_gone(stanza: Element) -> bool:
    error = stanza.find("error")
    if error is None:
        return False
    return any(child.name in _GONE for child in error.elements() if child.ns == STANZA_ERRORS)


def _kick_text(stanza: Element) -> str:
    """Prosody's wording for an occupant removed because its client answered with an error (status 333)."""
    error = stanza.find("error")
    condition = text = ""
    if error is not None:
        for child in error.elements():
            if child.name == "text":
                text = child.text
            elif not condition:
                condition = child.name.replace("-", " ")
    return f"Kicked: {condition}: {text}" if text else f"Kicked: {condition or 'error'}"

