"""Service administration (XEP-0133) over ad-hoc commands (XEP-0050), from slixmpp clients."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest
import pytest_asyncio

from sakari_process import DOMAIN, Account
from xmpp_harness import LoginFailed, error_condition, is_message, login, q

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_ADMIN = "http://jabber.org/protocol/admin"
NS_DATA = "jabber:x:data"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


@pytest.fixture(scope="module")
def admin_server(spawn_server):
    with spawn_server(
        "admin-server",
        'admins = ["user001@localhost"]\n[modules]\n'
        'enabled = ["roster", "presence", "disco", "ping", "blocking", "spam_reports", "admin_commands"]\n',
    ) as srv:
        srv.admin = srv.new_account()
        assert srv.admin.jid == "user001@localhost"
        yield srv


@pytest_asyncio.fixture
async def users(admin_server, session_for):
    return session_for(admin_server)


@pytest_asyncio.fixture
async def admin(admin_server, users):
    return await users.login(admin_server.admin)


def submit(fields: dict[str, str | list[str]]) -> str:
    out = []
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        out.append(f"<field var={quoteattr(var)}>" + "".join(f"<value>{escape(v)}</value>" for v in values) + "</field>")
    return f"<x xmlns='{NS_DATA}' type='submit'>{''.join(out)}</x>"


async def run(client, name: str, fields: dict[str, str | list[str]] | None = None) -> ET.Element:
    """Execute a command; with ``fields``, fill in the form it asks for. Returns the last <command/>."""
    node = f"{NS_ADMIN}#{name}"
    reply = await client.iq("set", f"<command xmlns='{NS_COMMANDS}' node='{node}' action='execute'/>", to=DOMAIN)
    command = reply.find(q(NS_COMMANDS, "command"))
    if fields is None:
        return command
    assert command.get("status") == "executing", ET.tostring(command)
    sid = command.get("sessionid")
    reply = await client.iq(
        "set", f"<command xmlns='{NS_COMMANDS}' node='{node}' sessionid='{sid}' action='complete'>{submit(fields)}</command>",
        to=DOMAIN,
    )
    return reply.find(q(NS_COMMANDS, "command"))


def result_values(command: ET.Element, var: str) -> list[str]:
    field = next(f for f in command.find(q(NS_DATA, "x")) if f.get("var") == var)
    return [v.text or "" for v in field.findall(q(NS_DATA, "value"))]


async def test_admin_sees_the_commands_and_others_see_none(admin, users) -> None:
    result = await admin.iq("get", f"<query xmlns='{NS_ITEMS}' node='{NS_COMMANDS}'/>", to=DOMAIN)
    nodes = {i.get("node") for i in result.find(q(NS_ITEMS, "query"))}
    assert {f"{NS_ADMIN}#{n}" for n in ("add-user", "delete-user", "disable-user", "change-user-password",
                                        "get-online-users-list", "announce", "get-user-stats")} <= nodes
    someone = await users.login()
    result = await someone.iq("get", f"<query xmlns='{NS_ITEMS}' node='{NS_COMMANDS}'/>", to=DOMAIN)
    assert list(result.find(q(NS_ITEMS, "query"))) == []


async def test_a_non_admin_running_a_command_is_forbidden(users) -> None:
    someone = await users.login()
    condition, _ = await someone.iq_error("set", f"<command xmlns='{NS_COMMANDS}' node='{NS_ADMIN}#add-user' action='execute'/>", to=DOMAIN)
    assert condition == "forbidden"


async def test_admin_adds_a_user_who_can_then_log_in(admin, users, admin_server) -> None:
    command = await run(admin, "add-user", {"FORM_TYPE": NS_ADMIN, "accountjid": "newbie@localhost", "password": "fresh-pw", "password-verify": "fresh-pw"})
    assert command.get("status") == "completed"
    await users.login(Account("newbie@localhost", "fresh-pw"))
    condition, _ = await admin.iq_error("set", f"<command xmlns='{NS_COMMANDS}' node='{NS_ADMIN}#add-user' sessionid='nope' action='complete'>{submit({})}</command>", to=DOMAIN)
    assert condition == "bad-request"


async def test_admin_changes_a_password(admin, users, admin_server) -> None:
    account = users.account()
    await run(admin, "change-user-password", {"accountjid": account.jid, "password": "changed-pw"})
    with pytest.raises(LoginFailed):
        await login(admin_server, account)
    await users.login(Account(account.jid, "changed-pw"))


async def test_a_disabled_user_is_logged_out_and_cannot_log_in_until_reenabled(admin, users, admin_server) -> None:
    account = users.account()
    victim = await users.login(account)
    command = await run(admin, "disable-user", {"accountjids": [account.jid]})
    assert command.get("status") == "completed"
    await victim.expect_disconnect()
    with pytest.raises(LoginFailed) as failed:
        await login(admin_server, account)
    assert failed.value.detail == "not-authorized"
    await run(admin, "reenable-user", {"accountjids": [account.jid]})
    await users.login(account)


async def test_a_deleted_user_is_logged_out_and_gone(admin, users, admin_server) -> None:
    account = users.account()
    victim = await users.login(account)
    await run(admin, "delete-user", {"accountjids": [account.jid]})
    await victim.expect_disconnect()
    with pytest.raises(LoginFailed):
        await login(admin_server, account)
    stats = await admin.iq_reply("set", f"<command xmlns='{NS_COMMANDS}' node='{NS_ADMIN}#get-user-stats' action='execute'/>", to=DOMAIN)
    sid = stats.find(q(NS_COMMANDS, "command")).get("sessionid")
    reply = await admin.iq_reply(
        "set", f"<command xmlns='{NS_COMMANDS}' node='{NS_ADMIN}#get-user-stats' sessionid='{sid}' action='complete'>"
        f"{submit({'accountjid': account.jid})}</command>", to=DOMAIN,
    )
    assert error_condition(reply) == "item-not-found"


async def test_online_users_and_user_statistics(admin, users) -> None:
    someone = await users.login()
    command = await run(admin, "get-online-users-list")
    assert command.get("status") == "completed"
    assert someone.bare in result_values(command, "onlineuserjids")
    stats = await run(admin, "get-user-stats", {"accountjid": someone.bare})
    assert result_values(stats, "onlineresources") == [someone.jid]
    assert result_values(stats, "rostersize") == ["0"]


async def test_announcement_reaches_users_online(admin, users) -> None:
    someone = await users.login()
    await run(admin, "announce", {"subject": "Maintenance", "body": ["Back at noon.", "Thanks."]})
    message = await someone.inbox.wait_for(is_message("Back at noon.\nThanks.", sender=DOMAIN, type="headline"))
    assert message.find(q("jabber:client", "subject")).text == "Maintenance"


async def test_admin_reads_the_spam_reports_users_sent(admin, users) -> None:
    reporter = await users.login()
    await reporter.iq(
        "set",
        "<block xmlns='urn:xmpp:blocking'><item jid='pills@spam.example'>"
        "<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'><text>adverts</text></report>"
        "</item></block>",
    )
    command = await run(admin, "get-spam-reports")
    assert command.get("status") == "completed"
    lines = result_values(command, "reports")
    assert any(f"spam  {reporter.bare} reported pills@spam.example" in line for line in lines)
    assert "    text: 'adverts'" in lines
    forbidden = await users.login()
    reply = await forbidden.iq_error("set", f"<command xmlns='{NS_COMMANDS}' node='{NS_ADMIN}#get-spam-reports' action='execute'/>", to=DOMAIN)
    assert reply[0] == "forbidden"
