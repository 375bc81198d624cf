"""A fast fill of u1's archive for the mam scenario: rows written straight into each server's archive storage
while the server is stopped, instead of messages sent through it.

Sending a million messages through a server takes hours (bench/README.md, "The archive size"); what the mam
scenario measures is the query, so the fill only has to leave the archive each server would have written:

- Sakari: through its own storage API (``ArchiveStore.append_many``, the call its archive module makes for each
  batch), on the backend the server is configured with (SQLite in its data directory, or PostgreSQL), with the
  text index for search filled as by the server.
- Prosody: rows inserted into ``prosodyarchive``, the table of ``mod_storage_sql`` that ``mod_mam`` reads and
  writes with ``storage = { archive = "sql" }`` (SQLite3 driver), in the format ``archive_store:append`` writes:
  host, user, store ``archive``, ``when`` in whole seconds, ``with`` the contact's bare JID, a UUID key, type
  ``xml`` and the stanza serialized. The table and its indexes are Prosody's own, made at its first start.

Each message is one that a contact (u2…u21) sent to u1, one every ``SPACING`` seconds up to now, with a body of
the length of a chat line, as the fill through the server sends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

BATCH = 5000
SPACING = 10.0  # seconds between two messages: a million span 116 days, inside Sakari's default retention of 365
SENDERS = 20
BODY = "archived benchmark message, a sentence of typical length for a chat line."


def messages(n: int, owner: str, domain: str) -> Iterator[tuple[float, str, str]]:
    """(time, contact's bare JID, stanza) of n messages to ``owner``, oldest first."""
    start = time.time() - n * SPACING
    for i in range(n):
        contact = f"u{2 + i % SENDERS}@{domain}"
        stanza = (f'<message xmlns="jabber:client" from="{contact}/bench" to="{owner}" type="chat" id="f{i}">'
                  f"<body>{BODY} {i}</body></message>")
        yield start + i * SPACING, contact, stanza


async def _fill_sakari(storage, owner: str, domain: str, n: int) -> None:  # storage: sakari.storage.base.Storage
    from sakari.storage.base import ArchiveEntry
    from sakari.storage.stores import format_id, seq_at

    await storage.open()
    try:
        archive = storage.archive("mam")  # the store Sakari's archive module keeps user archives in
        batch: list = []
        for when, contact, stanza in messages(n, owner, domain):
            body = stanza[stanza.index("<body>") + 6:stanza.index("</body>")]
            batch.append(ArchiveEntry(owner, format_id(seq_at(when)), contact, stanza.encode(), body))
            if len(batch) == BATCH:
                await archive.append_many(batch)
                batch = []
        if batch:
            await archive.append_many(batch)
        from sakari.storage.postgres import PostgresStorage

        if isinstance(storage, PostgresStorage):
            await storage.db.write(("ANALYZE archive", ()))  # as autovacuum would after such a load
    finally:
        await storage.close()


def fill_sakari(data_dir: Path, owner: str, domain: str, n: int, url: str | None = None) -> None:
    """Append n messages to ``owner``'s archive in Sakari's storage: SQLite in ``data_dir``, or PostgreSQL at ``url``."""
    if url:
        from sakari.storage.postgres import PostgresStorage

        storage = PostgresStorage(url)
    else:
        from sakari.storage.sqlite import FILE_NAME, SqliteStorage

        storage = SqliteStorage(data_dir / FILE_NAME)
    asyncio.run(_fill_sakari(storage, owner, domain, n))


def fill_prosody(database: Path, user: str, domain: str, n: int) -> None:
    """Append n messages to ``user``'s archive in Prosody's SQLite database (its tables must exist)."""
    owner = f"{user}@{domain}"
    conn = sqlite3.connect(database)
    try:
        conn.execute("BEGIN")
        rows = ((domain, user, "archive", int(when), contact, str(uuid.uuid4()), "xml", stanza)
                for when, contact, stanza in messages(n, owner, domain))
        conn.executemany('INSERT INTO "prosodyarchive" ("host", "user", "store", "when", "with", "key", "type", "value") '
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")  # no ANALYZE: Prosody runs none, so its planner works without statistics as usual
    finally:
        conn.close()
