"""The room logic of group chat without I/O: stanzas in, deliveries (``Out``) out (XEP-0045)."""

import pytest

from sakari.jid import JID, parse_jid
from sakari.modules.muc import admin, forms
from sakari.modules.muc import model as M
from sakari.modules.muc.model import Affiliation, RoomConfig
from sakari.modules.muc.room import Limits, Out, Room
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

ROOM = parse_jid("tea@conference.example.org")
OWNER = parse_jid("owner@example.org/phone")
ADMIN = parse_jid("admin@example.org/pc")
MEMBER = parse_jid("member@example.org/pc")
GUEST = parse_jid("guest@example.org/pc")
SERVER_ADMIN = parse_jid("root@example.org/x")


def make_room(**config) -> Room:
    counter = iter(range(1000))
    room = Room(ROOM, RoomConfig(**config), Limits(max_users=5, max_history=50), lambda j: j.bare == SERVER_ADMIN.bare,
                b"secret", lambda: f"id{next(counter)}")
    room.affiliations[OWNER.bare] = Affiliation("owner")
    room.affiliations[ADMIN.bare] = Affiliation("admin")
    room.affiliations[MEMBER.bare] = Affiliation("member")
    return room


def join(room: Room, real: JID, nick: str, password: str | None = None, history: Element | None = None) -> list[Out]:
    muc = Element("x", M.NS_MUC)
    if password is not None:
        muc.add("password", text=password)
    if history is not None:
        muc.append(history)
    return room.join(real, nick, Element("presence"), muc, now=1000.0)


def condition(excinfo) -> str:
    return excinfo.value.condition


def codes(stanza: Element) -> list[str]:
    x = stanza.find("x", M.NS_USER)
    return [s.attrs["code"] for s in x.find_all("status")]


def item(stanza: Element) -> dict[str, str]:
    return stanza.find("x", M.NS_USER).find("item").attrs


def groupchat(body: str) -> Element:
    message = Element("message", attrs={"type": "groupchat", "id": "c1"})
    message.add("body", text=body)
    return message


# --- default roles and who may change what --------------------------------------------------------
@pytest.mark.parametrize("affiliation,moderated,role", [
    ("owner", False, "moderator"), ("admin", True, "moderator"), ("member", True, "participant"),
    ("none", False, "participant"), ("none", True, "visitor"),
])
def test_the_role_on_entering_follows_the_affiliation(affiliation, moderated, role):
    assert M.default_role(affiliation, moderated) == role


@pytest.mark.parametrize("actor,now,new,allowed", [
    ("owner", "owner", "none", True), ("owner", "none", "admin", True), ("admin", "member", "outcast", True),
    ("admin", "none", "member", True), ("admin", "admin", "none", False), ("admin", "none", "admin", False),
    ("admin", "owner", "outcast", False), ("member", "none", "member", False), ("none", "none", "outcast", False),
])
def test_who_may_change_an_affiliation(actor, now, new, allowed):
    assert M.can_change_affiliation(actor, now, new) is allowed


@pytest.mark.parametrize("actor_role,actor_aff,target_aff,target_role,new,allowed", [
    ("moderator", "none", "none", "participant", "none", True),  # a moderator kicks a participant
    ("moderator", "member", "none", "participant", "visitor", True),  # takes voice
    ("moderator", "none", "member", "participant", "none", False),  # not someone of higher affiliation
    ("moderator", "owner", "admin", "moderator", "none", False),  # never an admin
    ("moderator", "member", "none", "participant", "moderator", False),  # only admins make moderators
    ("moderator", "admin", "none", "participant", "moderator", True),
    ("participant", "member", "none", "participant", "none", False),
])
def test_who_may_change_a_role(actor_role, actor_aff, target_aff, target_role, new, allowed):
    assert M.can_change_role(actor_role, actor_aff, target_aff, target_role, new) is allowed


# --- entering ---------------------------------------------------------------------------------------------
def test_entering_sends_the_others_then_oneself_then_the_subject():
    room = make_room()
    join(room, OWNER, "owner")
    outs = join(room, GUEST, "guest")
    to_guest = [o.stanza for o in outs if GUEST in o.to]
    assert to_guest[0].attrs["from"] == "tea@conference.example.org/owner"
    assert "jid" not in item(to_guest[0]), "semi-anonymous: participants do not see real JIDs"
    assert codes(to_guest[1]) == ["110"] and item(to_guest[1])["jid"] == GUEST.text
    assert to_guest[-1].find("subject") is not None
    to_owner = [o.stanza for o in outs if OWNER in o.to]
    assert item(to_owner[0]) == {"jid": GUEST.text, "affiliation": "none", "role": "participant"}


