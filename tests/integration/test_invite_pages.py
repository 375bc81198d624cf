"""The invitation's web page: QR code, apps, and the registration form over HTTP, against a real server."""

from __future__ import annotations

import aiohttp
import pytest

from register_helpers import invite, token_of
from sakari.settings import DEFAULT_MODULES
from sakari_process import Account

CONFIG = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["register"]!r}
"""


@pytest.fixture(scope="module")
def pages_server(spawn_server):
    with spawn_server("invite-pages", CONFIG, accounts=2) as srv:
        yield srv


def base(server) -> str:
    return f"http://localhost:{server.http_port}"


async def test_the_page_shows_a_qr_code_of_the_uri_the_apps_and_a_form(pages_server):
    page_url, uri = invite(pages_server)
    # The configured port (this test server's was given on its command line, which the invite command does not see).
    assert page_url == "http://localhost:5280/invite/" + token_of(uri)
    async with aiohttp.ClientSession() as http, http.get(base(pages_server) + "/invite/" + token_of(uri)) as page:
        text = await page.text()
        assert page.status == 200
        assert "<svg" in text and "Conversations" in text and "Dino" in text and "Monal" in text
        assert f"href='{uri}'" in text and "name='password'" in text
        assert page.headers["Referrer-Policy"] == "no-referrer" and "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert "http" not in page.headers["Content-Security-Policy"]  # nothing loaded from elsewhere
        assert page.headers["Cache-Control"] == "no-store"


async def test_the_form_makes_the_account_once_and_then_the_link_says_it_is_used(pages_server, session_for):
    token = token_of(invite(pages_server)[1])
    url = base(pages_server) + "/invite/" + token
    async with aiohttp.ClientSession() as http:
        form = {"username": "webby", "password": "a good password", "password2": "a good password"}
        async with http.post(url, data=form) as done:
            assert done.status == 201 and "webby@localhost" in await done.text()
        async with http.get(url) as gone:
            assert gone.status == 410 and "used or has expired" in await gone.text()
        async with http.post(url, data={**form, "username": "webby2"}) as again:
            assert again.status == 410
    await session_for(pages_server).login(Account("webby@localhost", "a good password"))


async def test_mistakes_keep_the_invitation_and_say_what_is_wrong(pages_server):
    taken = pages_server.new_account()
    url = base(pages_server) + "/invite/" + token_of(invite(pages_server)[1])
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data={"username": "x1", "password": "a good password", "password2": "another"}) as differ:
            assert differ.status == 400 and "differ" in await differ.text()
        form = {"username": taken.localpart, "password": "a good password", "password2": "a good password"}
        async with http.post(url, data=form) as conflict:
            assert conflict.status == 409 and "is taken" in await conflict.text()
        async with http.get(url) as still:
            assert still.status == 200


async def test_an_unknown_token_gets_the_error_page(pages_server):
    async with aiohttp.ClientSession() as http, http.get(base(pages_server) + "/invite/nonsense") as page:
        assert page.status == 410 and "Ask the person who invited you" in await page.text()


async def test_no_password_is_taken_over_an_unencrypted_network(pages_server):
    # A loopback request relaying someone else's (an unconfigured proxy): not this machine's browser.
    url = base(pages_server) + "/invite/" + token_of(invite(pages_server)[1])
    relayed = {"X-Forwarded-For": "192.0.2.7"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=relayed) as page:
            text = await page.text()
            assert page.status == 200 and "name='password'" not in text and "https://" in text
        form = {"username": "sniffed", "password": "a good password", "password2": "a good password"}
        async with http.post(url, data=form, headers=relayed) as refused:
            assert refused.status == 403
