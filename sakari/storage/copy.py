"""Copying every store from one backend to another (``sakari storage copy``).

The SQL backends share their tables and columns (sakari/storage/sql.py), so
a copy is table by table, in key order and in chunks: ids (offline
messages, archive items) and roster versions survive it, and clients see
no difference after the move.
"""

from __future__ import annotations

from sakari.config import Config
from sakari.errors import StartError
from sakari.storage.base import Storage
from sakari.storage.registry import open_url
from sakari.storage.sql import TABLES
from sakari.storage.stores import SqlStorage


class TargetNotEmpty(StartError):
    """The target already holds data; copying onto it needs force."""


async def copy_to(source: Storage, url: str, config: Config, force: bool = False) -> dict[str, int]:
    """Copy everything in ``source`` (open) to the storage at ``url``; returns rows copied per table."""
    target = open_url(url, config)
    if not isinstance(source, SqlStorage) or not isinstance(target, SqlStorage):
        raise StartError("storage copy: only between SQL backends (sqlite, postgresql)")
    if target.db.place == source.db.place:
        raise StartError(f"storage copy: {target.db.place} is where the data already is")
    await target.open()
    try:
        present = {table: n for table, n in (await target.db.count_rows()).items() if n}
        if present:
            if not force:
                found = ", ".join(f"{table} {n}" for table, n in present.items())
                raise TargetNotEmpty(
                    f"storage copy: {target.db.place} already holds data ({found}); --force replaces it"
                )
            await target.db.empty()
        copied = {}
        for table in TABLES:
            copied[table] = 0
            async for rows in source.db.dump(table):
                await target.db.load(table, rows)
                copied[table] += len(rows)
        await target.db.loaded()
        return copied
    finally:
        await target.close()
