"""The generic stores (keyvalue, map, archive) on every backend."""

from __future__ import annotations

import asyncio

import pytest

from sakari.storage.base import Storage
from test_storage_contract import CREDS_A, JULIET, NURSE, ROMEO, backend, postgres_database, storage  # noqa: F401

ROOM = "room@conference.example.org"
T0 = 1_700_000_000.0  # a fixed time, so that time filters do not depend on the clock


# --- keyvalue --------------------------------------------------------------------------


async def test_keyvalue_holds_one_value_per_owner_and_none_deletes(storage: Storage) -> None:
    prefs = storage.keyvalue("prefs")
    assert await prefs.get(JULIET) is None
    await prefs.set(JULIET, b"1")
    await prefs.set(JULIET, b"2")
    await prefs.set(ROMEO, b"")
    assert await prefs.get(JULIET) == b"2"
    assert await prefs.get(ROMEO) == b""
    assert await storage.keyvalue("other").get(JULIET) is None
    await prefs.set(JULIET, None)
    assert await prefs.get(JULIET) is None
    assert await prefs.get(ROMEO) == b""


# --- map -------------------------------------------------------------------------------


async def test_map_items_and_clear_are_per_owner_and_name(storage: Storage) -> None:
    bookmarks = storage.map("bookmarks")
    await bookmarks.set(JULIET, "a", b"1")
    await bookmarks.set(JULIET, "b", b"2")
    await bookmarks.set(ROMEO, "a", b"3")
    await storage.map("other").set(JULIET, "a", b"4")
    assert await bookmarks.items(JULIET) == {"a": b"1", "b": b"2"}
    await bookmarks.clear(JULIET)
    assert await bookmarks.items(JULIET) == {}
    assert await bookmarks.items(ROMEO) == {"a": b"3"}
    assert await storage.map("other").items(JULIET) == {"a": b"4"}


async def test_documents_of_a_kind_are_the_map_of_that_name(storage: Storage) -> None:
    await storage.documents("vcard").set(JULIET, "", b"<vCard/>")
    assert await storage.map("vcard").get(JULIET, "") == b"<vCard/>"
    assert await storage.map("vcard").items(JULIET) == {"": b"<vCard/>"}


# --- archive ---------------------------------------------------------------------------


async def _fill_archive(storage: Storage, count: int = 10) -> list[str]:
    archive = storage.archive("mam")
    return [
        await archive.append(JULIET, ROMEO if i % 2 == 0 else NURSE, f"<m n='{i}'/>".encode(), when=T0 + i)
        for i in range(count)
    ]


def _numbers(page: object) -> list[int]:
    return [int(item.stanza.split(b"'")[1]) for item in page.items]  # type: ignore[attr-defined]


async def test_archive_ids_are_unique_and_ordered_like_time(storage: Storage) -> None:
    archive = storage.archive("mam")
    now_ids = [await archive.append(JULIET, ROMEO, b"<m/>") for _ in range(50)]
    assert now_ids == sorted(now_ids) and len(set(now_ids)) == 50
    earlier = await archive.append(JULIET, ROMEO, b"<old/>", when=T0)
    assert earlier < now_ids[0]
    same_time = [await archive.append(JULIET, ROMEO, b"<same/>", when=T0) for _ in range(3)]
    assert len({earlier, *same_time}) == 4


async def test_archive_appends_issued_together_keep_their_order(storage: Storage) -> None:
    archive = storage.archive("mam")
    ids = await asyncio.gather(*(archive.append(JULIET, ROMEO, f"<m n='{i}'/>".encode()) for i in range(100)))
    page = await archive.query(JULIET, limit=100)
    assert [item.id for item in page.items] == list(ids)
    assert _numbers(page) == list(range(100))


async def test_archive_item_round_trips_with_its_time(storage: Storage) -> None:
    archive = storage.archive("mam")
    stanza = "<message><body>ünï ✓</body></message>".encode() + bytes(range(256))
    id = await archive.append(JULIET, ROMEO, stanza, when=T0 + 0.123456)
    item = await archive.get(JULIET, id)
    assert item is not None
    assert (item.id, item.with_jid, item.stanza) == (id, ROMEO, stanza)
    assert item.timestamp == pytest.approx(T0 + 0.123456, abs=1e-6)
    assert await archive.get(ROMEO, id) is None
    assert await archive.get(JULIET, "not-an-id") is None


async def test_archive_pages_forward_by_after_id_until_complete(storage: Storage) -> None:
    await _fill_archive(storage)
    archive = storage.archive("mam")
    seen, after = [], None
    while True:
        page = await archive.query(JULIET, after_id=after, limit=3)
        seen += _numbers(page)
        if page.complete:
            break
        after = page.last
    assert seen == list(range(10))
    assert page.items and page.last is not None


async def test_archive_pages_backward_by_before_id_oldest_first_within_a_page(storage: Storage) -> None:
    await _fill_archive(storage)
    archive = storage.archive("mam")
    last_page = await archive.query(JULIET, limit=3, reverse=True)
    assert _numbers(last_page) == [7, 8, 9] and not last_page.complete
    pages, before = [], None
    while True:
        page = await archive.query(JULIET, before_id=before, limit=4, reverse=True)
        pages.append(_numbers(page))
        if page.complete:
            break
        before = page.first
    assert pages == [[6, 7, 8, 9], [2, 3, 4, 5], [0, 1]]