def test_a_creator_gets_201_before_the_item_and_110_after_it():
    room = make_room()
    outs = room.join(OWNER, "owner", Element("presence"), Element("x", M.NS_MUC), now=0, creating=True)
    own = outs[0].stanza
    assert [c.name for c in own.find("x", M.NS_USER).elements()] == ["status", "item", "status"]
    assert codes(own) == ["201", "110"]


@pytest.mark.parametrize("setup,real,nick,password,expected", [
    (dict(members_only=True), GUEST, "g", None, "registration-required"),
    (dict(password="s3cret"), GUEST, "g", "wrong", "not-authorized"),
    (dict(), GUEST, "member", None, "conflict"),  # the member is in the room under that nick
])
def test_entry_is_refused_as_the_xep_lists(setup, real, nick, password, expected):
    room = make_room(**setup)
    join(room, MEMBER, "member", setup.get("password"))
    with pytest.raises(StanzaError) as excinfo:
        join(room, real, nick, password)
    assert condition(excinfo) == expected


def test_banned_users_are_forbidden_and_a_full_room_is_unavailable_but_not_to_admins():
    room = make_room(max_users=1)
    room.affiliations[GUEST.bare] = Affiliation("outcast")
    with pytest.raises(StanzaError) as excinfo:
        join(room, GUEST, "g")
    assert condition(excinfo) == "forbidden"
    join(room, MEMBER, "member")
    with pytest.raises(StanzaError) as excinfo:
        join(room, parse_jid("other@example.org/x"), "other")
    assert condition(excinfo) == "service-unavailable"
    join(room, ADMIN, "admin")  # XEP-0045 §7.2.10: admins and owners may still enter


def test_a_locked_room_lets_only_owners_in_and_server_admins_own_every_room():
    room = make_room()
    room.locked = True
    with pytest.raises(StanzaError) as excinfo:
        join(room, MEMBER, "m")
    assert condition(excinfo) == "item-not-found"
    outs = join(room, SERVER_ADMIN, "root")
    assert item([o for o in outs if SERVER_ADMIN in o.to][0].stanza)["affiliation"] == "owner"


def test_a_reserved_nick_is_only_its_owners():
    room = make_room()
    room.affiliations[MEMBER.bare] = Affiliation("member", nick="mm")
    with pytest.raises(StanzaError) as excinfo:
        join(room, GUEST, "mm")
    assert condition(excinfo) == "conflict"
    join(room, MEMBER, "mm")


def test_two_resources_of_one_account_share_a_nick_and_leave_one_at_a_time():
    room = make_room()
    join(room, OWNER, "owner")
    other = parse_jid("owner@example.org/laptop")
    outs = join(room, other, "owner")
    assert all(o.to == [other] for o in outs), "the others see no new occupant"
    assert set(room.recipients()) == {OWNER, other}
    outs = room.leave(other)
    assert [o.to for o in outs] == [[other]] and "owner" in room.occupants


# --- messages, history, subject -------------------------------------------------------------------------
def test_one_output_per_message_for_all_occupants_with_the_rooms_ids():
    room = make_room()
    for real, nick in ((OWNER, "owner"), (MEMBER, "member"), (GUEST, "guest")):
        join(room, real, nick)
    claim = groupchat("hi")
    claim.add("stanza-id", M.NS_SID, {"id": "forged", "by": ROOM.text})
    outs = room.groupchat(GUEST, claim, now=1.0)
    assert len(outs) == 1 and set(outs[0].to) == {OWNER, MEMBER, GUEST}
    ids = outs[0].stanza.find_all("stanza-id", M.NS_SID)
    assert len(ids) == 1 and ids[0].attrs["id"] == "id0"
    assert outs[0].stanza.find("occupant-id", M.NS_OCCUPANT_ID).attrs["id"] == room.occupants["guest"].occupant_id
    assert "to" not in outs[0].stanza.attrs


def test_visitors_have_no_voice_in_a_moderated_room():
    room = make_room(moderated=True)
    join(room, GUEST, "guest")
    assert room.occupants["guest"].role == "visitor"
    with pytest.raises(StanzaError) as excinfo:
        room.groupchat(GUEST, groupchat("hi"), now=1.0)
    assert condition(excinfo) == "forbidden"


