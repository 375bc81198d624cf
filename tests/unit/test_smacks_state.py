"""XEP-0198 counters and the queue of unacknowledged stanzas, without a server."""

from __future__ import annotations

import pytest

from sakari.modules.smacks import H_MODULO, AckState, HandledCountTooHigh, failed, parse_h, with_delay
from sakari.xml.element import Element
from sakari.xml.errors import StreamError


def message(body: str) -> Element:
    el = Element("message", attrs={"to": "b@example.org/r", "type": "chat"})
    el.add("body", text=body)
    return el


def queued(n: int) -> tuple[AckState, list[Element]]:
    state = AckState("id")
    stanzas = [message(f"m{i}") for i in range(n)]
    for s in stanzas:
        state.queued(s)
    return state, stanzas


def test_an_ack_forgets_what_it_covers_and_keeps_the_rest_in_order():
    state, stanzas = queued(3)
    state.ack(2)
    assert [s for s, _ in state.queue] == stanzas[2:]
    assert state.sent == 3


def test_an_ack_for_more_than_was_sent_is_refused():
    state, _ = queued(2)
    with pytest.raises(HandledCountTooHigh):
        state.ack(3)


def test_h_wraps_around_at_two_to_the_32():
    state, _ = queued(0)
    state.acked = H_MODULO - 1
    for i in range(3):
        state.queued(message(str(i)))
    state.ack(1)  # H_MODULO - 1 + 2, wrapped
    assert len(state.queue) == 1


def test_watchers_are_called_once_their_stanza_is_acknowledged():
    state, _ = queued(1)
    called: list[str] = []
    extra = message("watched")
    state.queued(extra)
    assert state.watch(extra, lambda: called.append("watched"))
    assert state.ack(1) == []
    for fn in state.ack(2):
        fn()
    assert called == ["watched"]


def test_a_stanza_not_queued_last_cannot_be_watched():
    state, stanzas = queued(2)
    assert not state.watch(stanzas[0], lambda: None)


def test_unacked_says_which_stanzas_a_watcher_owns():
    state, stanzas = queued(2)
    state.watch(stanzas[1], lambda: None)
    assert state.unacked() == [(stanzas[0], False), (stanzas[1], True)]


def test_h_must_be_a_number_in_range():
    for bad in ("", "x", "-1", str(H_MODULO)):
        with pytest.raises(StreamError):
            parse_h(Element("a", "urn:xmpp:sm:3", {"h": bad}))


def test_messages_sent_again_get_a_delay_stamp_without_touching_the_original():
    original = message("hi")
    resent = with_delay(original, 0.0, "example.org")
    assert original.find("delay", "urn:xmpp:delay") is None
    delay = resent.find("delay", "urn:xmpp:delay")
    assert delay is not None and delay.attrs["stamp"] == "1970-01-01T00:00:00.000Z"
    presence = Element("presence")
    assert with_delay(presence, 0.0, "example.org") is presence


def test_failed_carries_a_stanza_error_condition():
    assert failed("item-not-found").serialize() == (
        '<failed xmlns="urn:xmpp:sm:3"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></failed>'
    )
