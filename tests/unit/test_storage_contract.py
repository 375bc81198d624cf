"""The storage contract (sakari.storage.base), run against every backend.

Written against the Storage protocol only: a new backend joins by adding a
Backend to BACKENDS, nothing else. The other test_storage_*.py files use the
fixtures defined here.

PostgreSQL: a server on 127.0.0.1:5432 with trust authentication (user
postgres), or the admin URL in SAKARI_TEST_POSTGRES. The suite creates one
fresh database for the session and drops it at the end; each test starts
from empty tables. Without a server the PostgreSQL tests are skipped, or
fail when the environment variable CI is set.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sakari.credentials import derive
from sakari.storage.base import RosterItem, Storage

REPO = Path(__file__).resolve().parents[2]

JULIET = "juliet@example.org"
ROMEO = "romeo@example.org"
NURSE = "nurse@example.net"

POSTGRES_ADMIN = os.environ.get("SAKARI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.path = tmp_path / "data" / "sakari.sqlite"
        self.url = f"sqlite://{self.path}"

    async def clean(self) -> None:
        """Nothing to do: every test has its own directory."""

    def new(self, **options: Any) -> Storage:
        """A fresh handle on this backend's data (not opened)."""
        from sakari.storage.sqlite import SqliteStorage

        return SqliteStorage(self.path, **options)

    def child_source(self) -> str:
        """Python code that binds ``storage`` to a handle on the same data, for another process."""
        return f"from sakari.storage.sqlite import SqliteStorage\nstorage = SqliteStorage(Path({str(self.path)!r}))"