def test_an_encrypted_only_room_refuses_plaintext():
    room = make_room(encrypted_only=True)
    join(room, GUEST, "guest")
    with pytest.raises(StanzaError) as excinfo:
        room.groupchat(GUEST, groupchat("plain"), now=1.0)
    assert condition(excinfo) == "not-acceptable"
    sealed = groupchat("I sent you an OMEMO encrypted message")
    sealed.add("encrypted", "eu.siacs.conversations.axolotl")
    assert room.groupchat(GUEST, sealed, now=1.0)


def test_history_limits_by_count_chars_and_time():
    room = make_room(history_length=3)
    join(room, OWNER, "owner")
    for n in range(5):
        room.groupchat(OWNER, groupchat(f"m{n}"), now=100.0 + n)
    stanzas = [o.stanza for o in join(room, GUEST, "guest") if o.stanza.find("delay", M.NS_DELAY) is not None]
    assert [s.child_text("body") for s in stanzas] == ["m2", "m3", "m4"]
    assert stanzas[0].find("delay", M.NS_DELAY).attrs["from"] == ROOM.text

    def bodies(**limits):
        from sakari.modules.muc.history import HistoryLimits

        return [s.child_text("body") for s in room.history.select(HistoryLimits(3, **limits), now=104.5)]

    assert bodies(seconds=1.0) == ["m4"]
    assert bodies(since=103.0) == ["m3", "m4"]
    one = len(room.history.entries[-1].stanza.serialize())
    assert bodies(maxchars=one) == ["m4"]


def test_the_subject_is_for_moderators_unless_the_room_lets_participants():
    room = make_room()
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    subject = Element("message", attrs={"type": "groupchat"})
    subject.add("subject", text="Tea")
    with pytest.raises(StanzaError):
        room.groupchat(GUEST, subject, now=1.0)
    room.config.change_subject = True
    room.groupchat(GUEST, subject, now=1.0)
    assert room.subject == "Tea" and room.subject_message().attrs["from"].endswith("/guest")


def test_private_messages_follow_allow_pm():
    room = make_room(allow_pm="moderators")
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    pm = Element("message", attrs={"type": "chat"})
    pm.add("body", text="psst")
    with pytest.raises(StanzaError) as excinfo:
        room.private_message(GUEST, "owner", pm)
    assert condition(excinfo) == "forbidden"
    [out] = room.private_message(OWNER, "guest", pm)
    assert out.to == [GUEST] and out.stanza.attrs["from"].endswith("/owner")


def test_a_nick_change_is_unavailable_with_303_then_the_new_presence():
    room = make_room()
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    outs = room.change_nick(GUEST, "visitor2", Element("presence"))
    first = [o.stanza for o in outs if OWNER in o.to]
    assert first[0].attrs["type"] == "unavailable" and codes(first[0]) == ["303"] and item(first[0])["nick"] == "visitor2"
    assert first[1].attrs["from"].endswith("/visitor2")
    with pytest.raises(StanzaError) as excinfo:
        room.change_nick(GUEST, "owner", Element("presence"))
    assert condition(excinfo) == "conflict"


# --- moderation ---------------------------------------------------------------------------------------------
def test_kick_ban_and_voice():
    room = make_room(moderated=True)
    join(room, OWNER, "owner")
    join(room, ADMIN, "admin")
    join(room, GUEST, "guest")
    outs = admin.set_role(room, OWNER, "guest", "participant", "speak up")
    assert item(outs[0].stanza)["role"] == "participant"
    with pytest.raises(StanzaError) as excinfo:
        admin.set_role(room, GUEST, "admin", "none")
    assert condition(excinfo) == "forbidden"
    with pytest.raises(StanzaError) as excinfo:
        admin.set_role(room, ADMIN, "owner", "none")
    assert condition(excinfo) == "not-allowed"
    outs = admin.set_role(room, ADMIN, "guest", "none", "out")
    kicked = [o.stanza for o in outs if GUEST in o.to][0]
    assert codes(kicked) == ["307", "110"] and "guest" not in room.occupants
    assert kicked.find("x", M.NS_USER).find("item").find("actor").attrs["nick"] == "admin"
    join(room, GUEST, "guest")
    done = admin.set_affiliation(room, ADMIN, GUEST.bare, "outcast", "spam")
    assert done.affiliations == [GUEST.bare] and "301" in codes(done.outs[0].stanza)
    with pytest.raises(StanzaError) as excinfo:
        join(room, GUEST, "guest")
    assert condition(excinfo) == "forbidden"


