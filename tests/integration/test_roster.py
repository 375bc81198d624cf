"""Roster management (RFC 6121 §2) and roster versioning (RFC 6121 §2.6, XEP-0237)."""

import pytest

from sakari_process import DOMAIN
from xmpp_harness import NS_ROSTER, describe, is_roster_push, q, roster_item

pytestmark = pytest.mark.asyncio


def item_xml(jid: str, name: str | None = None, groups: tuple[str, ...] = (), subscription: str | None = None) -> str:
    attrs = f" jid='{jid}'"
    if name is not None:
        attrs += f" name='{name}'"
    if subscription is not None:
        attrs += f" subscription='{subscription}'"
    inner = "".join(f"<group>{g}</group>" for g in groups)
    return f"<query xmlns='{NS_ROSTER}'><item{attrs}>{inner}</item></query>"


def groups_of(item) -> list[str]:
    return sorted(g.text or "" for g in item.findall(q(NS_ROSTER, "group")))


async def test_roster_set_is_pushed_to_every_interested_resource_and_returned_by_get(xmpp):
    account = xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = f"contact-{account.localpart}@{DOMAIN}"

    result = await phone.iq("set", item_xml(contact, name="Mercutio", groups=("Friends",)))
    assert result.find(q(NS_ROSTER, "query")) is None or len(result.find(q(NS_ROSTER, "query"))) == 0

    for resource in (phone, laptop):  # including the one that made the change (RFC 6121 §2.3.2)
        push = await resource.expect(is_roster_push(jid=contact))
        assert push.get("from") in (None, account.jid), f"push from a stranger: {describe(push)}"
        item = roster_item(push)
        assert item.get("name") == "Mercutio"
        assert item.get("subscription", "none") == "none"
        assert groups_of(item) == ["Friends"]

    items = await laptop.roster_items()
    assert set(items) == {contact}
    assert items[contact].get("name") == "Mercutio"
    assert groups_of(items[contact]) == ["Friends"]


async def test_roster_update_replaces_name_and_groups(xmpp):
    client = await xmpp.login()
    contact = f"contact-{client.account.localpart}@{DOMAIN}"
    await client.iq("set", item_xml(contact, name="Old", groups=("A", "B")))
    await client.iq("set", item_xml(contact, name="New", groups=("C",)))
    items = await client.roster_items()
    assert items[contact].get("name") == "New"
    assert groups_of(items[contact]) == ["C"]


async def test_roster_remove_is_pushed_with_subscription_remove(xmpp):
    account = xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    contact = f"contact-{account.localpart}@{DOMAIN}"
    await phone.iq("set", item_xml(contact, name="Tybalt"))
    await laptop.expect(is_roster_push(jid=contact, subscription="none"))

    await phone.iq("set", item_xml(contact, subscription="remove"))
    await laptop.expect(is_roster_push(jid=contact, subscription="remove"))
    assert contact not in await laptop.roster_items()


async def test_roster_set_cannot_forge_a_subscription(xmpp):
    """RFC 6121 §2.1.2.5: in a roster set the server ignores any 'subscription'
    other than 'remove' — otherwise a user could grant themselves presence access."""
    client = await xmpp.login()
    victim = xmpp.account()
    await client.iq("set", item_xml(victim.jid, subscription="both"))
    push = await client.expect(is_roster_push(jid=victim.jid))
    assert roster_item(push).get("subscription", "none") == "none"
    assert (await client.roster_items())[victim.jid].get("subscription", "none") == "none"


async def test_roster_set_with_two_items_is_bad_request(xmpp):
    client = await xmpp.login()
    payload = (
        f"<query xmlns='{NS_ROSTER}'><item jid='a-{client.account.localpart}@{DOMAIN}'/>"
        f"<item jid='b-{client.account.localpart}@{DOMAIN}'/></query>"
    )
    condition, _ = await client.iq_error("set", payload)
    assert condition == "bad-request"


async def test_roster_of_another_user_is_forbidden(xmpp):
    client = await xmpp.login()
    other = await xmpp.login()
    condition, _ = await client.iq_error("get", f"<query xmlns='{NS_ROSTER}'/>", to=other.bare)
    assert condition in ("forbidden", "service-unavailable"), condition
    condition, _ = await client.iq_error("set", item_xml(client.bare), to=other.bare)
    assert condition in ("forbidden", "service-unavailable"), condition
    assert client.bare not in await other.roster_items()


async def test_roster_versioning_request_with_current_version_gets_empty_result(xmpp):
    client = await xmpp.login(roster=False)
    assert "rosterver" in client.xmpp.features, "stream features do not offer roster versioning"
    contact = f"contact-{client.account.localpart}@{DOMAIN}"
    await client.iq("set", item_xml(contact, name="Benvolio"))

    full = await client.roster(ver="")
    query = full.find(q(NS_ROSTER, "query"))
    assert query is not None and query.get("ver"), f"no version in the full roster: {describe(full)}"
    assert [i.get("jid") for i in query.findall(q(NS_ROSTER, "item"))] == [contact]

    unchanged = await client.roster(ver=query.get("ver"))
    assert len(unchanged) == 0, f"current version should give an empty result: {describe(unchanged)}"


async def test_roster_version_changes_with_each_push(xmpp):
    client = await xmpp.login()
    first = (await client.roster(ver="")).find(q(NS_ROSTER, "query")).get("ver")
    contact = f"contact-{client.account.localpart}@{DOMAIN}"
    await client.iq("set", item_xml(contact, name="Nurse"))
    push = await client.expect(is_roster_push(jid=contact))
    new_ver = push.find(q(NS_ROSTER, "query")).get("ver")
    assert new_ver and new_ver != first, f"push version {new_ver!r} vs earlier {first!r}"

    # With the version from the push, nothing is missing.
    unchanged = await client.roster(ver=new_ver)
    assert len(unchanged) == 0, describe(unchanged)

    # With the older version the client learns of the change: either the full
    # roster or the missing pushes (RFC 6121 §2.6.3).
    mark = client.inbox.mark()
    stale = await client.roster(ver=first)
    query = stale.find(q(NS_ROSTER, "query"))
    if query is not None:
        assert contact in [i.get("jid") for i in query.findall(q(NS_ROSTER, "item"))]
    else:
        await client.expect(is_roster_push(jid=contact), after=mark)