class PostgresBackend:
    name = "postgresql"

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.url = request.getfixturevalue("postgres_database")

    async def clean(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()

    def new(self, **options: Any) -> Storage:
        from sakari.storage.postgres import PostgresStorage

        return PostgresStorage(self.url, **options)

    def child_source(self) -> str:
        return f"from sakari.storage.postgres import PostgresStorage\nstorage = PostgresStorage({self.url!r})"


BACKENDS = [SqliteBackend, PostgresBackend]


def _admin(sql: str) -> None:
    """Run one statement on the admin database, from a thread: the fixture asking may be inside an event loop."""

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database of this test session's own."""
    name = f"sakari_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        problem = f"PostgreSQL at {POSTGRES_ADMIN} cannot be used: {e or type(e).__name__}"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    base = POSTGRES_ADMIN.rpartition("/")[0]
    yield f"{base}/{name}"
    _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    chosen = request.param(tmp_path, request)
    await chosen.clean()
    return chosen


@pytest.fixture
async def storage(backend: Any) -> AsyncIterator[Storage]:
    st = backend.new()
    await st.open()
    yield st
    await st.close()


async def reopened(backend: Any, st: Storage) -> Storage:
    await st.close()
    again = backend.new()
    await again.open()
    return again


CREDS_A = derive("first password", 1, salt=b"a" * 16)
CREDS_B = derive("second password", 1, salt=b"b" * 16)


# --- accounts -------------------------------------------------------------------------


async def test_account_create_then_get_returns_the_same_credentials(storage: Storage) -> None:
    assert await storage.accounts.get(JULIET) is None
    assert await storage.accounts.create(JULIET, CREDS_A) is True
    assert await storage.accounts.get(JULIET) == CREDS_A


async def test_account_create_of_an_existing_owner_is_refused_and_keeps_the_old_credentials(storage: Storage) -> None:
    await storage.accounts.create(JULIET, CREDS_A)
    assert await storage.accounts.create(JULIET, CREDS_B) is False
    assert await storage.accounts.get(JULIET) == CREDS_A


async def test_set_credentials_replaces_them_only_for_an_existing_account(storage: Storage) -> None:
    await storage.accounts.create(JULIET, CREDS_A)
    assert await storage.accounts.set_credentials(JULIET, CREDS_B) is True
    assert await storage.accounts.get(JULIET) == CREDS_B
    assert await storage.accounts.set_credentials(ROMEO, CREDS_B) is False
    assert await storage.accounts.get(ROMEO) is None


async def test_account_list_is_sorted_and_filtered_by_host(storage: Storage) -> None:
    for owner in (ROMEO, NURSE, JULIET, "juliet@sub.example.org"):
        await storage.accounts.create(owner, CREDS_A)
    assert await storage.accounts.list() == sorted([ROMEO, NURSE, JULIET, "juliet@sub.example.org"])
    assert await storage.accounts.list("example.org") == [JULIET, ROMEO]
    assert await storage.accounts.list("example.net") == [NURSE]
    assert await storage.accounts.list("nowhere.example") == []


async def _fill(st: Storage, owner: str, contact: str) -> None:
    await st.accounts.create(owner, CREDS_A)
    await st.roster.put(owner, RosterItem(contact, "Contact", "both", groups=["Friends"]))
    await st.offline.push(owner, f"<message to='{owner}'/>".encode())
    await st.documents("vcard").set(owner, "", b"<vCard/>")
    await st.documents("private").set(owner, "storage:bookmarks", b"<storage/>")
    await st.blocklist.add(owner, ["spam@example.com"])


async def test_account_delete_removes_every_kind_of_data_of_that_owner_only(storage: Storage) -> None:
    await _fill(storage, JULIET, ROMEO)
    await _fill(storage, ROMEO, JULIET)

    assert await storage.accounts.delete(JULIET) is True

    assert await storage.accounts.get(JULIET) is None
    assert (await storage.roster.get(JULIET))[1] == {}
    assert await storage.offline.list(JULIET) == []
    assert await storage.offline.count(JULIET) == 0
    assert await storage.documents("vcard").get(JULIET, "") is None
    assert await storage.documents("private").get(JULIET, "storage:bookmarks") is None
    assert await storage.blocklist.get(JULIET) == set()
    assert await storage.accounts.list() == [ROMEO]

    # Romeo's data is untouched, including the roster item that names Juliet.
    assert await storage.accounts.get(ROMEO) == CREDS_A
    assert list((await storage.roster.get(ROMEO))[1]) == [JULIET]
    assert await storage.offline.count(ROMEO) == 1
    assert await storage.documents("vcard").get(ROMEO, "") == b"<vCard/>"
    assert await storage.documents("private").get(ROMEO, "storage:bookmarks") == b"<storage/>"
    assert await storage.blocklist.get(ROMEO) == {"spam@example.com"}


async def test_account_delete_of_an_unknown_owner_returns_false(storage: Storage) -> None:
    assert await storage.accounts.delete(JULIET) is False


async def test_deleted_account_can_be_created_again_with_no_old_data(storage: Storage) -> None:
    await _fill(storage, JULIET, ROMEO)
    await storage.accounts.delete(JULIET)
    assert await storage.accounts.create(JULIET, CREDS_B) is True
    assert await storage.accounts.get(JULIET) == CREDS_B
    assert (await storage.roster.get(JULIET))[1] == {}
    assert await storage.offline.list(JULIET) == []


# --- roster ---------------------------------------------------------------------------


async def test_empty_roster_is_version_zero_with_no_items(storage: Storage) -> None:
    assert await storage.roster.get(JULIET) == (0, {})


async def test_roster_put_get_delete_with_increasing_versions(storage: Storage) -> None:
    romeo = RosterItem(ROMEO, "Romeo", "both", groups=["Friends", "Verona"])
    nurse = RosterItem(NURSE, None, "none", ask=True, pending_in=True, approved=True, listed=False)
    v1 = await storage.roster.put(JULIET, romeo)
    v2 = await storage.roster.put(JULIET, nurse)
    assert 0 < v1 < v2
    version, items = await storage.roster.get(JULIET)
    assert version == v2
    assert items == {ROMEO: romeo, NURSE: nurse}

    renamed = RosterItem(ROMEO, "My Romeo", "to", groups=[])
    v3 = await storage.roster.put(JULIET, renamed)
    assert v3 > v2
    assert (await storage.roster.get(JULIET))[1][ROMEO] == renamed

    v4 = await storage.roster.delete(JULIET, NURSE)
    assert v4 > v3
    assert await storage.roster.get(JULIET) == (v4, {ROMEO: renamed})


async def test_roster_versions_are_per_owner(storage: Storage) -> None:
    await storage.roster.put(JULIET, RosterItem(ROMEO))
    await storage.roster.put(JULIET, RosterItem(NURSE))
    before = await storage.roster.get(ROMEO)
    await storage.roster.put(ROMEO, RosterItem(JULIET))
    assert before == (0, {})
    assert list((await storage.roster.get(ROMEO))[1]) == [JULIET]
    assert set((await storage.roster.get(JULIET))[1]) == {ROMEO, NURSE}


async def test_roster_item_fields_round_trip_with_unicode(storage: Storage) -> None:
    item = RosterItem("zoë@example.org", "Zoë ✓ \"quoted\"", "from", groups=["Ünï", "中文", ""])
    await storage.roster.put(JULIET, item)
    assert (await storage.roster.get(JULIET))[1] == {"zoë@example.org": item}


# --- offline ---------------------------------------------------------------------------


async def test_offline_messages_are_listed_in_push_order_and_deleted_through_an_id(storage: Storage) -> None:
    stanzas = [f"<message id='{i}'/>".encode() for i in range(5)]
    for s in stanzas:
        await storage.offline.push(JULIET, s)
    await storage.offline.push(ROMEO, b"<message id='r'/>")
    listed = await storage.offline.list(JULIET)
    assert [s for _, s in listed] == stanzas
    ids = [i for i, _ in listed]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert await storage.offline.count(JULIET) == 5

    await storage.offline.delete_through(JULIET, ids[2])
    assert [s for _, s in await storage.offline.list(JULIET)] == stanzas[3:]
    assert await storage.offline.count(JULIET) == 2
    assert [s for _, s in await storage.offline.list(ROMEO)] == [b"<message id='r'/>"]


async def test_offline_messages_pushed_concurrently_keep_the_order_of_the_calls(storage: Storage) -> None:
    stanzas = [f"<message id='{i}'/>".encode() for i in range(200)]
    await asyncio.gather(*(storage.offline.push(JULIET, s) for s in stanzas))
    assert [s for _, s in await storage.offline.list(JULIET)] == stanzas


async def test_read_issued_after_a_write_was_issued_sees_that_write(storage: Storage) -> None:
    # An offline message stored just before its recipient logs in must be in the login's read.
    pushed, listed = await asyncio.gather(
        storage.offline.push(JULIET, b"<message id='just-before'/>"), storage.offline.list(JULIET)
    )
    assert [s for _, s in listed] == [b"<message id='just-before'/>"]


async def test_offline_delete_through_does_not_touch_later_messages_or_other_owners(storage: Storage) -> None:
    await storage.offline.push(JULIET, b"<a/>")
    await storage.offline.push(ROMEO, b"<b/>")
    await storage.offline.push(JULIET, b"<c/>")
    (first_id, _), _ = await storage.offline.list(JULIET)
    romeo_id = (await storage.offline.list(ROMEO))[0][0]
    await storage.offline.delete_through(JULIET, romeo_id)  # an id past Juliet's first: only hers go
    assert [s for _, s in await storage.offline.list(JULIET)] == [b"<c/>"]
    assert [s for _, s in await storage.offline.list(ROMEO)] == [b"<b/>"]
    assert first_id < romeo_id


async def test_offline_stanza_bytes_are_kept_exactly(storage: Storage) -> None:
    data = "<message><body>\x00ünï &amp; \r\n ✓</body></message>".encode() + bytes(range(256))
    await storage.offline.push(JULIET, data)
    assert (await storage.offline.list(JULIET))[0][1] == data


# --- documents -------------------------------------------------------------------------


async def test_document_get_set_and_none_deletes(storage: Storage) -> None:
    vcards = storage.documents("vcard")
    assert await vcards.get(JULIET, "") is None
    await vcards.set(JULIET, "", b"<vCard>1</vCard>")
    assert await vcards.get(JULIET, "") == b"<vCard>1</vCard>"
    await vcards.set(JULIET, "", b"<vCard>2</vCard>")
    assert await vcards.get(JULIET, "") == b"<vCard>2</vCard>"
    await vcards.set(JULIET, "", None)
    assert await vcards.get(JULIET, "") is None
    await vcards.set(JULIET, "", None)  # deleting what is not there is fine
    assert await vcards.get(JULIET, "") is None


async def test_documents_are_separate_by_kind_key_and_owner(storage: Storage) -> None:
    await storage.documents("private").set(JULIET, "a", b"private-a")
    await storage.documents("private").set(JULIET, "b", b"private-b")
    await storage.documents("vcard").set(JULIET, "a", b"vcard-a")
    await storage.documents("private").set(ROMEO, "a", b"romeo-a")
    assert await storage.documents("private").get(JULIET, "a") == b"private-a"
    assert await storage.documents("private").get(JULIET, "b") == b"private-b"
    assert await storage.documents("vcard").get(JULIET, "a") == b"vcard-a"
    assert await storage.documents("vcard").get(JULIET, "b") is None
    assert await storage.documents("private").get(ROMEO, "a") == b"romeo-a"
    await storage.documents("private").set(JULIET, "a", None)
    assert await storage.documents("vcard").get(JULIET, "a") == b"vcard-a"
    assert await storage.documents("private").get(ROMEO, "a") == b"romeo-a"


async def test_empty_document_is_not_a_missing_one(storage: Storage) -> None:
    await storage.documents("last").set(JULIET, "", b"")
    assert await storage.documents("last").get(JULIET, "") == b""


# --- blocklist -------------------------------------------------------------------------


async def test_blocklist_add_get_remove_and_remove_all(storage: Storage) -> None:
    assert await storage.blocklist.get(JULIET) == set()
    await storage.blocklist.add(JULIET, ["a@example.com", "b@example.com"])
    await storage.blocklist.add(JULIET, ["b@example.com", "c.example.com"])
    await storage.blocklist.add(ROMEO, ["a@example.com"])
    assert await storage.blocklist.get(JULIET) == {"a@example.com", "b@example.com", "c.example.com"}
    await storage.blocklist.remove(JULIET, ["a@example.com", "not-there@example.com"])
    assert await storage.blocklist.get(JULIET) == {"b@example.com", "c.example.com"}
    await storage.blocklist.remove(JULIET, None)
    assert await storage.blocklist.get(JULIET) == set()
    assert await storage.blocklist.get(ROMEO) == {"a@example.com"}


async def test_blocklist_add_and_remove_of_nothing_change_nothing(storage: Storage) -> None:
    await storage.blocklist.add(JULIET, ["a@example.com"])
    await storage.blocklist.add(JULIET, [])
    await storage.blocklist.remove(JULIET, [])
    assert await storage.blocklist.get(JULIET) == {"a@example.com"}


# --- durability ------------------------------------------------------------------------


async def _write_everything(st: Storage) -> None:
    await st.accounts.create(JULIET, CREDS_A)
    await st.roster.put(JULIET, RosterItem(ROMEO, "Romeo", "both", groups=["Friends"]))
    for i in range(3):
        await st.offline.push(JULIET, f"<message id='{i}'/>".encode())
    await st.documents("vcard").set(JULIET, "", b"<vCard/>")
    await st.blocklist.add(JULIET, ["spam@example.com"])


async def _check_everything(st: Storage) -> None:
    assert await st.accounts.get(JULIET) == CREDS_A
    version, items = await st.roster.get(JULIET)
    assert version > 0 and items == {ROMEO: RosterItem(ROMEO, "Romeo", "both", groups=["Friends"])}
    assert [s for _, s in await st.offline.list(JULIET)] == [f"<message id='{i}'/>".encode() for i in range(3)]
    assert await st.documents("vcard").get(JULIET, "") == b"<vCard/>"
    assert await st.blocklist.get(JULIET) == {"spam@example.com"}


async def test_acknowledged_writes_survive_closing_and_reopening(backend: Any) -> None:
    st = backend.new()
    await st.open()
    await _write_everything(st)
    st = await reopened(backend, st)
    try:
        await _check_everything(st)
    finally:
        await st.close()


async def test_acknowledged_writes_survive_the_process_being_killed(backend: Any) -> None:
    child = textwrap.dedent(
        """
        import asyncio, os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {tests!r})
        from test_storage_contract import _write_everything
        {open_storage}

        async def main():
            await storage.open()
            await _write_everything(storage)
            print("ok", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    ).format(tests=str(Path(__file__).parent), open_storage=backend.child_source())
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout == "ok\n"
    st = backend.new()
    await st.open()
    try:
        await _check_everything(st)
    finally:
        await st.close()


async def test_many_reads_issued_together_each_get_their_own_answer(storage: Storage) -> None:
    owners = [f"user{i}@example.org" for i in range(300)]
    await asyncio.gather(*(storage.accounts.create(o, CREDS_A if i % 2 else CREDS_B) for i, o in enumerate(owners)))
    found = await asyncio.gather(*(storage.accounts.get(o) for o in owners))
    assert found == [CREDS_A if i % 2 else CREDS_B for i in range(300)]
