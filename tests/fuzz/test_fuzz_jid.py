"""Fuzzing JID preparation (sakari/jid.py): parse_jid either raises JIDError or returns a JID whose text
parses back to itself, so a prepared address is stable wherever it travels (stores, rosters, routing)."""

from __future__ import annotations

from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from sakari.jid import JIDError, parse_jid

PIECES = ["a", "Ä", "ß", "İ", "ﬀ", "@", "/", ".", "-", "xn--", "xn--bcher-kva", "[", "]", "::1", "%eth0", "\u200d",
          "\u0301", "\u00a0", " ", "\x00", "例え", "Ⅻ", "ǅ", "\U0001d400", "ς", "Σ", "\ufe0f", "\u0660", "1"]


@st.composite
def jid_like(draw: st.DrawFn) -> str:
    part = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=6).map("".join)
    return draw(part) + draw(st.sampled_from(["", "@"])) + draw(part) + draw(st.sampled_from(["", "/"])) + draw(part)


def check(text: str) -> None:
    try:
        jid = parse_jid(text)
    except JIDError:
        return
    again = parse_jid(jid.text)
    assert again == jid and again.text == jid.text, (text, jid.text, again.text)
    assert parse_jid(jid.bare.text) == jid.bare


@fuzz(200)
@given(text=st.text(max_size=40))
def test_any_text_is_a_stable_jid_or_jid_malformed(text: str) -> None:
    check(text)


@fuzz(200)
@given(text=jid_like())
def test_jid_shaped_text_is_a_stable_jid_or_jid_malformed(text: str) -> None:
    check(text)
