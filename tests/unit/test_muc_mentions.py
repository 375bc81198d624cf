"""Which room messages mention a member: its nicks as words of their own in any case, or a XEP-0372 reference."""

from sakari.jid import parse_jid
from sakari.modules.muc.mentions import NS_REFERENCE, mentions
from sakari.xml.element import Element

ROOM = parse_jid("tea@conference.example.org")
BOB = parse_jid("bob@example.org")


def message(body: str | None = None, reference: str | None = None) -> Element:
    m = Element("message", attrs={"from": f"{ROOM.text}/alice", "type": "groupchat"})
    if body is not None:
        m.add("body", text=body)
    if reference is not None:
        m.add("reference", NS_REFERENCE, {"type": "mention", "uri": reference, "begin": "0", "end": "3"})
    return m


def test_a_nick_is_mentioned_as_a_word_of_its_own_in_any_case():
    for body in ("bobby: tea?", "@Bobby look", "thanks BOBBY!", "bobby", "so, bobby."):
        assert mentions(message(body), ROOM, {"bobby"}, BOB), body
    for body in ("bobbyfish", "the lobbyist", "xbobby", "nobody here"):
        assert not mentions(message(body), ROOM, {"bobby"}, BOB), body


def test_any_of_the_members_nicks_counts_and_nicks_with_punctuation_match_literally():
    assert mentions(message("ask Robert"), ROOM, {"bobby", "Robert"}, BOB)
    assert mentions(message("hi [bob]!"), ROOM, {"[bob]"}, BOB)
    assert not mentions(message("hi bob"), ROOM, {"b.b"}, BOB)
    assert not mentions(message("hi"), ROOM, set(), BOB)
    assert not mentions(message(None), ROOM, {"bobby"}, BOB)


def test_a_reference_to_the_occupant_or_the_account_is_a_mention():
    assert mentions(message("look", f"xmpp:{ROOM.text}/bobby"), ROOM, {"bobby"}, BOB)
    assert mentions(message("look", "xmpp:bob@example.org"), ROOM, set(), BOB)
    assert mentions(message("look", f"xmpp:{ROOM.text}/bob%20by"), ROOM, {"bob by"}, BOB)
    assert not mentions(message("look", f"xmpp:{ROOM.text}/carol"), ROOM, {"bobby"}, BOB)
