"""Offline storage and the archive agree: a client that relies on offline delivery and a client that
syncs by MAM each get every message exactly once, because offline copies carry their archived copy's
stanza-id (docs/archive.md)."""

from __future__ import annotations

from collections import Counter

from mam_helpers import mam_config, mam_query, rsm, stanza_id
from sm_client import SmClient
from xmpp_harness import Client, body_of, is_message


def bodies_received(client: Client, bodies: list[str]) -> Counter[str]:
    return Counter(el.findtext("{jabber:client}body") for el in client.inbox.history
                   if is_message()(el) and el.findtext("{jabber:client}body") in bodies)


async def test_offline_delivery_and_mam_sync_each_give_every_message_once(make_server, session_for) -> None:
    srv = make_server(mam_config(), accounts=2)
    session = session_for(srv)
    alice_account, bob_account = srv.new_account(), srv.new_account()
    alice = await session.login(alice_account)
    offline = [f"while away {i}" for i in range(5)]
    for body in offline:
        alice.message(bob_account.jid, body)
    await alice.ping_server()

    # A client without MAM: offline delivery, each message once, each with the archive's id.
    laptop = await session.login(bob_account, resource="laptop")
    got = [await laptop.expect_message(body) for body in offline]
    offline_ids = [stanza_id(el, bob_account.jid) for el in got]
    assert None not in offline_ids and len(set(offline_ids)) == 5

    # A client that syncs by MAM: the archive holds the same messages under the same ids.
    phone = await session.login(bob_account, resource="phone")
    synced = await mam_query(phone)
    assert synced.bodies == offline and synced.ids == offline_ids

    # A live message reaches both with one id; the next sync after the last known id brings only it.
    alice.message(bob_account.jid, "live")
    live = [await client.expect_message("live") for client in (laptop, phone)]
    assert stanza_id(live[0], bob_account.jid) == stanza_id(live[1], bob_account.jid)
    since = await mam_query(phone, rsm(after=synced.ids[-1]))
    assert since.bodies == ["live"] and since.ids == [stanza_id(live[1], bob_account.jid)]

    # A client that does both (offline delivery at login, then a MAM catch-up) tells copies apart by id.
    catch_up = await mam_query(laptop)
    seen = {stanza_id(el, bob_account.jid): el.findtext("{jabber:client}body") for el in [*got, live[0]]}
    for id, body in zip(catch_up.ids, catch_up.bodies):
        seen.setdefault(id, body)
    assert sorted(seen.values()) == sorted([*offline, "live"])
    await alice.ping_server()
    for client in (laptop, phone):
        counts = bodies_received(client, [*offline, "live"])
        assert all(n == 1 for n in counts.values()), counts


async def test_a_bound_but_unavailable_recipient_gets_one_archived_copy(make_server, session_for) -> None:
    srv = make_server(mam_config(), accounts=2)
    session = session_for(srv)
    alice = await session.login()
    bob_account = srv.new_account()
    silent = await session.login(bob_account, resource="silent", presence=False)
    alice.message(bob_account.jid, "kept for later")
    await alice.ping_server()
    archived = await mam_query(silent)
    assert archived.bodies == ["kept for later"]
    silent.presence()  # initial presence: offline delivery
    got = await silent.expect_message("kept for later")
    assert stanza_id(got, bob_account.jid) == archived.ids[0]


async def test_a_message_to_an_unknown_account_is_not_archived_for_it(make_server, session_for) -> None:
    srv = make_server(mam_config(), accounts=1)
    session = session_for(srv)
    alice = await session.login()
    alice.message("nobody@localhost", "anyone there?")
    await alice.expect(lambda el: el.get("type") == "error", "the bounce")
    assert (await mam_query(alice)).bodies == ["anyone there?"]  # the sender's own copy stays


async def test_a_message_a_session_never_acknowledged_is_archived_once(make_server, session_for) -> None:
    """A client with stream management that goes away without acknowledging a message (Dino killed, a
    phone gone): the message goes to the account again, to another client or offline storage, with the
    stanza-id it was archived under, and is not archived a second time. Before, each redelivery was a new
    archive entry, and Dino, catching up by MAM, showed the copy of an OMEMO message as one it could not
    decrypt."""
    srv = make_server(mam_config(modules=["smacks"]), accounts=2)
    session = session_for(srv)
    alice = await session.login()
    bob_account = srv.new_account()

    # Alone: the unacknowledged message waits in offline storage.
    phone = await SmClient.login(srv, bob_account, "phone")
    try:
        await phone.enable()
        await phone.send("<presence/>")
        alice.message(bob_account.jid, "alone and unacked")
        assert await phone.message_bodies(1) == ["alone and unacked"]
        first_id = stanza_id(next(s for s in phone.stanzas if body_of(s) == "alone and unacked"), bob_account.jid)
        assert first_id is not None
        await phone.send("</stream:stream>")  # ends the session: no resumption
        await phone.stream.read_until_closed()
    finally:
        phone.close()
    later = await session.login(bob_account, resource="later")
    again = await later.expect_message("alone and unacked")
    assert stanza_id(again, bob_account.jid) == first_id
    archived = await mam_query(later)
    assert archived.bodies == ["alone and unacked"] and archived.ids == [first_id]

    # Beside another client: whatever that client gets again carries the same id, and the archive has it once.
    phone = await SmClient.login(srv, bob_account, "phone")
    try:
        await phone.enable()
        await phone.send("<presence/>")
        alice.message(bob_account.jid, "beside another, unacked")
        assert await phone.message_bodies(1) == ["beside another, unacked"]
        live = await later.expect_message("beside another, unacked")
        second_id = stanza_id(live, bob_account.jid)
        await phone.send("</stream:stream>")  # ends the session: no resumption
        await phone.stream.read_until_closed()
    finally:
        phone.close()
    await alice.ping_server()
    await later.ping_server()
    for el in later.inbox.history:
        if is_message()(el) and el.findtext("{jabber:client}body") == "beside another, unacked":
            assert stanza_id(el, bob_account.jid) == second_id
    archived = await mam_query(later)
    assert archived.bodies == ["alone and unacked", "beside another, unacked"]
    assert archived.ids == [first_id, second_id]
