"""Joining from an invitation in a real browser (Chromium, Playwright): the invitation page, the form, then the web
client. Screenshots of each step are saved in the test's temporary directory (the path is printed)."""

from __future__ import annotations

import pytest

from register_helpers import invite, token_of
from sakari.settings import DEFAULT_MODULES
from sakari_process import DOMAIN

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_MS = 20000
CONFIG = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["register", "webclient"]!r}
"""


@pytest.fixture(scope="module")
def invite_server(spawn_server, converse_dist):
    with spawn_server("invite-browser", CONFIG, accounts=0) as srv:
        yield srv


async def test_a_person_registers_from_an_invitation_and_logs_in_to_the_web_client(browser, invite_server, screenshots):
    base = f"http://{DOMAIN}:{invite_server.http_port}"
    token = token_of(invite(invite_server)[1])
    errors: list[str] = []
    context = await browser.new_context()
    page = await context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))

    def leaked(request) -> None:  # nothing may come from elsewhere: another site would learn who opens the page
        if not request.url.startswith((base, "data:", "blob:")) and request.failure != "csp":
            errors.append(f"request to {request.url}")

    page.on("requestfinished", leaked)
    page.on("requestfailed", leaked)
    try:
        response = await page.goto(f"{base}/invite/{token}")
        assert response is not None and response.status == 200
        qr = page.locator(".qr svg")
        assert await qr.evaluate("svg => svg.getBoundingClientRect().width") > 100
        await page.screenshot(path=screenshots / "1-invitation.png", full_page=True)
        await page.fill("input[name=username]", "grandma")
        await page.fill("input[name=password]", "knitting at noon")
        await page.fill("input[name=password2]", "knitting at noon")
        await page.click("button:has-text('Create my account')")
        await page.wait_for_selector("#address:has-text('grandma@localhost')", timeout=WAIT_MS)
        await page.screenshot(path=screenshots / "2-welcome.png", full_page=True)
        await page.click("a:has-text('Open the web client')")
        await page.fill("#converse-login-jid", "grandma@localhost")
        await page.fill("#converse-login-password", "knitting at noon")
        await page.click("button[type=submit]:has-text('Log in')")
        await page.wait_for_selector("converse-roster", timeout=WAIT_MS)
        await page.screenshot(path=screenshots / "3-web-client.png")
        # The link is spent: opening it again says so.
        again = await page.goto(f"{base}/invite/{token}")
        assert again is not None and again.status == 410
        await page.screenshot(path=screenshots / "4-used-invitation.png")
    finally:
        await page.screenshot(path=screenshots / "last.png")
        await context.close()
    assert errors == []
