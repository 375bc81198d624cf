"""Archives on every backend: full-text search, counts, appends under ids taken beforehand, the upgrade
of archives written before search existed."""

from __future__ import annotations

from typing import Any

import pytest
from test_storage_contract import (  # noqa: F401
    CREDS_A,
    JULIET,
    NURSE,
    ROMEO,
    backend,
    postgres_database,
    storage,
)

from sakari.storage.base import ArchiveEntry, Storage

T0 = 1_700_000_000.0

TEXTS = [
    "Shall we meet at the Library tomorrow?",
    "the library is closed on Sundays",
    "Café au lait, s'il vous plaît",
    "LIBRARY books are due",
    "nothing to see here",
]


async def _fill(storage: Storage) -> list[str]:
    archive = storage.archive("mam")
    ids = []
    for i, text in enumerate(TEXTS):
        ids.append(await archive.append(JULIET, ROMEO if i % 2 == 0 else NURSE, f"<m n='{i}'/>".encode(), T0 + i, text))
    await archive.append(JULIET, ROMEO, b"<m n='9'/>", T0 + 9)  # no text: a receipt, say
    await archive.append(ROMEO, JULIET, b"<m n='0'/>", T0, "the library again")
    await storage.archive("muc").append(JULIET, ROMEO, b"<m n='0'/>", T0, "library")
    return ids


def _numbers(page: Any) -> list[int]:
    return [int(item.stanza.split(b"'")[1]) for item in page.items]


async def test_search_finds_whole_words_in_any_case_within_one_owner_and_archive(storage: Storage) -> None:
    await _fill(storage)
    archive = storage.archive("mam")
    assert _numbers(await archive.query(JULIET, text="library")) == [0, 1, 3]
    assert _numbers(await archive.query(JULIET, text="LiBrArY")) == [0, 1, 3]
    assert _numbers(await archive.query(JULIET, text="lib")) == []  # words, not prefixes
    assert _numbers(await archive.query(ROMEO, text="library")) == [0]


async def test_search_needs_every_word_in_any_order(storage: Storage) -> None:
    await _fill(storage)
    archive = storage.archive("mam")
    assert _numbers(await archive.query(JULIET, text="closed library")) == [1]
    assert _numbers(await archive.query(JULIET, text="library opera")) == []


async def test_search_takes_query_syntax_and_punctuation_as_plain_words(storage: Storage) -> None:
    await _fill(storage)
    archive = storage.archive("mam")
    assert _numbers(await archive.query(JULIET, text='"library" OR NOT* (books)')) == []
    assert _numbers(await archive.query(JULIET, text="books: library!")) == [3]
    assert _numbers(await archive.query(JULIET, text="café")) == [2]
    assert _numbers(await archive.query(JULIET, text="plaît")) == [2]
    assert _numbers(await archive.query(JULIET, text="?! ...")) == []  # no words: nothing found


async def test_search_combines_with_the_other_filters_and_pages(storage: Storage) -> None:
    await _fill(storage)
    archive = storage.archive("mam")
    assert _numbers(await archive.query(JULIET, text="library", with_jid=ROMEO)) == [0]
    assert _numbers(await archive.query(JULIET, text="library", start=T0 + 1)) == [1, 3]
    first = await archive.query(JULIET, text="library", limit=2)
    assert _numbers(first) == [0, 1] and not first.complete
    rest = await archive.query(JULIET, text="library", after_id=first.last, limit=2)
    assert _numbers(rest) == [3] and rest.complete
    last = await archive.query(JULIET, text="library", limit=1, reverse=True)
    assert _numbers(last) == [3]


async def test_deleted_expired_and_cleared_items_are_not_found_again(storage: Storage) -> None:
    ids = await _fill(storage)
    archive = storage.archive("mam")
    assert await archive.delete(JULIET, ids[1])
    assert _numbers(await archive.query(JULIET, text="library")) == [0, 3]
    assert await archive.expire(T0 + 1) == 2  # item 0 of each owner
    assert _numbers(await archive.query(JULIET, text="library")) == [3]
    assert _numbers(await archive.query(ROMEO, text="library")) == []
    await archive.clear(JULIET)
    assert _numbers(await archive.query(JULIET, text="library")) == []
    assert await storage.archive("muc").count(JULIET) == 1


async def test_account_deletion_takes_the_search_index_along(storage: Storage) -> None:
    await _fill(storage)
    await storage.accounts.create(JULIET, CREDS_A)
    await storage.accounts.delete(JULIET)
    assert _numbers(await storage.archive("mam").query(JULIET, text="library")) == []
    await storage.archive("mam").append(JULIET, ROMEO, b"<m n='7'/>", T0, "library")
    assert _numbers(await storage.archive("mam").query(JULIET, text="library")) == [7]


async def test_count_is_the_whole_result_whichever_page(storage: Storage) -> None:
    ids = await _fill(storage)
    archive = storage.archive("mam")
    page = await archive.query(JULIET, limit=2, count=True)
    assert page.count == 6 and len(page.items) == 2
    later = await archive.query(JULIET, after_id=ids[2], limit=1, count=True)
    assert later.count == 6
    assert (await archive.query(JULIET, text="library", before_id=ids[3], count=True)).count == 3
    assert (await archive.query(JULIET, with_jid=NURSE, limit=0, count=True)).count == 2
    assert (await archive.query(JULIET)).count is None


