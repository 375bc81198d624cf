"""``sakari storage copy``: moving a server's data from SQLite to PostgreSQL (and back)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from sakari_process import run_cli
from sakari.storage.base import RosterItem, Storage
from sakari.storage.postgres import PostgresStorage
from sakari.storage.sqlite import SqliteStorage

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_storage_contract import (  # noqa: E402
    JULIET,
    ROMEO,
    PostgresBackend,
    _check_everything,
    _write_everything,
    postgres_database,  # noqa: F401
)

TABLE_COUNTS = {
    "accounts": 1, "roster": 1, "roster_version": 1, "offline": 3, "documents": 2,
    "blocklist": 1, "keyvalue": 1, "archive": 2,
}


async def _fill(st: Storage) -> list[str]:
    await _write_everything(st)
    await st.map("bookmarks").set(JULIET, "room", b"<conference/>")
    await st.keyvalue("prefs").set(JULIET, b"always")
    return [await st.archive("mam").append(JULIET, ROMEO, f"<m n='{i}'/>".encode()) for i in range(2)]


async def _check(st: Storage, archive_ids: list[str]) -> None:
    await _check_everything(st)
    assert await st.map("bookmarks").items(JULIET) == {"room": b"<conference/>"}
    assert await st.keyvalue("prefs").get(JULIET) == b"always"
    page = await st.archive("mam").query(JULIET)
    assert [item.id for item in page.items] == archive_ids


async def _with(st: Storage, action: Any) -> Any:
    await st.open()
    try:
        return await action(st)
    finally:
        await st.close()


def _counts(stdout: str) -> dict[str, int]:
    return {table: int(n) for table, n in (line.split(": ") for line in stdout.splitlines())}


@pytest.fixture
def postgres_url(postgres_database: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:  # noqa: F811
    target = PostgresBackend(tmp_path, request)
    asyncio.run(target.clean())
    return target.url


def test_copy_moves_every_store_from_sqlite_to_postgresql_keeping_ids(tmp_path: Path, postgres_url: str) -> None:
    data = tmp_path / "data"
    archive_ids = asyncio.run(_with(SqliteStorage(data / "sakari.sqlite"), _fill))

    result = run_cli("storage", "copy", "--data-dir", str(data), "--to", postgres_url)
    assert result.returncode == 0, result.stderr
    assert _counts(result.stdout) == TABLE_COUNTS

    async def check_and_push(st: Storage) -> None:
        await _check(st, archive_ids)
        before = [i for i, _ in await st.offline.list(JULIET)]
        await st.offline.push(JULIET, b"<after-the-move/>")  # new ids continue past the copied ones
        after = [i for i, _ in await st.offline.list(JULIET)]
        assert after[:-1] == before and after[-1] > before[-1]
        assert await st.roster.put(JULIET, RosterItem("nurse@example.net")) == 2

    asyncio.run(_with(PostgresStorage(postgres_url), check_and_push))


def test_copy_refuses_a_target_with_data_unless_forced_and_then_replaces_it(tmp_path: Path, postgres_url: str) -> None:
    data = tmp_path / "data"
    archive_ids = asyncio.run(_with(SqliteStorage(data / "sakari.sqlite"), _fill))
    assert run_cli("storage", "copy", "--data-dir", str(data), "--to", postgres_url).returncode == 0

    again = run_cli("storage", "copy", "--data-dir", str(data), "--to", postgres_url)
    assert again.returncode == 2
    assert "already holds data" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr

    forced = run_cli("storage", "copy", "--data-dir", str(data), "--to", postgres_url, "--force")
    assert forced.returncode == 0, forced.stderr
    assert _counts(forced.stdout) == TABLE_COUNTS
    asyncio.run(_with(PostgresStorage(postgres_url), lambda st: _check(st, archive_ids)))


def test_copy_back_from_postgresql_to_sqlite(tmp_path: Path, postgres_url: str) -> None:
    archive_ids = asyncio.run(_with(PostgresStorage(postgres_url), _fill))
    config = tmp_path / "sakari.toml"
    config.write_text(f'[storage]\nbackend = "postgresql"\nurl = "{postgres_url}"\n')
    back = tmp_path / "back.sqlite"

    result = run_cli("storage", "copy", "--config", str(config), "--to", f"sqlite://{back}")
    assert result.returncode == 0, result.stderr
    assert _counts(result.stdout) == TABLE_COUNTS
    asyncio.run(_with(SqliteStorage(back), lambda st: _check(st, archive_ids)))


def test_copy_to_a_bad_url_or_onto_itself_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    unreachable = run_cli("storage", "copy", "--data-dir", str(data), "--to", "postgresql://sakari:s3cret@127.0.0.1:1/sakari")
    assert unreachable.returncode == 2
    assert "PostgreSQL at postgresql://sakari:***@127.0.0.1:1/sakari" in unreachable.stderr
    assert "s3cret" not in unreachable.stderr and "Traceback" not in unreachable.stderr

    itself = run_cli("storage", "copy", "--data-dir", str(data), "--to", f"sqlite://{data.resolve()}/sakari.sqlite")
    assert itself.returncode == 2 and "where the data already is" in itself.stderr
