"""XEP-0377 spam reports: a report inside a block command is kept, without message content the reporter did
not include, and shown to the operator by 'sakari reports'."""

from __future__ import annotations

import asyncio
import re

import pytest

from sakari_process import run_cli
from xmpp_harness import is_message, login

pytestmark = pytest.mark.asyncio

REPORTING = "urn:xmpp:reporting:1"


async def reports(server, *args: str) -> str:
    result = await asyncio.to_thread(run_cli, "reports", *args, "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_a_report_with_a_block_is_kept_for_the_operator_without_the_message(server, xmpp):
    reporter, spammer = await xmpp.login(), await xmpp.login()
    info = await reporter.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=server.domain)
    assert REPORTING in {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    spammer.message(reporter.jid, "buy cheap pills now", id="spam-1")
    await reporter.expect(is_message(body="buy cheap pills now"))
    await reporter.iq(
        "set",
        f"<block xmlns='urn:xmpp:blocking'><item jid='{spammer.bare}'>"
        f"<report xmlns='{REPORTING}' reason='urn:xmpp:reporting:spam'>"
        f"<stanza-id xmlns='urn:xmpp:sid:0' by='{reporter.bare}' id='archived-42'/>"
        "<text xml:lang='en'>Sends me adverts all day</text></report></item></block>",
    )
    blocklist = await reporter.iq("get", "<blocklist xmlns='urn:xmpp:blocking'/>")
    assert [i.get("jid") for i in blocklist.iter("{urn:xmpp:blocking}item")] == [spammer.bare]  # the block happened too

    listing = await reports(server)
    line = next(line for line in listing.splitlines() if f"{reporter.bare} reported {spammer.bare}" in line)
    report_id = line.split()[0]
    assert re.search(r"\sspam\s", line)
    assert "text: 'Sends me adverts all day'" in listing and "message: id=archived-42" in listing
    assert "cheap pills" not in listing  # the server added no message content

    assert f"deleted report {report_id}" in await reports(server, "--delete", report_id)
    assert report_id not in await reports(server)


async def test_the_reporters_reports_go_with_their_account(server, xmpp):
    account = xmpp.account()
    reporter = await xmpp.login(account)
    await reporter.iq(
        "set",
        "<block xmlns='urn:xmpp:blocking'><item jid='abuser@example.net'>"
        f"<report xmlns='{REPORTING}' reason='urn:xmpp:reporting:abuse'/></item></block>",
    )
    assert f"{account.jid} reported abuser@example.net" in await reports(server)
    await reporter.close()
    result = await asyncio.to_thread(run_cli, "user", "delete", account.jid, "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    assert f"{account.jid} reported" not in await reports(server)


async def test_deleting_an_account_while_the_server_is_stopped_drops_its_reports_too(make_server):
    server = make_server(accounts=1)
    account = server.new_account()
    reporter = await login(server, account)
    await reporter.iq(
        "set",
        "<block xmlns='urn:xmpp:blocking'><item jid='abuser@example.net'>"
        f"<report xmlns='{REPORTING}' reason='urn:xmpp:reporting:abuse'/></item></block>",
    )
    await reporter.close()
    server.stop()
    assert f"{account.jid} reported" in await reports(server)
    result = await asyncio.to_thread(run_cli, "user", "delete", account.jid, "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    assert await reports(server) == "no reports\n"
