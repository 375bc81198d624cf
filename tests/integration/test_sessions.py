"""Resource binding and session replacement (RFC 6120 §7)."""

import pytest

from xmpp_harness import is_message, is_presence

pytestmark = pytest.mark.asyncio


async def test_server_assigns_a_resource_when_client_requests_none(xmpp):
    client = await xmpp.login(resource=None)
    assert client.jid.startswith(client.bare + "/")
    assert len(client.jid) > len(client.bare) + 1


async def test_two_resources_of_one_account_are_both_online(xmpp):
    account = xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    sender = await xmpp.login()
    sender.message(phone.jid, "to phone")
    sender.message(laptop.jid, "to laptop")
    await phone.expect(is_message(body="to phone", sender=sender.jid))
    await laptop.expect(is_message(body="to laptop", sender=sender.jid))


async def test_second_login_with_same_resource_replaces_older_session(xmpp):
    account = xmpp.account()
    old = await xmpp.login(account, resource="desk")
    new = await xmpp.login(account, resource="desk")
    await old.expect_disconnect()
    assert old.stream_errors == ["conflict"], f"old session got stream errors {old.stream_errors}"
    assert new.jid == f"{account.jid}/desk"
    # The full JID now reaches the new session.
    sender = await xmpp.login()
    sender.message(new.jid, "who gets this")
    await new.expect(is_message(body="who gets this", sender=sender.jid))


async def test_replaced_session_does_not_leave_a_ghost_resource(xmpp):
    """After replacement the account has one resource: another of its own
    sessions sees exactly one 'desk' presence that stays available."""
    account = xmpp.account()
    watcher = await xmpp.login(account, resource="watcher")
    old = await xmpp.login(account, resource="desk")
    await watcher.expect(is_presence(sender=old.jid))
    mark = watcher.inbox.mark()
    new = await xmpp.login(account, resource="desk")
    await old.expect_disconnect()
    # The replacement's initial presence arrives; any unavailable for 'desk'
    # must come before it (the old session ending), never after.
    latest = await watcher.expect(is_presence(sender=new.jid), after=mark)
    new.presence(show="away")
    await watcher.expect(is_presence(sender=new.jid, show="away"), after=mark)
    after_latest = watcher.inbox.since(watcher.inbox.history.index(latest))
    assert not any(is_presence(sender=new.jid, type="unavailable")(el) for el in after_latest), (
        "the old session's end was reported after the new session came online"
    )
