"""Opening storage: per-store migrations, today's SQLite files, refusals with reasons."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from sakari.config import Config
from sakari.errors import StartError
from sakari.storage import open_storage
from sakari.storage.base import RosterItem
from sakari.storage.postgres import PostgresStorage
from sakari.storage.sql import SchemaTooNew
from sakari.storage.sqlite import MIGRATIONS, SqliteDatabase, SqliteStorage
from test_storage_contract import CREDS_A, JULIET, ROMEO, backend, postgres_database  # noqa: F401

# The schema Sakari wrote before migrations were per store: one version number for every table.
SINGLE_VERSION_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE accounts (
    owner TEXT PRIMARY KEY, salt BLOB NOT NULL, iterations INTEGER NOT NULL,
    sha1_stored BLOB NOT NULL, sha1_server BLOB NOT NULL,
    sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL);
CREATE TABLE roster (
    owner TEXT NOT NULL, jid TEXT NOT NULL, name TEXT, subscription TEXT NOT NULL,
    ask INTEGER NOT NULL, pending_in INTEGER NOT NULL, approved INTEGER NOT NULL,
    listed INTEGER NOT NULL, groups TEXT NOT NULL, PRIMARY KEY (owner, jid));
CREATE TABLE roster_version (owner TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, stanza BLOB NOT NULL);
CREATE INDEX offline_owner ON offline (owner, id);
CREATE TABLE documents (owner TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (owner, kind, key));
CREATE TABLE blocklist (owner TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (owner, jid));
"""


def _single_version_file(path: Path, version: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SINGLE_VERSION_SCHEMA)
    conn.execute("UPDATE schema_version SET version = ?", (version,))
    k1, k256 = CREDS_A.keys["SHA-1"], CREDS_A.keys["SHA-256"]
    conn.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?)",
        (JULIET, CREDS_A.salt, CREDS_A.iterations, k1.stored_key, k1.server_key, k256.stored_key, k256.server_key),
    )
    conn.execute("INSERT INTO roster VALUES (?, ?, 'Romeo', 'both', 0, 0, 0, 1, '[\"Friends\"]')", (JULIET, ROMEO))
    conn.execute("INSERT INTO roster_version VALUES (?, 7)", (JULIET,))
    conn.execute("INSERT INTO offline (owner, stanza) VALUES (?, x'3c6d2f3e')", (JULIET,))
    conn.execute("INSERT INTO documents VALUES (?, 'vcard', '', x'3c76436172642f3e')", (JULIET,))
    conn.execute("INSERT INTO blocklist VALUES (?, 'spam@example.com')", (JULIET,))
    conn.commit()
    conn.close()


async def test_a_single_version_sqlite_file_is_upgraded_in_place_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "sakari.sqlite"
    _single_version_file(path)
    st = SqliteStorage(path)
    await st.open()
    try:
        assert await st.accounts.get(JULIET) == CREDS_A
        assert await st.roster.get(JULIET) == (7, {ROMEO: RosterItem(ROMEO, "Romeo", "both", groups=["Friends"])})
        assert [s for _, s in await st.offline.list(JULIET)] == [b"<m/>"]
        assert await st.documents("vcard").get(JULIET, "") == b"<vCard/>"
        assert await st.blocklist.get(JULIET) == {"spam@example.com"}
        assert await st.roster.put(JULIET, RosterItem("nurse@example.net")) == 8
        await st.archive("mam").append(JULIET, ROMEO, b"<m/>")  # the stores that came later exist
        await st.keyvalue("prefs").set(JULIET, b"p")
    finally:
        await st.close()
    conn = sqlite3.connect(path)
    versions = dict(conn.execute("SELECT store, version FROM schema_versions"))
    assert versions == {store: len(scripts) for store, scripts in MIGRATIONS.items()}
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone() is None
    conn.close()


async def test_a_single_version_sqlite_file_newer_than_version_1_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "sakari.sqlite"
    _single_version_file(path, version=2)
    with pytest.raises(SchemaTooNew, match="schema version 2 is newer"):
        await SqliteStorage(path).open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone() == (2,)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_versions'").fetchone() is None
    conn.close()


