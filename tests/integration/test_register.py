"""In-band registration (XEP-0077) with invitation tokens (XEP-0401), contact invitations (XEP-0379), against a real
server with slixmpp clients."""

from __future__ import annotations

import pytest

from register_helpers import invite, register_in_band, token_of
from sakari.settings import DEFAULT_MODULES
from xmpp_harness import LoginFailed, is_roster_push, login
from sakari_process import Account

NS_REGISTER = "jabber:iq:register"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"

CONFIG = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["register"]!r}

[register]
users_may_invite = true
"""


@pytest.fixture(scope="module")
def reg_server(spawn_server):
    with spawn_server("register", CONFIG, accounts=6) as srv:
        yield srv


async def test_an_invitation_token_lets_slixmpp_register_in_band_once(reg_server, session_for):
    _, uri = invite(reg_server)
    assert uri.startswith("xmpp:localhost?register;preauth=")
    token = token_of(uri)
    assert await register_in_band(reg_server, "newcomer", "a good password", token) is None
    client = await session_for(reg_server).login(Account("newcomer@localhost", "a good password"))
    assert client.jid.startswith("newcomer@localhost/")
    # The token was for one account: it is spent.
    assert await register_in_band(reg_server, "second", "a good password", token) == "item-not-found"


async def test_without_an_invitation_registration_is_refused_and_no_account_is_made(reg_server):
    assert await register_in_band(reg_server, "stranger", "a good password", None) == "not-allowed"
    with pytest.raises(LoginFailed):
        await login(reg_server, Account("stranger@localhost", "a good password"))


async def test_a_taken_username_or_a_short_password_is_refused_and_the_invitation_kept(reg_server):
    taken = reg_server.new_account()
    token = token_of(invite(reg_server)[1])
    assert await register_in_band(reg_server, taken.localpart, "a good password", token) == "conflict"
    assert await register_in_band(reg_server, "shorty", "short", token) == "not-acceptable"
    assert await register_in_band(reg_server, "shorty", "long enough now", token) is None


async def test_an_expired_or_unknown_token_is_refused(reg_server):
    assert await register_in_band(reg_server, "guesser", "a good password", "not-a-real-token") == "item-not-found"


async def test_a_user_invites_a_contact_and_both_see_each_other_at_once(reg_server, session_for):
    xmpp = session_for(reg_server)
    alice = await xmpp.login()
    result = await alice.iq("set", f"<command xmlns='{NS_COMMANDS}' node='urn:xmpp:invite#invite' action='execute'/>",
                            to="localhost")
    values = {f.get("var"): f.findtext(f"{{{NS_DATA}}}value") for f in result.iter(f"{{{NS_DATA}}}field")}
    assert values["uri"].startswith(f"xmpp:{alice.bare}?roster;preauth=") and values["uri"].endswith(";ibr=y")
    assert values["landing-url"].startswith(f"http://localhost:{reg_server.http_port}/invite/")
    mark = alice.inbox.mark()
    assert await register_in_band(reg_server, "friend", "a good password", token_of(values["uri"])) is None
    await alice.expect(is_roster_push(jid="friend@localhost", subscription="both"), after=mark)
    friend = await xmpp.login(Account("friend@localhost", "a good password"))
    items = await friend.roster_items()
    assert items[alice.bare].get("subscription") == "both"


async def test_a_logged_in_user_changes_the_password_in_band(reg_server, session_for):
    xmpp = session_for(reg_server)
    account = xmpp.account()
    client = await xmpp.login(account)
    other = await xmpp.login(account, resource="other")
    await client.iq("set", f"<query xmlns='{NS_REGISTER}'><username>{account.localpart}</username>"
                           "<password>a brand new password</password></query>")
    await other.expect_disconnect()  # whoever knew the old password is logged out
    await client.ping_server()  # the device that changed it stays
    assert client.connected
    with pytest.raises(LoginFailed):
        await login(reg_server, account)
    await xmpp.login(Account(account.jid, "a brand new password"), resource="again")


async def test_an_operator_may_keep_users_from_changing_their_password(make_server, session_for):
    srv = make_server(CONFIG + "allow_password_change = false\n", name="register-fixed", accounts=2)
    xmpp = session_for(srv)
    account = xmpp.account()
    client = await xmpp.login(account)
    form = await client.iq("get", f"<query xmlns='{NS_REGISTER}'/>")
    assert form.find(f"{{{NS_REGISTER}}}query/{{{NS_REGISTER}}}password") is None
    condition, _ = await client.iq_error("set", f"<query xmlns='{NS_REGISTER}'><username>{account.localpart}</username>"
                                                "<password>a brand new password</password></query>")
    assert condition == "not-allowed"
    await xmpp.login(account, resource="again")  # the old password still works


async def test_an_administrators_invitation_makes_an_administrator(reg_server, session_for):
    xmpp = session_for(reg_server)
    command = f"<command xmlns='{NS_COMMANDS}' node='urn:xmpp:invite#create-account' action='execute'/>"
    plain = await xmpp.login()
    assert (await plain.iq_error("set", command, to="localhost"))[0] == "forbidden"
    token = token_of(invite(reg_server, "--admin", "--uses", "2")[1])
    assert await register_in_band(reg_server, "boss", "a good password", token) is None
    boss = await xmpp.login(Account("boss@localhost", "a good password"))
    result = await boss.iq("set", command, to="localhost")
    assert any("?register;preauth=" in (v.text or "") for v in result.iter(f"{{{NS_DATA}}}value"))
    # Two uses: a second administrator.
    assert await register_in_band(reg_server, "boss2", "a good password", token) is None
