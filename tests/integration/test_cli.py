"""``sakari user ...``: account management from the command line, with and
without a running server."""

import asyncio

import pytest

from sakari_process import DOMAIN, Account, run_cli
from xmpp_harness import (
    NS_ROSTER,
    WAIT,
    LoginFailed,
    describe,
    error_condition,
    is_message,
    is_roster_push,
    kind,
    q,
)

NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"


def listed(data_dir) -> set[str]:
    result = run_cli("user", "list", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), f"duplicates in listing: {lines}"
    return set(lines)


def add(data_dir, jid: str, password: str = "secret-pw"):
    return run_cli("user", "add", jid, "--password", password, "--data-dir", str(data_dir))


# -- without a server -------------------------------------------------------


def test_user_add_list_delete(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("alice", "bob"):
        result = add(data, f"{name}@{DOMAIN}")
        assert result.returncode == 0, result.stderr
    assert listed(data) == {f"alice@{DOMAIN}", f"bob@{DOMAIN}"}

    result = run_cli("user", "delete", f"alice@{DOMAIN}", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert listed(data) == {f"bob@{DOMAIN}"}


def test_user_add_from_file_creates_every_account(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    listing = tmp_path / "accounts.txt"
    listing.write_text(f"ann@{DOMAIN} pw-one\nben@{DOMAIN} pw-two\ncat@{DOMAIN} pw-three\n")
    result = run_cli("user", "add", "--from-file", str(listing), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert listed(data) == {f"ann@{DOMAIN}", f"ben@{DOMAIN}", f"cat@{DOMAIN}"}


def test_user_add_from_file_refuses_a_line_without_a_full_address_and_creates_nothing(tmp_path):
    """A stray space ("liam smith@localhost pw") must not create liam@localhost with the password
    "smith@localhost pw": each line starts with a full address."""
    data = tmp_path / "data"
    data.mkdir()
    listing = tmp_path / "class.txt"
    listing.write_text(f"ann@{DOMAIN} pw-one\nliam smith@{DOMAIN} pw-two\n")
    result = run_cli("user", "add", "--from-file", str(listing), "--data-dir", str(data))
    assert result.returncode != 0
    assert f"{listing}:2: the line must start with a full address such as liam@{DOMAIN}" in result.stderr
    assert listed(data) == set()


def test_user_add_says_one_account_in_the_singular(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    listing = tmp_path / "one.txt"
    listing.write_text(f"ann@{DOMAIN} pw-one\n")
    result = run_cli("user", "add", "--from-file", str(listing), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "created 1 account"


def test_a_space_in_an_address_is_named_plainly(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = add(data, f"sp ace@{DOMAIN}")
    assert result.returncode != 0
    assert "an address cannot contain spaces" in result.stderr
    assert "codec" not in result.stderr


def test_an_unknown_module_is_refused_by_config_check_and_by_serve_before_anything_is_made(tmp_path):
    config = tmp_path / "sakari.toml"
    config.write_text('[modules]\nenabled = ["roster", "mam-typo"]\n')
    check = run_cli("config", "check", "--config", str(config))
    assert check.returncode != 0
    assert "'modules.enabled' names no such module: mam-typo (there are: " in check.stderr
    assert "roster" in check.stderr.split("there are:")[1]
    data = tmp_path / "data"
    serve = run_cli("serve", "--config", str(config), "--data-dir", str(data), "--c2s-port", "0", "--c2s-tls-port", "0", "--http-port", "0", "--https-port", "0")
    assert serve.returncode != 0
    assert "no such module: mam-typo" in serve.stderr
    assert not data.exists(), "serve made a data directory (certificate, database) before refusing the configuration"


@pytest.mark.parametrize(
    "bad_jid",
    ["@localhost", "two@at@localhost", "sp ace@localhost", "quo\"te@localhost", "user@"],
)
def test_user_add_rejects_invalid_jid_with_a_message(tmp_path, bad_jid):
    data = tmp_path / "data"
    data.mkdir()
    result = add(data, bad_jid)
    assert result.returncode != 0, f"accepted {bad_jid!r}: {result.stdout}"
    message = (result.stderr + result.stdout).lower()
    assert "jid" in message or bad_jid.lower() in message, f"message does not name the problem: {message!r}"
    assert "traceback" not in message, "an error message, not a crash"
    assert listed(data) == set()


def test_user_add_existing_account_fails_and_keeps_the_password(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert add(data, f"dup@{DOMAIN}").returncode == 0
    again = add(data, f"dup@{DOMAIN}", "another-pw")
    assert again.returncode != 0, "re-adding an account silently changed it"
    assert "exist" in (again.stderr + again.stdout).lower(), again.stderr


def test_user_delete_unknown_account_fails(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = run_cli("user", "delete", f"nobody@{DOMAIN}", "--data-dir", str(data))
    assert result.returncode != 0
    assert "nobody" in (result.stderr + result.stdout).lower(), result.stderr


# -- with the shared server running ---------------------------------------------


@pytest.mark.asyncio
async def test_user_added_while_server_runs_can_log_in(xmpp):
    jid = f"fresh-{xmpp.account().localpart}@{DOMAIN}"
    result = add(xmpp.server.data_dir, jid, "brand-new-pw")
    assert result.returncode == 0, result.stderr
    assert jid in listed(xmpp.server.data_dir)
    client = await xmpp.login(Account(jid, "brand-new-pw"))
    assert client.jid.startswith(jid + "/")


@pytest.mark.asyncio
async def test_user_passwd_changes_the_password(xmpp):
    account = xmpp.account()
    await xmpp.login(account, mechanisms=["SCRAM-SHA-256"])  # the running server now holds its credentials in memory
    result = run_cli("user", "passwd", account.jid, "--password", "changed-pw", "--data-dir", str(xmpp.server.data_dir))
    assert result.returncode == 0, result.stderr
    with pytest.raises(LoginFailed) as failure:
        await xmpp.login(account, mechanisms=["SCRAM-SHA-256"])
    assert failure.value.detail == "not-authorized"
    await xmpp.login(Account(account.jid, "changed-pw"), mechanisms=["SCRAM-SHA-256"])
    await xmpp.login(Account(account.jid, "changed-pw"), mechanisms=["SCRAM-SHA-1"], resource="sha1")


@pytest.mark.asyncio
async def test_user_delete_removes_the_account_and_its_data(xmpp):
    data_dir = str(xmpp.server.data_dir)
    doomed = xmpp.account()
    bob = await xmpp.login(label="bob")

    # Give the account a roster item, a vCard, private data and an offline message.
    client = await xmpp.login(doomed, label="doomed")
    await client.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='{bob.bare}' name='Bob'/></query>")
    await client.expect(is_roster_push(jid=bob.bare))
    await client.iq("set", f"<vCard xmlns='{NS_VCARD}'><FN>Doomed</FN></vCard>")
    await client.iq("set", f"<query xmlns='{NS_PRIVATE}'><notes xmlns='urn:example:notes'>secret</notes></query>")
    await client.close()
    bob.message(doomed.jid, "left while offline")
    await bob.ping_server()

    result = run_cli("user", "delete", doomed.jid, "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert doomed.jid not in listed(data_dir)
    with pytest.raises(LoginFailed) as failure:
        await xmpp.login(doomed)
    assert failure.value.detail == "not-authorized"

    # Same name, new account: nothing of the old one is left.
    assert add(xmpp.server.data_dir, doomed.jid, "second-life").returncode == 0
    reborn = await xmpp.login(Account(doomed.jid, "second-life"), label="reborn")
    assert await reborn.roster_items() == {}

    vcard = await reborn.iq_reply("get", f"<vCard xmlns='{NS_VCARD}'/>")
    if vcard.get("type") == "error":  # XEP-0054: item-not-found or an empty vCard
        assert error_condition(vcard) == "item-not-found", describe(vcard)
    else:
        assert vcard.findtext(f"{q(NS_VCARD, 'vCard')}/{q(NS_VCARD, 'FN')}") is None, describe(vcard)
    private = await reborn.iq("get", f"<query xmlns='{NS_PRIVATE}'><notes xmlns='urn:example:notes'/></query>")
    assert "secret" not in describe(private)

    bob.message(reborn.jid, "barrier")
    barrier = await reborn.expect(is_message(body="barrier"))
    old = [describe(el) for el in reborn.inbox.before(barrier) if kind(el) == "message"]
    assert not old, f"offline messages of the deleted account were delivered: {old}"


@pytest.mark.asyncio
async def test_live_session_of_deleted_account_leaves_nothing_for_a_new_account_of_that_name(xmpp):
    """A session still open when its account is deleted must not go on storing
    data that a later account with the same name would inherit. (Ending the
    session, or refusing its writes, both satisfy this.)"""
    doomed = xmpp.account()
    zombie = await xmpp.login(doomed, label="zombie")
    result = run_cli("user", "delete", doomed.jid, "--data-dir", str(xmpp.server.data_dir))
    assert result.returncode == 0, result.stderr

    write = asyncio.ensure_future(zombie.iq_reply("set", f"<vCard xmlns='{NS_VCARD}'><FN>Zombie</FN></vCard>"))
    await asyncio.wait({write, zombie.disconnected}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if not write.done():
        write.cancel()
    zombie.abort()

    assert add(xmpp.server.data_dir, doomed.jid, "second-life").returncode == 0
    reborn = await xmpp.login(Account(doomed.jid, "second-life"), label="reborn")
    vcard = await reborn.iq_reply("get", f"<vCard xmlns='{NS_VCARD}'/>")
    assert "Zombie" not in describe(vcard), f"the deleted account's session wrote data the new account inherited: {describe(vcard)}"
