"""The message archive on PostgreSQL: a real server on that backend archives both sides, pages,
searches by full text and stamps offline copies with the archive's id."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from mam_helpers import form, mam_config, mam_query, rsm, stanza_id
from sakari_process import Account

from sakari.credentials import derive
from sakari.storage.postgres import PostgresStorage

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_storage_contract import PostgresBackend, postgres_database  # noqa: E402, F401


@pytest.fixture
def postgres_url(postgres_database: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:  # noqa: F811
    target = PostgresBackend(tmp_path, request)
    asyncio.run(target.clean())
    return target.url


async def _accounts(url: str, names: list[str]) -> list[Account]:
    storage = PostgresStorage(url)
    await storage.open()
    try:
        accounts = [Account(f"{name}@localhost", f"pw-{name}") for name in names]
        for account in accounts:
            assert await storage.accounts.create(account.jid, derive(account.password, 4096))
        return accounts
    finally:
        await storage.close()


async def test_the_archive_works_on_postgresql(make_server, session_for, postgres_url: str) -> None:
    alice_account, bob_account = await _accounts(postgres_url, ["alice", "bob"])
    srv = make_server(mam_config(f'[storage]\nbackend = "postgresql"\nurl = "{postgres_url}"\n'))
    session = session_for(srv)
    alice = await session.login(alice_account)
    away = ["dinner at eight?", "or the library tomorrow"]
    for body in away:
        alice.message(bob_account.jid, body)
    await alice.ping_server()
    bob = await session.login(bob_account)
    offline = [await bob.expect_message(body) for body in away]
    bodies = [f"line {i}" for i in range(12)]
    for body in bodies:
        alice.message(bob.bare, body)
    for body in bodies:
        await bob.expect_message(body)

    everything = await mam_query(bob)
    assert everything.bodies == away + bodies
    assert [stanza_id(el, bob.bare) for el in offline] == everything.ids[:2]
    assert (await mam_query(alice)).bodies == away + bodies
    last = await mam_query(bob, rsm(max=5, before=""))
    assert last.bodies == bodies[-5:] and not last.complete
    earlier = await mam_query(bob, rsm(max=5, before=last.rsm("first")))
    assert earlier.bodies == bodies[2:7]
    assert (await mam_query(bob, form(fulltext="LIBRARY"))).bodies == ["or the library tomorrow"]
    assert (await mam_query(bob, rsm(max=0))).rsm("count") == "14"
