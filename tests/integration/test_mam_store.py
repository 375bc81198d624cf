"""Archives filled through storage, then read by clients: paging over ten thousand messages, and
messages past the retention period really deleted."""

from __future__ import annotations

import asyncio
import time

from mam_helpers import mam_config, mam_query, rsm

from sakari.storage.base import ArchiveEntry
from sakari.storage.sqlite import SqliteStorage

TOTAL = 10_000


def _message(frm: str, to: str, body: str) -> bytes:
    return f"<message xmlns='jabber:client' from='{frm}/x' to='{to}' type='chat'><body>{body}</body></message>".encode()


async def test_paging_over_ten_thousand_archived_messages_both_ways(make_server, session_for) -> None:
    srv = make_server(mam_config("[mam]\nmax_results = 500\n"), start=False, accounts=2)
    alice, bob = srv.new_account(), srv.new_account()
    storage = SqliteStorage(srv.data_dir / "sakari.sqlite")
    await storage.open()
    archive = storage.archive("mam")
    await archive.append_many(
        [ArchiveEntry(bob.jid, archive.new_id(), alice.jid, _message(alice.jid, bob.jid, f"n{i}"), f"n{i}") for i in range(TOTAL)]
    )
    await storage.close()
    srv.start()
    client = await session_for(srv).login(bob)
    expected = [f"n{i}" for i in range(TOTAL)]

    forward, after, pages = [], None, 0
    while True:
        page = await mam_query(client, rsm(max=500, after=after))
        forward += page.bodies
        pages += 1
        if page.complete:
            break
        after = page.rsm("last")
    assert forward == expected and pages == 20

    backward, before = [], ""
    while True:
        page = await mam_query(client, rsm(max=500, before=before))
        backward = page.bodies + backward
        if page.complete:
            break
        before = page.rsm("first")
    assert backward == expected

    assert (await mam_query(client, rsm(max=0))).rsm("count") == str(TOTAL)
    asked_too_much = await mam_query(client, rsm(max=5000))
    assert len(asked_too_much.messages) == 500 and not asked_too_much.complete
    found = await mam_query(client, "<x xmlns='jabber:x:data' type='submit'><field var='{urn:xmpp:fulltext:0}fulltext'>"
                                    "<value>n9999</value></field></x>")
    assert found.bodies == ["n9999"]


async def test_messages_older_than_the_retention_period_are_deleted(make_server, session_for) -> None:
    srv = make_server(mam_config("[mam]\nretention_days = 30\n"), start=False, accounts=2)
    alice, bob = srv.new_account(), srv.new_account()
    storage = SqliteStorage(srv.data_dir / "sakari.sqlite")
    await storage.open()
    archive = storage.archive("mam")
    day = 86400
    for age, body in ((40, "too old"), (31, "just too old"), (29, "still kept")):
        await archive.append(bob.jid, alice.jid, _message(alice.jid, bob.jid, body), time.time() - age * day, body)
    await storage.close()

    srv.start()
    deadline = time.monotonic() + 20
    while not any("event=archive-expired messages=2" in line for line in srv.log):
        assert time.monotonic() < deadline, "the server did not report deleting the expired messages"
        await asyncio.sleep(0.05)  # polling the log for that report
    client = await session_for(srv).login(bob)
    assert (await mam_query(client)).bodies == ["still kept"]
    srv.stop()

    storage = SqliteStorage(srv.data_dir / "sakari.sqlite")
    await storage.open()
    try:
        assert await storage.archive("mam").count(bob.jid) == 1  # deleted, not hidden
        assert (await storage.archive("mam").query(bob.jid, text="old")).items == []
    finally:
        await storage.close()


async def test_what_was_delivered_before_a_shutdown_is_in_the_archive_after_it(make_server, session_for) -> None:
    srv = make_server(mam_config(), accounts=2)
    session = session_for(srv)
    alice, bob = await session.login(), await session.login()
    bodies = [f"before the restart {i}" for i in range(200)]
    for body in bodies:
        alice.message(bob.bare, body)
    await bob.expect_message(bodies[-1])
    assert srv.stop() == 0  # at once: the last archive writes may still be queued
    srv.start()
    client = await session_for(srv).login(bob.account)
    assert (await mam_query(client, rsm(max=100, before=""))).bodies == bodies[100:]
    assert (await mam_query(client, rsm(max=0))).rsm("count") == "200"
