"""Persistent rooms in the generic stores, on every storage backend: what one service saved, the next one
(after a restart, or a crash) loads — configuration, affiliations with reserved nicks, subject, and the
recent history, from the room's archive as each message was written."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from test_storage_contract import backend, postgres_database, storage  # noqa: F401

from sakari.jid import parse_jid
from sakari.modules.muc.model import Affiliation, RoomConfig
from sakari.modules.muc.room import Limits
from sakari.modules.muc.service import MucService, Policy
from sakari.storage.base import Storage
from sakari.xml.element import Element

pytestmark = pytest.mark.asyncio

DOMAIN = "conference.example.org"
OWNER = parse_jid("owner@example.org/phone")


def service(storage: Storage) -> MucService:
    mod = SimpleNamespace(storage=storage, router=None, is_admin=lambda jid: False, spawn=asyncio.ensure_future)
    policy = Policy("local", 10, 0, True, 20, Limits(100, 50))
    return MucService(mod, DOMAIN, policy, b"secret")  # type: ignore[arg-type]


async def test_a_persistent_room_is_loaded_as_it_was_saved(storage: Storage) -> None:
    first = service(storage)
    room = first.new_room("tea", RoomConfig(name="Tea", persistent=True, members_only=True))
    room.affiliations[OWNER.bare] = Affiliation("owner")
    room.affiliations[parse_jid("bob@example.org")] = Affiliation("member", nick="bobby")
    room.subject, room.subject_from = "Teatime", "owner"
    room.seen_nicks[parse_jid("bob@example.org")] = "Bob"  # the nick he last used, for mentions
    room.hats[parse_jid("bob@example.org")] = {"urn:example:hats#host": "Host"}  # XEP-0317
    message = Element("message", attrs={"from": "tea@conference.example.org/owner", "type": "groupchat"})
    message.add("body", text="kept")
    message.add("stanza-id", "urn:xmpp:sid:0", {"id": room.new_stanza_id(), "by": room.jid.text})
    first.archive.keep(room, message, OWNER.bare)  # as the room relays it: no shutdown writes it again
    temporary = first.new_room("gone", RoomConfig())
    temporary.affiliations[OWNER.bare] = Affiliation("owner")
    await first.save(room)
    await first.save(temporary)
    await first.archive.writer.written()

    second = service(storage)
    await second.load()
    assert set(second.rooms) == {"tea"}
    again = second.rooms["tea"]
    assert again.config == room.config
    assert again.affiliations == room.affiliations
    assert (again.subject, again.subject_from) == ("Teatime", "owner")
    assert again.seen_nicks == room.seen_nicks and again.hats == room.hats
    [kept] = [e.stanza for e in again.history.entries]
    assert kept.child_text("body") == "kept" and kept.find("delay", "urn:xmpp:delay") is not None
    assert kept.find("x", "http://jabber.org/protocol/muc#user") is None, "newcomers never see real JIDs"


async def test_a_forgotten_room_leaves_nothing_behind(storage: Storage) -> None:
    first = service(storage)
    room = first.new_room("tea", RoomConfig(persistent=True))
    room.affiliations[OWNER.bare] = Affiliation("owner")
    await first.save(room)
    message = Element("message", attrs={"from": "tea@conference.example.org/owner", "type": "groupchat"})
    message.add("stanza-id", "urn:xmpp:sid:0", {"id": room.new_stanza_id(), "by": room.jid.text})
    first.archive.keep(room, message, OWNER.bare)
    await first.forget(room)
    second = service(storage)
    await second.load()
    assert second.rooms == {}
    assert await storage.map("muc_affiliations").items(room.jid.text) == {}
    assert await storage.archive("muc_mam").count(room.jid.text) == 0
