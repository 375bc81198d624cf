"""sakari user export and import (XEP-0227): an account exported, deleted and imported is the account it was."""

from __future__ import annotations

import asyncio
import os
import re
import xml.etree.ElementTree as ET

import pytest

from sakari_process import run_cli
from xmpp_harness import LoginFailed, login

pytestmark = pytest.mark.asyncio

PIE = "urn:xmpp:pie:0"
NOTES = "urn:xmpp:example:notes"


async def cli(server, *args: str):
    result = await asyncio.to_thread(run_cli, *args, "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


async def test_an_exported_deleted_and_imported_account_logs_in_with_its_roster_vcard_and_data(server, xmpp, tmp_path):
    account, contact = xmpp.account(), xmpp.account()
    client = await xmpp.login(account)
    await client.iq("set", "<vCard xmlns='vcard-temp'><FN>Alice Moved</FN><NICKNAME>mover</NICKNAME></vCard>")
    await client.iq("set", f"<query xmlns='jabber:iq:roster'><item jid='{contact.jid}' name='Pal'><group>Friends</group></item></query>")
    await client.iq("set", "<query xmlns='jabber:iq:private'><notes xmlns='storage:rosternotes'><note jid='x@example.org'>hi</note></notes></query>")
    await client.iq("set", "<block xmlns='urn:xmpp:blocking'><item jid='spam@example.net'/></block>")
    await client.iq(
        "set",
        f"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{NOTES}'>"
        f"<item id='current'><note xmlns='{NOTES}'>kept across servers</note></item></publish></pubsub>",
    )
    await client.close()
    sender = await xmpp.login(contact)
    sender.message(account.jid, "waiting for you offline")
    await sender.ping_server()  # the message is stored before the export runs

    path = tmp_path / "alice.xml"
    await cli(server, "user", "export", account.jid, "-o", str(path))
    assert os.stat(path).st_mode & 0o777 == 0o600
    user = ET.parse(path).getroot().find(f"{{{PIE}}}host/{{{PIE}}}user")
    assert user is not None and user.find("{urn:xmpp:pie:0#scram}scram-credentials") is not None

    await cli(server, "user", "delete", account.jid)
    with pytest.raises(LoginFailed):
        await login(server, account)
    imported = await cli(server, "user", "import", str(path))
    # PEP nodes: the notes, and any the server made itself (a vCard4 copy of the vCard).
    assert re.match(rf"imported {account.jid}: 1 contacts, \d+ PEP nodes, 1 offline messages", imported.stdout)

    back = await xmpp.login(account)  # the same password: the SCRAM keys came along
    await back.expect_message("waiting for you offline", sender=contact.jid)
    item = (await back.roster_items())[contact.jid]
    assert item.get("name") == "Pal" and item.findtext("{jabber:iq:roster}group") == "Friends"
    vcard = await back.iq("get", "<vCard xmlns='vcard-temp'/>")
    assert vcard.findtext("{vcard-temp}vCard/{vcard-temp}NICKNAME") == "mover"
    private = await back.iq("get", "<query xmlns='jabber:iq:private'><notes xmlns='storage:rosternotes'/></query>")
    assert private.findtext("{jabber:iq:private}query/{storage:rosternotes}notes/{storage:rosternotes}note") == "hi"
    blocked = await back.iq("get", "<blocklist xmlns='urn:xmpp:blocking'/>")
    assert blocked.find("{urn:xmpp:blocking}blocklist/{urn:xmpp:blocking}item").get("jid") == "spam@example.net"
    items = await back.iq("get", f"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{NOTES}'/></pubsub>")
    assert "kept across servers" in ET.tostring(items, encoding="unicode")


async def test_importing_an_account_that_exists_is_refused_and_changes_nothing(server, xmpp, tmp_path):
    account = xmpp.account()
    path = tmp_path / "twice.xml"
    await cli(server, "user", "export", account.jid, "-o", str(path))
    result = await asyncio.to_thread(run_cli, "user", "import", str(path), "--data-dir", str(server.data_dir))
    assert result.returncode == 2 and "exists already" in result.stderr
    await xmpp.login(account)


async def test_a_file_that_is_not_xep_0227_is_refused_with_its_reason(server, tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<roster xmlns='jabber:iq:roster'/>")
    result = await asyncio.to_thread(run_cli, "user", "import", str(path), "--data-dir", str(server.data_dir))
    assert result.returncode == 2 and "not XEP-0227" in result.stderr