async def test_append_many_keeps_the_ids_taken_beforehand(storage: Storage) -> None:
    archive = storage.archive("mam")
    ids = [archive.new_id() for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    await archive.append_many(
        [ArchiveEntry(JULIET, id, ROMEO, f"<m n='{n}'/>".encode(), f"word{n}") for n, id in enumerate(ids)]
        + [ArchiveEntry(ROMEO, archive.new_id(), JULIET, b"<m n='5'/>")]
    )
    page = await archive.query(JULIET)
    assert [item.id for item in page.items] == ids and _numbers(page) == [0, 1, 2]
    assert _numbers(await archive.query(JULIET, text="word1")) == [1]
    later = await archive.append(JULIET, ROMEO, b"<m n='3'/>")
    assert later > ids[-1]


async def test_an_archive_written_before_search_is_upgraded_with_its_items(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = __import__(f"sakari.storage.{'sqlite' if backend.name == 'sqlite' else 'postgres'}", fromlist=["x"])
    full = module.MIGRATIONS
    monkeypatch.setattr(module, "MIGRATIONS", {**full, "archive": full["archive"][:1]})
    old = backend.new()
    await old.open()
    try:
        await old.db.write(("INSERT INTO archive VALUES ('mam', ?, 1, ?, ?)", (JULIET, ROMEO, b"<m n='1'/>")))
    finally:
        await old.close()
    monkeypatch.setattr(module, "MIGRATIONS", full)
    st = backend.new()
    await st.open()
    try:
        archive = st.archive("mam")
        await archive.append(JULIET, ROMEO, b"<m n='2'/>", T0, "upgraded")
        assert _numbers(await archive.query(JULIET)) == [1, 2]
        assert _numbers(await archive.query(JULIET, text="upgraded")) == [2]
        await archive.clear(JULIET)
        assert await archive.count(JULIET) == 0
    finally:
        await st.close()


async def test_cached_keyvalue_reads_once_caches_no_value_and_writes_through(storage: Storage) -> None:
    prefs = storage.cached_keyvalue("prefs")
    assert prefs is storage.cached_keyvalue("prefs")
    assert prefs.peek(JULIET) is None
    assert await prefs.get(JULIET) is None
    assert prefs.peek(JULIET) == (None,)  # "no value" is cached too
    await prefs.set(JULIET, b"v1")
    assert prefs.peek(JULIET) == (b"v1",)
    assert await storage.keyvalue("prefs").get(JULIET) == b"v1"  # the same data as the plain store
    await prefs.set(JULIET, None)
    assert prefs.peek(JULIET) == (None,) and await storage.keyvalue("prefs").get(JULIET) is None


async def test_cached_keyvalue_forgets_a_deleted_account(storage: Storage) -> None:
    await storage.accounts.create(JULIET, CREDS_A)
    prefs = storage.cached_keyvalue("prefs")
    await prefs.set(JULIET, b"v")
    await storage.accounts.delete(JULIET)
    assert prefs.peek(JULIET) is None
    assert await prefs.get(JULIET) is None


async def test_archive_rows_copied_in_bulk_are_searchable(storage: Storage) -> None:
    db = storage.db  # type: ignore[attr-defined]
    await db.load("archive", [("mam", JULIET, 5 << 10, ROMEO, b"<m n='5'/>", "copied words"), ("mam", JULIET, 6 << 10, ROMEO, b"<m n='6'/>", None)])
    await db.loaded()
    archive = storage.archive("mam")
    assert _numbers(await archive.query(JULIET, text="copied")) == [5]
    await archive.append(JULIET, ROMEO, b"<m n='7'/>", T0, "words appended later")
    assert _numbers(await archive.query(JULIET, text="words")) == [5, 7]


async def test_rare_and_common_words_find_the_same_pages_whichever_way_they_are_read(storage: Storage) -> None:
    archive = storage.archive("mam")
    # Over 2,000 matches of "common" in other archives, so that SQLite reads that word from the owner's items.
    await archive.append_many([ArchiveEntry(ROMEO, archive.new_id(), NURSE, b"<m n='0'/>", "common") for _ in range(2100)])
    await archive.append_many(
        [ArchiveEntry(JULIET, archive.new_id(), NURSE if n % 3 else ROMEO, f"<m n='{n}'/>".encode(), f"common word{n % 5}")
         for n in range(30)]
    )
    for word, expected in (("common", list(range(30))), ("word2", [2, 7, 12, 17, 22, 27])):
        assert _numbers(await archive.query(JULIET, text=word, limit=100)) == expected
        last = await archive.query(JULIET, text=word, limit=4, reverse=True, count=True)
        assert _numbers(last) == expected[-4:] and last.count == len(expected)
        after = await archive.query(JULIET, text=word, after_id=last.first, limit=2)
        assert _numbers(after) == expected[-3:-1]
    assert _numbers(await archive.query(JULIET, text="word2", with_jid=ROMEO)) == [12, 27]
