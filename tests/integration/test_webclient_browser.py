"""The web client in a real browser: Debian's Chromium, driven by Playwright, against a real server.

Two users open the server's page, log in over WebSocket (RFC 7395) and chat
both ways. Screenshots of each step are saved in the test's temporary
directory (the path is printed) to look at. The browser and Converse.js
come from the session-wide fixtures of browser_fixtures.py.
"""

from __future__ import annotations

import ssl
import struct
import zlib
from xml.sax.saxutils import quoteattr

import aiohttp
import pytest

from sakari.settings import DEFAULT_MODULES
from sakari_process import DOMAIN
from xmpp_harness import login, q

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_MS = 20000


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-coloured PNG, big enough to see in a screenshot."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


CONFIG = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["webclient", "upload"]!r}
"""


@pytest.fixture(scope="module")
def web_server(spawn_server, converse_dist):
    with spawn_server("webclient", CONFIG, accounts=4) as srv:
        yield srv


async def open_client(browser, base: str, account, errors: list[str]):
    """A fresh browser context (nothing shared between the two users) logged in to the web client."""
    context = await browser.new_context()
    page = await context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Nothing may be loaded from elsewhere: a third party would learn who opens the page. The page's
    # Content-Security-Policy stops such requests before they leave ("csp"); any other outcome is a leak.
    def leaked(request) -> None:
        if not request.url.startswith((base, "data:", "blob:")) and request.failure != "csp":
            errors.append(f"request to {request.url}")

    page.on("requestfinished", leaked)
    page.on("requestfailed", leaked)
    response = await page.goto(base + "/")
    assert response is not None and response.status == 200
    await page.fill("#converse-login-jid", account.jid)
    await page.fill("#converse-login-password", account.password)
    await page.click("button[type=submit]:has-text('Log in')")
    await page.wait_for_selector("converse-roster", timeout=WAIT_MS)
    return context, page


async def say(page, to: str, text: str) -> None:
    await page.evaluate(f"location.hash = '#converse/chat?jid={to}'")
    textarea = page.locator("converse-chats textarea.chat-textarea")
    await textarea.fill(text)
    await textarea.press("Enter")


async def test_two_users_log_in_over_websocket_and_chat(browser, web_server, screenshots):
    # As in the quick start: the page's origin is the one upload links point to.
    base = f"http://{DOMAIN}:{web_server.http_port}"
    alice, bob = web_server.new_account(), web_server.new_account()
    errors: list[str] = []
    alice_context, alice_page = await open_client(browser, base, alice, errors)
    bob_context, bob_page = await open_client(browser, base, bob, errors)
    try:
        await alice_page.screenshot(path=screenshots / "1-alice-logged-in.png")
        await say(alice_page, bob.jid, "Hello Bob, this is Alice in a browser")
        # Bob opens the conversation the way a person would: the contact with an unread message.
        await bob_page.locator("converse-roster a.open-chat.unread-msgs").first.click(timeout=WAIT_MS)
        await bob_page.wait_for_selector("text=Hello Bob, this is Alice in a browser", timeout=WAIT_MS)
        await say(bob_page, alice.jid, "Hi Alice, Bob here")
        await alice_page.wait_for_selector("text=Hi Alice, Bob here", timeout=WAIT_MS)
        await alice_page.screenshot(path=screenshots / "2-alice-chat.png")

        # A photo, by HTTP File Upload (XEP-0363): Alice's browser PUTs it, Bob's shows it inline.
        await alice_page.locator("converse-chats input.fileupload").set_input_files(
            {"name": "photo.png", "mimeType": "image/png", "buffer": png(120, 80, (40, 140, 90))}
        )
        image = bob_page.locator(f"converse-chats img[src^='{base}/upload/']")
        await image.wait_for(timeout=WAIT_MS)
        assert await image.evaluate("img => img.complete && img.naturalWidth") == 120
        await bob_page.screenshot(path=screenshots / "3-bob-chat.png")
    finally:
        for name, page in (("alice", alice_page), ("bob", bob_page)):
            await page.screenshot(path=screenshots / f"last-{name}.png")  # for a failure, what each saw last
        await alice_context.close()
        await bob_context.close()
    assert errors == []


async def test_a_photo_an_app_shares_shows_in_the_web_client(browser, web_server, screenshots):
    """Dino and Conversations get https slots on the HTTPS port; the web client at http://localhost:5280/ shows what
    they share from its own address (its policy allows only its origin, and its browser trusts no local CA)."""
    base = f"http://{DOMAIN}:{web_server.http_port}"
    app_user, web_user = web_server.new_account(), web_server.new_account()
    errors: list[str] = []
    context, page = await open_client(browser, base, web_user, errors)
    app = await login(web_server, app_user, resource="dino")
    try:
        await page.evaluate(f"location.hash = '#converse/chat?jid={app_user.jid}'")
        # Nothing leaves for a list of public servers when the user adds a contact.
        await page.locator("converse-roster .dropdown-toggle").first.click()
        await page.click("converse-roster a.add-contact")
        await page.fill("input[name=jid]", "carol@exa")
        await page.keyboard.press("Escape")

        data = png(150, 90, (50, 110, 200))
        result = await app.iq(
            "get", f"<request xmlns='urn:xmpp:http:upload:0' filename='from-app.png' size='{len(data)}' content-type='image/png'/>",
            to=f"upload.{DOMAIN}",
        )
        url = result.find(q("urn:xmpp:http:upload:0", "slot")).find(q("urn:xmpp:http:upload:0", "get")).get("url")
        assert url.startswith(f"https://{DOMAIN}:{web_server.https_port}/upload/")
        trusting = ssl.create_default_context(cafile=str(web_server.data_dir / "certs" / "ca.crt"))
        async with aiohttp.ClientSession() as http, http.put(url, data=data, ssl=trusting) as put:
            assert put.status == 201
        app.send(
            f"<message xmlns='jabber:client' to='{web_user.jid}' type='chat'><body>{url}</body>"
            f"<x xmlns='jabber:x:oob'><url>{quoteattr(url)[1:-1]}</url></x></message>"
        )
        image = page.locator(f"converse-chats img[src^='{base}/upload/']")
        await image.wait_for(timeout=WAIT_MS)
        assert await image.evaluate("img => img.complete && img.naturalWidth") == 150
        await page.screenshot(path=screenshots / "photo-from-an-app.png")
    finally:
        await page.screenshot(path=screenshots / "last.png")
        app.abort()
        await context.close()
    assert errors == []


async def test_page_assets_and_their_safety_headers(web_server):
    base = f"http://{DOMAIN}:{web_server.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/") as page:
            assert page.status == 200 and "text/html" in page.headers["Content-Type"]
            csp = page.headers["Content-Security-Policy"]
            assert "script-src 'self' 'wasm-unsafe-eval';" in csp and "img-src 'self' data: blob:;" in csp
            assert '<script type="module" src="/webclient.js">' in await page.text()
        async with http.get(base + "/webclient.js") as starter:
            text = await starter.text()
            assert '"default_domain": "localhost"' in text and '"/xmpp-websocket"' in text
            # Converse would ask data.xmpp.net for public servers: that site would learn who opens the page.
            assert '"autocomplete_providers_url": null' in text and '"xmpp_providers_url": null' in text
        async with http.get(base + "/converse/converse.min.css") as css:
            assert css.status == 200 and css.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(base + "/curve25519_compiled.wasm") as wasm:  # OMEMO's crypto, fetched next to the page
            assert wasm.status == 200 and wasm.headers["Content-Type"] == "application/wasm"
        for escape in ("/converse/..%2F..%2F..%2Fpyproject.toml", "/converse/%2e%2e/%2e%2e/%2e%2e/pyproject.toml"):
            async with http.get(base + escape) as outside:
                assert outside.status == 404, escape


async def test_page_says_when_the_client_is_not_installed(spawn_server, tmp_path):
    config = CONFIG + f"\n[webclient]\npath = {str(tmp_path)!r}\n"
    with spawn_server("webclient-missing", config, accounts=0) as srv:
        async with aiohttp.ClientSession() as http, http.get(f"http://{DOMAIN}:{srv.http_port}/") as page:
            assert page.status == 503 and "not installed" in await page.text()
