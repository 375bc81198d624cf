"""The account page against a real server: logging in, devices, password, export (XEP-0227), deletion."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import aiohttp
import pytest

from sakari.settings import DEFAULT_MODULES
from sakari_process import Account
from xmpp_harness import LoginFailed, login

CONFIG = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["register"]!r}
"""
PIE = "urn:xmpp:pie:0"


@pytest.fixture(scope="module")
def account_server(spawn_server):
    with spawn_server("account-page", CONFIG, accounts=12) as srv:
        yield srv


def url(server, path: str = "") -> str:
    return f"http://localhost:{server.http_port}/account{path}"


async def logged_in(http: aiohttp.ClientSession, server, account: Account) -> None:
    async with http.post(url(server, "/login"), data={"jid": account.jid, "password": account.password}) as page:
        assert page.status == 200 and account.jid in await page.text()


async def test_logging_in_sets_a_cookie_scripts_and_other_sites_cannot_use(account_server):
    account = account_server.new_account()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(url(account_server, "/login"), data={"jid": account.jid, "password": "wrong"}) as wrong:
            assert wrong.status == 403 and "Wrong address or password" in await wrong.text()
        async with http.post(url(account_server, "/login"), data={"jid": "nobody@localhost", "password": "x"}) as nobody:
            assert nobody.status == 403 and "Wrong address or password" in await nobody.text()
        async with http.post(url(account_server, "/login"), data={"jid": account.localpart, "password": account.password},
                             allow_redirects=False) as ok:
            assert ok.status == 303
            cookie = ok.headers["Set-Cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/account" in cookie
            assert "secure" not in cookie.replace("samesite", "")  # http://localhost: a browser would drop a Secure one
        async with http.get(url(account_server)) as page:
            assert account.jid in await page.text()
        # Another site's page posting to ours is refused even with the cookie.
        async with http.post(url(account_server, "/delete"), data={"confirm": account.jid, "password": account.password},
                             headers={"Origin": "http://evil.example"}) as forged:
            assert forged.status == 403
    await login(account_server, account)


async def test_devices_are_listed_and_one_can_be_logged_out(account_server, session_for):
    xmpp = session_for(account_server)
    account = xmpp.account()
    phone = await xmpp.login(account, resource="phone")
    laptop = await xmpp.login(account, resource="laptop")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await logged_in(http, account_server, account)
        async with http.get(url(account_server)) as page:
            text = await page.text()
            assert ">phone<" in text and ">laptop<" in text
        async with http.post(url(account_server, "/devices/end"), data={"resource": "phone"}) as ended:
            assert ended.status == 200 and "phone was logged out" in await ended.text()
    await phone.expect_disconnect()
    await laptop.ping_server()


async def test_changing_the_password_logs_every_device_out(account_server, session_for):
    xmpp = session_for(account_server)
    account = xmpp.account()
    client = await xmpp.login(account)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await logged_in(http, account_server, account)
        form = {"current": "wrong", "password": "a new password", "password2": "a new password"}
        async with http.post(url(account_server, "/password"), data=form) as refused:
            assert refused.status == 403
        async with http.post(url(account_server, "/password"), data={**form, "current": account.password}) as changed:
            assert changed.status == 200 and "The password was changed" in await changed.text()
    await client.expect_disconnect()
    with pytest.raises(LoginFailed):
        await login(account_server, account)
    await xmpp.login(Account(account.jid, "a new password"))


async def test_the_export_holds_the_accounts_data(account_server, session_for):
    xmpp = session_for(account_server)
    account, contact = xmpp.account(), xmpp.account()
    client = await xmpp.login(account)
    await client.iq("set", "<vCard xmlns='vcard-temp'><NICKNAME>Exporter</NICKNAME></vCard>")
    await client.iq("set", f"<query xmlns='jabber:iq:roster'><item jid='{contact.jid}' name='Pal'/></query>")
    await client.iq("set", "<block xmlns='urn:xmpp:blocking'><item jid='spam@example.net'/></block>")
    await client.iq("set", "<query xmlns='jabber:iq:private'><notes xmlns='storage:rosternotes'/></query>")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await logged_in(http, account_server, account)
        async with http.get(url(account_server, "/export")) as export:
            assert export.status == 200 and "attachment" in export.headers["Content-Disposition"]
            root = ET.fromstring(await export.read())
    user = root.find(f"{{{PIE}}}host/{{{PIE}}}user")
    assert root.tag == f"{{{PIE}}}server-data" and user is not None and user.get("name") == account.localpart
    assert user.find("{jabber:iq:roster}query/{jabber:iq:roster}item").get("name") == "Pal"
    assert user.findtext("{vcard-temp}vCard/{vcard-temp}NICKNAME") == "Exporter"
    assert user.find("{urn:xmpp:blocking}blocklist/{urn:xmpp:blocking}item").get("jid") == "spam@example.net"
    assert user.find("{jabber:iq:private}query/{storage:rosternotes}notes") is not None


async def test_deleting_needs_the_address_typed_and_then_the_account_is_gone(account_server, session_for):
    xmpp = session_for(account_server)
    account = xmpp.account()
    client = await xmpp.login(account)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await logged_in(http, account_server, account)
        async with http.post(url(account_server, "/delete"), data={"confirm": "yes", "password": account.password}) as no:
            assert no.status == 400
        form = {"confirm": account.jid, "password": account.password}
        async with http.post(url(account_server, "/delete"), data=form) as deleted:
            assert deleted.status == 200 and "are gone" in await deleted.text()
        async with http.get(url(account_server)) as after:
            assert "name='password'" in await after.text() and "Delete my account" not in await after.text()
    await client.expect_disconnect()
    with pytest.raises(LoginFailed):
        await login(account_server, account)


async def test_no_password_is_taken_over_an_unencrypted_network(account_server):
    account = account_server.new_account()
    relayed = {"X-Forwarded-For": "192.0.2.7"}
    async with aiohttp.ClientSession() as http:
        form = {"jid": account.jid, "password": account.password}
        async with http.post(url(account_server, "/login"), data=form, headers=relayed) as refused:
            assert refused.status == 403 and "https://" in await refused.text()
