"""Which messages a user archive keeps, the stanza-ids on them, and archiving preferences."""

from __future__ import annotations

import pytest

from sakari.modules.mam.rules import (
    Prefs,
    claims_archive,
    load_prefs,
    parse_prefs,
    unclaimed,
    with_stanza_id,
    worth_keeping,
)
from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

JULIET = "juliet@example.org"


def message(inner: str, type: str | None = "chat") -> Element:
    attr = f" type='{type}'" if type else ""
    return fragment.load(f"<message to='{JULIET}'{attr}>{inner}</message>".encode())


@pytest.mark.parametrize(
    "inner, type, kept",
    [
        ("<body>hi</body>", "chat", True),
        ("<body>hi</body>", None, True),  # normal
        ("<body>hi</body>", "groupchat", False),  # the room's archive keeps those
        ("<body>hi</body>", "headline", False),
        ("<body>hi</body>", "error", False),
        ("<composing xmlns='http://jabber.org/protocol/chatstates'/>", "chat", False),
        ("<body>hi</body><no-store xmlns='urn:xmpp:hints'/>", "chat", False),
        ("<body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/>", "chat", False),
        ("<store xmlns='urn:xmpp:hints'/>", "chat", True),
        ("<received xmlns='urn:xmpp:receipts' id='m1'/>", "chat", True),
        ("<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>", "chat", True),
        ("<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction></reactions>", "chat", True),
        ("<retract xmlns='urn:xmpp:message-retract:1' id='m1'/>", "chat", True),
        ("<encrypted xmlns='eu.siacs.conversations.axolotl'/>", "chat", True),
        ("<propose xmlns='urn:xmpp:jingle-message:0' id='c1'/>", "chat", True),
        ("<subject>topic</subject>", None, True),
    ],
)
def test_what_a_user_archive_keeps(inner: str, type: str | None, kept: bool) -> None:
    assert worth_keeping(message(inner, type)) is kept


def test_stamping_replaces_ids_claiming_the_archive_and_keeps_others() -> None:
    original = message(
        f"<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='{JULIET}' id='forged'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.org' id='theirs'/>"
    )
    out = with_stanza_id(unclaimed(original, JULIET), JULIET, "0000000000000a00")
    ids = [(c.attrs["by"], c.attrs["id"]) for c in out.find_all("stanza-id", "urn:xmpp:sid:0")]
    assert ids == [("room@muc.example.org", "theirs"), (JULIET, "0000000000000a00")]
    assert len(original.children) == 3  # the original is left as it was
    stripped = unclaimed(original, JULIET)
    assert [c.attrs["id"] for c in stripped.find_all("stanza-id", "urn:xmpp:sid:0")] == ["theirs"]
    assert claims_archive(out, JULIET) and not claims_archive(stripped, JULIET)


def test_a_stanza_without_claims_is_left_as_it_is() -> None:
    original = message("<body>hi</body>")
    assert unclaimed(original, JULIET) is original
    with_stanza_id(original, JULIET, "0000000000000a00")
    assert len(original.children) == 1


def test_preferences_lists_decide_before_the_default_and_never_wins() -> None:
    prefs = Prefs("roster", frozenset({"a@example.org", "b@example.org"}), frozenset({"b@example.org"}))
    assert prefs.decides("a@example.org") is True
    assert prefs.decides("b@example.org") is False
    assert prefs.decides("c@example.org") is None
    assert load_prefs(prefs.dump()) == prefs


def test_preferences_round_trip_through_their_element() -> None:
    element = fragment.load(
        b"<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>Romeo@Example.org</jid></always>"
        b"<never><jid>montague.example</jid></never></prefs>"
    )
    prefs = parse_prefs(element)
    assert prefs == Prefs("never", frozenset({"romeo@example.org"}), frozenset({"montague.example"}))
    assert parse_prefs(prefs.to_element()) == prefs


@pytest.mark.parametrize(
    "xml, expected",
    [
        (b"<prefs xmlns='urn:xmpp:mam:2'/>", "bad-request"),
        (b"<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>", "bad-request"),
        (b"<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>@x</jid></never></prefs>", "jid-malformed"),
    ],
)
def test_malformed_preferences_are_refused(xml: bytes, expected: str) -> None:
    with pytest.raises(StanzaError) as e:
        parse_prefs(fragment.load(xml))
    assert e.value.condition == expected