def test_admins_may_not_touch_owners_and_the_last_owner_stays():
    room = make_room()
    with pytest.raises(StanzaError) as excinfo:
        admin.set_affiliation(room, ADMIN, OWNER.bare, "none")
    assert condition(excinfo) == "not-allowed"
    with pytest.raises(StanzaError) as excinfo:
        admin.set_affiliation(room, OWNER, OWNER.bare, "admin")
    assert condition(excinfo) == "conflict"
    with pytest.raises(StanzaError) as excinfo:
        admin.set_affiliation(room, MEMBER, GUEST.bare, "member")
    assert condition(excinfo) == "forbidden"


def test_losing_membership_in_a_members_only_room_removes_with_321():
    room = make_room(members_only=True)
    join(room, MEMBER, "member")
    done = admin.set_affiliation(room, OWNER, MEMBER.bare, "none")
    assert "321" in codes(done.outs[0].stanza) and not room.occupants


def test_lists_by_affiliation_and_role_are_for_those_allowed():
    room = make_room()
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    ask = Element("query", M.NS_ADMIN)
    ask.add("item", attrs={"affiliation": "admin"})
    listed = admin.admin_list(room, OWNER, ask)
    assert [i.attrs["jid"] for i in listed.find_all("item")] == [ADMIN.bare.text]
    with pytest.raises(StanzaError) as excinfo:
        admin.admin_list(room, GUEST, ask)
    assert condition(excinfo) == "forbidden"
    roles = Element("query", M.NS_ADMIN)
    roles.add("item", attrs={"role": "participant"})
    assert [i.attrs["nick"] for i in admin.admin_list(room, OWNER, roles).find_all("item")] == ["guest"]


def test_voice_requests_reach_the_moderators_and_approval_gives_voice():
    room = make_room(moderated=True)
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    request = forms.Form(forms.FORM_REQUEST, type_="submit")
    request.field("muc#role", "list-single", "", ["participant"])
    [out] = admin.voice_form(room, GUEST, request.el)
    assert out.to == [OWNER]
    approval = out.stanza.find("x", M.NS_DATA)
    approval.attrs["type"] = "submit"
    for field in approval.find_all("field"):
        if field.attrs["var"] == "muc#request_allow":
            field.find("value").text = "1"
    admin.voice_form(room, OWNER, approval)
    assert room.occupants["guest"].role == "participant"


def test_destroying_tells_everyone_where_to_go():
    room = make_room()
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    with pytest.raises(StanzaError):
        admin.destroy(room, GUEST, None)
    where = Element("destroy", M.NS_OWNER, {"jid": "new@conference.example.org"})
    where.add("reason", text="moved")
    outs = admin.destroy(room, OWNER, where)
    assert len(outs) == 2 and room.destroyed and not room.occupants
    notice = outs[0].stanza.find("x", M.NS_USER).find("destroy")
    assert notice.attrs["jid"] == "new@conference.example.org" and notice.child_text("reason") == "moved"


def test_a_mediated_invitation_goes_to_the_invitee_and_makes_a_member_of_a_members_only_room():
    room = make_room(members_only=True)
    join(room, OWNER, "owner")
    x = Element("x", M.NS_USER)
    x.add("invite", attrs={"to": "friend@example.org"}).add("reason", text="join us")
    done = admin.invite(room, OWNER, x)
    [out] = done.outs
    assert out.to == [parse_jid("friend@example.org")]
    assert out.stanza.find("x", M.NS_USER).find("invite").attrs["from"] == OWNER.bare.text
    assert out.stanza.find("x", M.NS_CONFERENCE).attrs["jid"] == ROOM.text
    assert room.affiliation(parse_jid("friend@example.org")) == "member"


def test_registering_a_nick_reserves_it_and_makes_a_member():
    room = make_room()
    form = forms.Form(forms.FORM_REGISTER, type_="submit")
    form.field("muc#register_roomnick", "text-single", "", ["gg"])
    query = Element("query", M.NS_REGISTER)
    query.append(form.el)
    admin.register(room, GUEST, query)
    assert room.affiliations[GUEST.bare] == Affiliation("member", "gg")
    with pytest.raises(StanzaError) as excinfo:
        admin.register(room, MEMBER, query)
    assert condition(excinfo) == "conflict"