async def _set_versions(backend: Any, sql: str) -> None:
    st = backend.new()
    await st.open()
    await st.db.write((sql, ()))
    await st.close()


async def test_a_store_at_a_version_newer_than_the_code_is_refused_by_name(backend: Any) -> None:
    await _set_versions(backend, "UPDATE schema_versions SET version = 99 WHERE store = 'archive'")
    with pytest.raises(SchemaTooNew, match="'archive' data is at schema version 99"):
        await backend.new().open()


async def test_a_store_this_code_does_not_know_is_refused(backend: Any) -> None:
    await _set_versions(backend, "INSERT INTO schema_versions VALUES ('from_the_future', 1)")
    with pytest.raises(SchemaTooNew, match="'from_the_future'"):
        await backend.new().open()


async def test_reopening_runs_no_migration_again_and_keeps_data(backend: Any) -> None:
    for _ in range(2):
        st = backend.new()
        await st.open()
        await st.accounts.create(JULIET, CREDS_A)
        await st.close()
    st = backend.new()
    await st.open()
    try:
        assert await st.accounts.list() == [JULIET]
    finally:
        await st.close()


async def test_sqlite_reads_run_on_reader_threads_not_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    read_now = SqliteDatabase._read_now

    def recording(self: SqliteDatabase, statements: Any) -> Any:
        threads.append(threading.current_thread().name)
        return read_now(self, statements)

    monkeypatch.setattr(SqliteDatabase, "_read_now", recording)
    st = SqliteStorage(tmp_path / "sakari.sqlite")
    await st.open()
    try:
        await st.accounts.get(JULIET)
        await st.roster.get(JULIET)
    finally:
        await st.close()
    assert len(threads) == 2 and all(name.startswith("sakari-sqlite-read") for name in threads)


# --- choosing and reaching a backend ---------------------------------------------------


def test_an_unknown_backend_is_refused_naming_the_known_ones() -> None:
    config = Config.parse('[storage]\nbackend = "mongodb"\n')
    with pytest.raises(StartError, match=r"unknown backend 'mongodb' \(known: 'postgresql', 'sqlite'\)"):
        open_storage(config)


def test_the_backend_is_chosen_by_configuration(tmp_path: Path) -> None:
    assert isinstance(open_storage(Config.parse(f'data_dir = "{tmp_path}"\n')), SqliteStorage)
    config = Config.parse('[storage]\nbackend = "postgresql"\nurl = "postgresql://u:p@127.0.0.1:5432/sakari"\n')
    assert isinstance(open_storage(config), PostgresStorage)


def test_postgresql_without_a_url_is_refused() -> None:
    with pytest.raises(StartError, match="storage.url is empty"):
        open_storage(Config.parse('[storage]\nbackend = "postgresql"\n'))


async def test_an_unopenable_sqlite_file_is_a_start_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StartError, match="cannot open the SQLite database"):
        await SqliteStorage(tmp_path / "file" / "sakari.sqlite").open()


@pytest.mark.parametrize(
    "url, reason",
    [
        ("postgresql://sakari:s3cret@127.0.0.1/", "must look like postgresql://"),
        ("mysql://sakari:s3cret@127.0.0.1/sakari", "must look like postgresql://"),
        ("postgresql://sakari:s3cret@127.0.0.1:1/sakari", "PostgreSQL at postgresql://sakari:\\*\\*\\*@127.0.0.1:1/sakari"),
    ],
)
async def test_a_bad_or_unreachable_postgresql_url_is_a_start_error_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(StartError, match=reason) as caught:
        await PostgresStorage(url).open()
    assert "s3cret" not in str(caught.value)


async def test_a_postgresql_database_or_role_that_does_not_exist_is_a_start_error(postgres_database: str) -> None:  # noqa: F811
    base = postgres_database.rpartition("/")[0]
    with pytest.raises(StartError, match="does not exist"):
        await PostgresStorage(f"{base}/no_such_database_here").open()
    with pytest.raises(StartError, match="nobody.*does not exist|does not exist") as caught:
        await PostgresStorage(base.replace("postgres@", "nobody:s3cret@") + "/postgres").open()
    assert "s3cret" not in str(caught.value)
