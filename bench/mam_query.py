"""Archive query latency: pages of 50 from one user's archive of N messages, on SQLite or PostgreSQL.

Fills a fresh archive through the store (in batches, as the archive module writes), then times
queries the way clients page: the last page, pages before and after random ids, by contact, and
by full text. Prints the median and p99 of each kind, in milliseconds.

    python -m bench.mam_query --rows 100000
    python -m bench.mam_query --rows 1000000 --url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sakari.storage.base import ArchiveEntry, ArchiveStore, Storage
from sakari.storage.postgres import PostgresStorage

OWNER = "juliet@example.org"
CONTACTS = [f"friend{i}@example.org" for i in range(20)]
WORDS = "the a to of and meet library tomorrow concert ticket train late coffee dinner call later home soon".split()
BATCH = 2000


async def fill(archive: ArchiveStore, rows: int, rng: random.Random) -> list[str]:
    ids: list[str] = []
    for start in range(0, rows, BATCH):
        entries = []
        for n in range(start, min(rows, start + BATCH)):
            text = " ".join(rng.choices(WORDS, k=8)) + f" n{n}"
            contact = rng.choice(CONTACTS)
            stanza = f"<message xmlns='jabber:client' from='{contact}/phone' to='{OWNER}' type='chat'><body>{text}</body></message>"
            entries.append(ArchiveEntry(OWNER, archive.new_id(), contact, stanza.encode(), text))
        await archive.append_many(entries)
        ids += [e.id for e in entries]
    return ids


async def timed(name: str, runs: int, query: Callable[[], Awaitable[object]]) -> None:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await query()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{name:32s} median {statistics.median(times):6.2f} ms   p99 {p99:6.2f} ms   ({runs} queries)")


async def run(storage: Storage, rows: int, runs: int) -> None:
    rng = random.Random(1)
    await storage.open()
    try:
        archive = storage.archive("mam")
        t0 = time.perf_counter()
        ids = await fill(archive, rows, rng)
        print(f"filled {rows:,} messages in {time.perf_counter() - t0:.1f} s")
        if isinstance(storage, PostgresStorage):
            await storage.db.write(("ANALYZE archive", ()))  # as autovacuum would: plans need the table's statistics
        await timed("last page (empty <before/>)", runs, lambda: archive.query(OWNER, limit=50, reverse=True))
        await timed("page after a random id", runs, lambda: archive.query(OWNER, after_id=rng.choice(ids), limit=50))
        await timed("page before a random id", runs, lambda: archive.query(OWNER, before_id=rng.choice(ids), limit=50, reverse=True))
        await timed("with one contact, last page", runs, lambda: archive.query(OWNER, with_jid=rng.choice(CONTACTS), limit=50, reverse=True))
        await timed("full text, one word", runs, lambda: archive.query(OWNER, text=rng.choice(WORDS[6:]), limit=50, reverse=True))
        await timed("full text, a rare word", runs, lambda: archive.query(OWNER, text=f"n{rng.randrange(rows)}", limit=50, reverse=True))
    finally:
        await storage.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--url", help="a PostgreSQL database to fill (its tables are used as they are); SQLite in a temporary directory when absent")
    args = ap.parse_args()
    if args.url:
        asyncio.run(run(PostgresStorage(args.url), args.rows, args.runs))
        return
    from sakari.storage.sqlite import SqliteStorage

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(SqliteStorage(Path(tmp) / "sakari.sqlite"), args.rows, args.runs))


if __name__ == "__main__":
    main()
