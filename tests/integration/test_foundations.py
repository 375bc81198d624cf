"""The foundations with a real server: the HTTP stack's /health, virtual hosts ([host."…"] tables) with accounts
on both domains chatting across, the admins key, and disco#items of the server."""

from __future__ import annotations

import aiohttp
import pytest

from sakari_process import DOMAIN, HOST, Account, run_cli
from xmpp_harness import WAIT, is_message, q

OTHER = "other.example"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


async def test_health_answers_on_the_http_port(server):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as http:
        async with http.get(f"http://{HOST}:{server.http_port}/health") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
        async with http.get(f"http://{HOST}:{server.http_port}/no-such-route") as response:
            assert response.status == 404


def _add_account(srv, jid: str, password: str) -> Account:
    domain = jid.split("@", 1)[1]
    result = run_cli(
        "user", "add", jid, "--password", password, "--domain", domain, "--data-dir", str(srv.data_dir)
    )
    assert result.returncode == 0, result.stderr
    return Account(jid, password)


async def test_accounts_on_a_virtual_host_log_in_and_chat_with_accounts_on_the_main_domain(make_server, session_for):
    srv = make_server(config=f'[host."{OTHER}"]\n', name="vhost-server", start=False)
    alice = _add_account(srv, f"alice@{DOMAIN}", "pw-alice-1")
    bob = _add_account(srv, f"bob@{OTHER}", "pw-bob-1")
    srv.start()
    xmpp = session_for(srv)
    a = await xmpp.login(alice)
    b = await xmpp.login(bob)

    a.message(f"bob@{OTHER}", "hello across domains")
    got = await b.expect(is_message(body="hello across domains", sender=f"alice@{DOMAIN}/test"))
    assert got.get("to") == f"bob@{OTHER}"
    b.message(f"alice@{DOMAIN}", "hello back")
    await a.expect(is_message(body="hello back", sender=f"bob@{OTHER}/test"))


async def test_an_account_exists_only_on_its_own_domain(make_server, session_for):
    from xmpp_harness import LoginFailed

    srv = make_server(config=f'[host."{OTHER}"]\n', name="vhost-only-own", start=False)
    _add_account(srv, f"carol@{OTHER}", "pw-carol-1")
    srv.start()
    with pytest.raises(LoginFailed):
        await session_for(srv).login(Account(f"carol@{DOMAIN}", "pw-carol-1"))


async def test_disco_items_of_the_server_lists_its_services(xmpp):
    """The host table's services (group chat, pubsub, uploads…) are what disco#items of the domain lists."""
    client = await xmpp.login()
    result = await client.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=DOMAIN)
    query = result.find(q(NS_DISCO_ITEMS, "query"))
    assert query is not None
    listed = {item.get("jid") for item in query.findall(q(NS_DISCO_ITEMS, "item"))}
    assert {f"conference.{DOMAIN}", f"pubsub.{DOMAIN}", f"upload.{DOMAIN}"} <= listed


def test_serve_refuses_an_admin_that_is_not_a_bare_account_address(make_server):
    srv = make_server(config='admins = ["admin@localhost/phone"]\n', name="bad-admins", start=False)
    result = srv.serve_expecting_exit()
    assert result.returncode != 0
    assert "'admins' holds 'admin@localhost/phone'; give bare account addresses" in result.stderr + result.stdout


def test_config_check_refuses_an_admin_that_is_not_an_address(tmp_path):
    config = tmp_path / "sakari.toml"
    config.write_text('domain = "example.org"\nadmins = ["not an address@@example.org"]\n')
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode != 0
    assert "admins" in result.stderr and f"{config}:2" in result.stderr


def test_config_check_refuses_a_process_wide_key_in_a_host_table_with_its_line(tmp_path):
    config = tmp_path / "sakari.toml"
    config.write_text(f'domain = "example.org"\n\n[host."{OTHER}"]\nnetwork.c2s_port = 5222\n')
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:4: 'network.c2s_port' is the same for every host; it cannot be set for {OTHER}" in result.stderr


async def test_a_virtual_host_keeps_its_own_offline_limit(make_server, session_for):
    """[host."…"] sets offline.max_messages for that domain only: its account refuses the second stored message,
    while the main domain keeps the global limit."""
    from xmpp_harness import error_condition, is_message_error

    srv = make_server(config=f'[host."{OTHER}"]\noffline.max_messages = 1\n', name="vhost-limits", start=False)
    alice = _add_account(srv, f"alice@{DOMAIN}", "pw-alice-2")
    _add_account(srv, f"dora@{OTHER}", "pw-dora-1")
    _add_account(srv, f"erin@{DOMAIN}", "pw-erin-1")
    srv.start()
    a = await session_for(srv).login(alice)
    a.message(f"dora@{OTHER}", "first, kept")
    second = a.message(f"dora@{OTHER}", "second, over the limit")
    bounce = await a.expect(is_message_error(sender=f"dora@{OTHER}"))
    assert bounce.get("id") == second
    assert error_condition(bounce) == "service-unavailable"
    for n in range(3):
        a.message(f"erin@{DOMAIN}", f"kept {n}")
    probe = a.message(f"ghost@{DOMAIN}", "a bounce that marks the end")
    end = await a.expect(is_message_error(sender=f"ghost@{DOMAIN}"))
    assert end.get("id") == probe
    assert not [s for s in a.inbox.history if s.get("type") == "error" and s.get("from") == f"erin@{DOMAIN}"]
