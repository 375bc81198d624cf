"""XEP-0313 queries read from their elements (forms, XEP-0059 paging) and results written, sans-IO."""

from __future__ import annotations

import pytest

from sakari.modules.mam.query import (
    FULLTEXT_FIELD,
    Query,
    fin,
    form_fields,
    parse_query,
    parse_time,
    result_message,
)
from sakari.storage.base import ArchiveItem, ArchivePage
from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_MAM = "urn:xmpp:mam:2"
NS_DATA = "jabber:x:data"
NS_RSM = "http://jabber.org/protocol/rsm"
A = "0000000000000a00"
B = "0000000000000b00"


def query(inner: str = "", queryid: str | None = "q1") -> Element:
    attr = f" queryid='{queryid}'" if queryid else ""
    return fragment.load(f"<query xmlns='{NS_MAM}'{attr}>{inner}</query>".encode())


def form(*fields: tuple[str, list[str]], form_type: str = NS_MAM) -> str:
    inner = f"<field var='FORM_TYPE' type='hidden'><value>{form_type}</value></field>"
    for var, values in fields:
        inner += f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"
    return f"<x xmlns='{NS_DATA}' type='submit'>{inner}</x>"


def rsm(inner: str) -> str:
    return f"<set xmlns='{NS_RSM}'>{inner}</set>"


def condition(inner: str) -> str:
    with pytest.raises(StanzaError) as e:
        parse_query(query(inner), 100)
    return e.value.condition


def test_an_empty_query_asks_for_the_oldest_page_of_the_largest_size() -> None:
    assert parse_query(query(), 100) == Query(queryid="q1", limit=100)
    assert parse_query(query(queryid=None), 20).queryid is None


def test_form_fields_become_filters() -> None:
    parsed = parse_query(
        query(form(
            ("with", ["Juliet@Capulet.example/balcony"]),
            ("start", ["2010-06-07T00:00:00Z"]),
            ("end", ["2010-07-07T13:23:54.5+02:00"]),
            ("ids", [A, B]),
            (FULLTEXT_FIELD, ["  to be  "]),
        )),
        100,
    )
    assert parsed.with_jid == "juliet@capulet.example"  # the archive knows contacts by bare JID
    assert parsed.start == 1275868800.0
    assert parsed.end == 1278501834.5
    assert parsed.ids == (A, B)
    assert parsed.text == "to be"


def test_an_empty_fulltext_field_searches_nothing() -> None:
    assert parse_query(query(form((FULLTEXT_FIELD, [""]))), 100).text is None


def test_rsm_max_is_capped_and_zero_asks_for_the_count_alone() -> None:
    assert parse_query(query(rsm("<max>10</max>")), 100).limit == 10
    assert parse_query(query(rsm("<max>5000</max>")), 100).limit == 100
    zero = parse_query(query(rsm("<max>0</max>")), 100)
    assert zero.limit == 0 and zero.count_only


def test_rsm_before_pages_backwards_and_an_empty_one_asks_for_the_last_page() -> None:
    last = parse_query(query(rsm("<max>5</max><before/>")), 100)
    assert last.reverse and last.before_id is None and last.named == ()
    earlier = parse_query(query(rsm(f"<before>{B}</before>")), 100)
    assert earlier.reverse and earlier.before_id == B and earlier.named == (B,)
    later = parse_query(query(rsm(f"<after>{A}</after>")), 100)
    assert not later.reverse and later.after_id == A and later.named == (A,)


def test_form_ids_and_rsm_bounds_combine_to_the_narrower_range() -> None:
    both = parse_query(query(form(("after-id", [A]), ("before-id", [B])) + rsm(f"<after>{B}</after><before>{A}</before>")), 100)
    assert (both.after_id, both.before_id) == (B, A)
    assert set(both.named) == {A, B}


def test_flip_page_is_read() -> None:
    assert parse_query(query("<flip-page/>"), 100).flip


@pytest.mark.parametrize(
    "inner, expected",
    [
        (form(("colour", ["red"])), "bad-request"),  # a filter this server does not know
        (form(form_type="urn:xmpp:mam:1"), "bad-request"),
        (form(("start", ["yesterday"])), "bad-request"),
        (form(("start", ["2010-06-07T00:00:00Z", "2011-01-01T00:00:00Z"])), "bad-request"),
        (form(("with", ["@nobody"])), "jid-malformed"),
        (rsm("<max>many</max>"), "bad-request"),
        (rsm("<max>-1</max>"), "bad-request"),
        (rsm("<after/>"), "bad-request"),
        (rsm("<index>3</index>"), "feature-not-implemented"),
        (form(("ids", [A] * 251)), "policy-violation"),
    ],
)
def test_malformed_queries_are_refused_with_their_condition(inner: str, expected: str) -> None:
    assert condition(inner) == expected


def test_times_without_a_zone_are_utc() -> None:
    assert parse_time("2010-06-07T00:00:00") == parse_time("2010-06-07T00:00:00Z") == 1275868800.0


def test_the_form_lists_every_field_a_query_takes() -> None:
    x = form_fields().find("x", NS_DATA)
    assert x is not None and x.attrs["type"] == "form"
    assert [f.attrs["var"] for f in x.find_all("field", NS_DATA)] == [
        "FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids", FULLTEXT_FIELD,
    ]


def _page(complete: bool, count: int | None = None) -> ArchivePage:
    items = [ArchiveItem(A, 1275868800.25, "romeo@example.org", b"<message><body>1</body></message>"),
             ArchiveItem(B, 1275868801.0, "romeo@example.org", b"<message><body>2</body></message>")]
    return ArchivePage(items, complete, count)


def test_fin_names_the_ends_of_the_page_and_says_when_it_is_the_last() -> None:
    done = fin(_page(True, 7), Query())
    assert done.attrs == {"complete": "true"}
    found = done.find("set", NS_RSM)
    assert found is not None
    assert (found.child_text("first"), found.child_text("last"), found.child_text("count")) == (A, B, "7")
    assert "complete" not in fin(_page(False), Query()).attrs
    flipped = fin(_page(False), Query(flip=True)).find("set", NS_RSM)
    assert flipped is not None and (flipped.child_text("first"), flipped.child_text("last")) == (B, A)


def test_fin_of_an_empty_page_has_no_ends() -> None:
    found = fin(ArchivePage([], True, 0), Query()).find("set", NS_RSM)
    assert found is not None and found.find("first") is None and found.child_text("count") == "0"


def test_a_result_forwards_the_original_with_its_time() -> None:
    message = result_message(_page(True).items[0], "juliet@example.org/balcony", "juliet@example.org", "q1")
    assert message.attrs == {"to": "juliet@example.org/balcony", "from": "juliet@example.org"}
    result = message.find("result", NS_MAM)
    assert result is not None and result.attrs == {"id": A, "queryid": "q1"}
    forwarded = result.find("forwarded", "urn:xmpp:forward:0")
    assert forwarded is not None
    delay = forwarded.find("delay", "urn:xmpp:delay")
    assert delay is not None and delay.attrs["stamp"] == "2010-06-07T00:00:00.250000Z"
    original = forwarded.find("message", "jabber:client")
    assert original is not None and original.child_text("body") == "1"