async def test_archive_page_that_ends_exactly_at_the_last_item_is_complete(storage: Storage) -> None:
    ids = await _fill_archive(storage, 4)
    page = await storage.archive("mam").query(JULIET, after_id=ids[0], limit=3)
    assert _numbers(page) == [1, 2, 3] and page.complete
    empty = await storage.archive("mam").query(JULIET, after_id=ids[-1])
    assert empty.items == [] and empty.complete and empty.first is None and empty.last is None


async def test_archive_filters_by_inclusive_times_contact_and_ids(storage: Storage) -> None:
    ids = await _fill_archive(storage)
    archive = storage.archive("mam")
    assert _numbers(await archive.query(JULIET, start=T0 + 3, end=T0 + 6)) == [3, 4, 5, 6]
    assert _numbers(await archive.query(JULIET, start=T0 + 8)) == [8, 9]
    assert _numbers(await archive.query(JULIET, end=T0 + 1)) == [0, 1]
    assert _numbers(await archive.query(JULIET, with_jid=NURSE, start=T0 + 2)) == [3, 5, 7, 9]
    assert _numbers(await archive.query(JULIET, ids=[ids[5], ids[1]])) == [1, 5]
    assert _numbers(await archive.query(JULIET, ids=[])) == []
    between = await archive.query(JULIET, after_id=ids[2], before_id=ids[6], with_jid=ROMEO)
    assert _numbers(between) == [4]
    assert _numbers(await archive.query(ROMEO)) == []
    with pytest.raises(ValueError):
        await archive.query(JULIET, after_id="nonsense")


async def test_archive_limit_zero_tells_only_whether_items_exist(storage: Storage) -> None:
    await _fill_archive(storage, 2)
    page = await storage.archive("mam").query(JULIET, limit=0)
    assert page.items == [] and not page.complete


async def test_archive_delete_clear_count_are_per_owner_and_name(storage: Storage) -> None:
    ids = await _fill_archive(storage, 3)
    archive, other = storage.archive("mam"), storage.archive("muc")
    await other.append(JULIET, ROOM, b"<muc/>")
    await archive.append(ROMEO, JULIET, b"<r/>")
    assert await archive.count(JULIET) == 3
    assert await archive.delete(JULIET, ids[1]) is True
    assert await archive.delete(JULIET, ids[1]) is False
    assert await archive.delete(ROMEO, ids[0]) is False
    assert _numbers(await archive.query(JULIET)) == [0, 2]
    await archive.clear(JULIET)
    assert await archive.count(JULIET) == 0
    assert await other.count(JULIET) == 1
    assert await archive.count(ROMEO) == 1


async def test_archive_expire_deletes_older_items_of_every_owner_of_that_archive(storage: Storage) -> None:
    archive = storage.archive("mam")
    for owner in (JULIET, ROMEO):
        for i in range(4):
            await archive.append(owner, NURSE, f"<m n='{i}'/>".encode(), when=T0 + i)
    await storage.archive("muc").append(ROOM, JULIET, b"<m n='0'/>", when=T0)
    assert await archive.expire(T0 + 2) == 4
    assert _numbers(await archive.query(JULIET)) == [2, 3]
    assert _numbers(await archive.query(ROMEO)) == [2, 3]
    assert await storage.archive("muc").count(ROOM) == 1
    assert await archive.expire(T0) == 0


# --- account deletion ------------------------------------------------------------------


async def test_account_delete_clears_the_generic_stores_of_that_owner_only(storage: Storage) -> None:
    for owner in (JULIET, ROMEO):
        await storage.accounts.create(owner, CREDS_A)
        await storage.keyvalue("prefs").set(owner, b"p")
        await storage.map("bookmarks").set(owner, "k", b"v")
        await storage.archive("mam").append(owner, NURSE, b"<m/>")
    await storage.accounts.delete(JULIET)
    assert await storage.keyvalue("prefs").get(JULIET) is None
    assert await storage.map("bookmarks").items(JULIET) == {}
    assert await storage.archive("mam").count(JULIET) == 0
    assert await storage.keyvalue("prefs").get(ROMEO) == b"p"
    assert await storage.map("bookmarks").items(ROMEO) == {"k": b"v"}
    assert await storage.archive("mam").count(ROMEO) == 1


async def test_reads_see_archive_appends_issued_before_them(storage: Storage) -> None:
    archive = storage.archive("mam")
    _, page = await asyncio.gather(archive.append(JULIET, ROMEO, b"<m/>"), archive.query(JULIET))
    assert [item.stanza for item in page.items] == [b"<m/>"]


async def test_archive_replace_keeps_the_place_and_forgets_the_old_text(storage: Storage) -> None:
    archive = storage.archive("muc")
    kept = await archive.append(ROOM, "room/nick", b"<m>secret words</m>", when=T0, text="secret words")
    after = await archive.append(ROOM, "room/other", b"<m>later</m>", when=T0 + 1, text="later")
    assert await archive.replace(ROOM, kept, b"<tombstone/>") is True
    assert await archive.replace(ROOM, "0" * len(kept), b"<x/>") is False
    assert await archive.replace(JULIET, kept, b"<x/>") is False
    page = await archive.query(ROOM)
    assert [(i.id, i.stanza, i.with_jid, i.timestamp) for i in page.items] == [
        (kept, b"<tombstone/>", "room/nick", T0), (after, b"<m>later</m>", "room/other", T0 + 1)
    ]
    assert (await archive.query(ROOM, text="secret")).items == []