# --- the configuration form ------------------------------------------------------------------------------------
def test_the_form_round_trips_and_refuses_bad_values():
    config = RoomConfig(name="Tea", members_only=True, whois="anyone", max_users=7)
    form = forms.config_form(config, [OWNER.bare], [], max_users=10)
    values = forms.read_form(form, forms.FORM_CONFIG)
    again, owners, admins = forms.apply_config(RoomConfig(), values, max_users=10, max_history=50)
    assert again == config and owners == [OWNER.bare] and admins == []
    with pytest.raises(StanzaError) as excinfo:
        forms.apply_config(config, {"muc#roomconfig_maxusers": ["11"]}, 10, 50)
    assert condition(excinfo) == "not-acceptable"
    with pytest.raises(StanzaError) as excinfo:
        forms.apply_config(config, {"muc#roomconfig_whois": ["everyone"]}, 10, 50)
    assert condition(excinfo) == "not-acceptable"
    with pytest.raises(StanzaError) as excinfo:
        forms.apply_config(RoomConfig(), {"muc#roomconfig_passwordprotectedroom": ["1"]}, 10, 50)
    assert condition(excinfo) == "not-acceptable"


def test_members_of_a_members_only_non_anonymous_room_see_who_else_is_a_member_for_omemo():
    room = make_room(members_only=True, whois="anyone")
    ask = Element("query", M.NS_ADMIN)
    ask.add("item", attrs={"affiliation": "owner"})
    listed = admin.admin_list(room, MEMBER, ask)  # not in the room
    assert [i.attrs["jid"] for i in listed.find_all("item")] == [OWNER.bare.text]
    banned = Element("query", M.NS_ADMIN)
    banned.add("item", attrs={"affiliation": "outcast"})
    with pytest.raises(StanzaError):
        admin.admin_list(room, MEMBER, banned)
    with pytest.raises(StanzaError):
        admin.admin_list(make_room(members_only=True), MEMBER, ask)


def test_a_newcomer_to_a_large_room_gets_moderators_then_the_first_comers():
    room = make_room()
    room.limits.join_presences = 2
    for real, nick in ((GUEST, "guest"), (MEMBER, "member"), (OWNER, "owner")):
        join(room, real, nick)
    newcomer = parse_jid("new@example.org/x")
    outs = join(room, newcomer, "new")
    others = [o.stanza.attrs["from"] for o in outs if o.stanza.name == "presence" and o.to == [newcomer]
              and M.SELF not in codes(o.stanza)]
    assert others == [f"{ROOM.text}/owner", f"{ROOM.text}/guest"]


def test_only_the_sender_retracts_and_only_moderators_moderate_leaving_tombstones():
    from sakari.modules.muc import retract

    room = make_room()
    join(room, OWNER, "owner")
    join(room, GUEST, "guest")
    join(room, MEMBER, "member")
    [out] = room.groupchat(GUEST, groupchat("oops"), now=1.0)
    original = room.history.find("id0")
    assert original is not None and out.sender == GUEST.bare
    with pytest.raises(StanzaError) as excinfo:
        retract.check_own(room, MEMBER, original)
    assert condition(excinfo) == "forbidden"
    retract.check_own(room, GUEST, original)
    request = Element("moderate", M.NS_MODERATE, {"id": "id0"})
    request.add("retract", M.NS_RETRACT)
    request.add("reason", text="spam")
    with pytest.raises(StanzaError) as excinfo:
        retract.moderate(room, GUEST, request)
    assert condition(excinfo) == "forbidden"
    announce, moderation = retract.moderate(room, OWNER, request)
    assert announce.stanza.attrs["from"] == ROOM.text and set(announce.to) == {OWNER, GUEST, MEMBER}
    stone = retract.tombstone(original, 2.0, moderation)
    assert stone.find("body") is None and stone.find("stanza-id", M.NS_SID).attrs["id"] == "id0"
    retracted = stone.find("retracted", M.NS_RETRACT)
    assert retracted.find("moderated", M.NS_MODERATE).attrs["by"] == f"{ROOM.text}/owner"
    assert retracted.child_text("reason") == "spam"
    room.history.replace("id0", stone)
    assert room.history.find("id0").find("body") is None


def test_a_retraction_passes_an_encrypted_only_room_though_its_fallback_is_plain():
    room = make_room(encrypted_only=True)
    join(room, GUEST, "guest")
    retraction = groupchat("This person attempted to retract a previous message")
    retraction.add("retract", M.NS_RETRACT, {"id": "id0"})
    assert room.groupchat(GUEST, retraction, now=1.0)
