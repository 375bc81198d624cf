"""The invitation's web page (``/invite/<token>``): a QR code for XMPP apps, the apps to install, a form to register.

The QR code holds the ``xmpp:`` URI (XEP-0401), which Conversations, Monal,
Dino and others open to register with the token; it is drawn here (segno),
so the page loads nothing from elsewhere. The form makes the account in the
browser and leads to the web client. A password is only taken over a
confidential channel (TLS here or at a trusted proxy, or this machine), as
for web logins. An invitation that was used up or expired gets a page that
says so.
"""

from __future__ import annotations

from html import escape

import segno
from aiohttp import web

from sakari.core.modules import ModuleAPI
from sakari.modules.register.html import error_line, page
from sakari.modules.register.service import INVITE_PATH, Registration, RegistrationRefused
from sakari.modules.register.tokens import Invite
from sakari.net.web import PUBLIC_URL, TRUSTED_PROXIES, WebOrigin

# Apps that open invitation links and register with their token, by platform.
APPS = (
    ("Android", (("Conversations", "https://conversations.im/"), ("Monocles Chat", "https://monocles.eu/"))),
    ("iPhone and iPad", (("Monal", "https://monal-im.org/"), ("Siskin IM", "https://siskin.im/"))),
    ("Linux", (("Dino", "https://dino.im/"), ("Gajim", "https://gajim.org/"))),
    ("Windows", (("Gajim", "https://gajim.org/"),)),
    ("macOS", (("Monal", "https://monal-im.org/"), ("Beagle IM", "https://beagle.im/"))),
)
GONE = "This invitation has been used or has expired. Ask the person who invited you for a new one."


def qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff", title="Invitation QR code")


class InvitePages:
    def __init__(self, mod: ModuleAPI, registration: Registration) -> None:
        self.mod = mod
        self.registration = registration
        self.origin = WebOrigin.from_lists(mod.option(TRUSTED_PROXIES), mod.option(PUBLIC_URL))

    def add_routes(self) -> None:
        self.mod.add_http_route("GET", INVITE_PATH + "{token}", self.show)
        self.mod.add_http_route("POST", INVITE_PATH + "{token}", self.submit)

    async def _find(self, token: str) -> tuple[str, Invite] | None:
        """The invitation and the domain it is for (each virtual host keeps its own)."""
        for host in self.mod.hosts.user_domains():
            invite = await self.registration.valid(host, token)
            if invite is not None:
                return host, invite
        return None

    async def show(self, request: web.Request) -> web.Response:
        found = await self._find(request.match_info["token"])
        if found is None:
            return page("Invitation not valid", f"<p>{escape(GONE)}</p>", status=410)
        return self._invitation(request, *found)

    def _invitation(self, request: web.Request, host: str, invite: Invite, error: str = "", username: str = "",
                    status: int = 200) -> web.Response:
        token = request.match_info["token"]
        links = self.registration.links(host, token, invite.inviter)
        who = f"{escape(invite.inviter)} invites you" if invite.inviter else "You are invited"
        apps = "".join(
            f"<li>{escape(platform)}: " + ", ".join(
                f"<a href='{escape(url)}' rel='noreferrer noopener'>{escape(name)}</a>" for name, url in choices
            ) + "</li>"
            for platform, choices in APPS
        )
        body = (
            f"<p>{who} to chat on <strong>{escape(host)}</strong>, with any XMPP app or in this browser.</p>"
            "<h2>With an app</h2>"
            "<p>Install an app, then scan this code with it, or open the link on the device that has the app.</p>"
            f"<div class='qr'>{qr_svg(links.uri)}</div>"
            f"<p><a class='button' href='{escape(links.uri)}'>Open the invitation in your app</a></p>"
            f"<ul>{apps}</ul>"
            "<h2>In this browser</h2>"
            + self._form(request, token, error, username)
        )
        return page(f"Join {host}", body, status=status)

    def _form(self, request: web.Request, token: str, error: str, username: str) -> str:
        if not self.origin.is_secure(request):
            return ("<p class='note'>To make your account in the browser, open this page over https:// "
                    "(a password must not cross the network unencrypted), or use an app.</p>")
        return (
            f"{error_line(error)}<form method='post' action='{escape(INVITE_PATH + token)}'>"
            f"<label>Username <input name='username' autocomplete='username' required value='{escape(username)}'></label>"
            "<label>Password <input name='password' type='password' autocomplete='new-password' required></label>"
            "<label>Password again <input name='password2' type='password' autocomplete='new-password' required></label>"
            "<button type='submit'>Create my account</button></form>"
        )

    async def submit(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await self._find(token)
        if found is None:
            return page("Invitation not valid", f"<p>{escape(GONE)}</p>", status=410)
        host, invite = found
        if not self.origin.is_secure(request):
            return self._invitation(request, host, invite, status=403)
        form = await request.post()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        if password != form.get("password2"):
            return self._invitation(request, host, invite, "The two passwords differ.", username, status=400)
        try:
            jid = await self.registration.create_account(host, username, password, token)
        except RegistrationRefused as refused:
            if refused.condition == "item-not-found":
                return page("Invitation not valid", f"<p>{escape(GONE)}</p>", status=410)
            status = 409 if refused.condition == "conflict" else 400
            return self._invitation(request, host, invite, refused.text[:1].upper() + refused.text[1:] + ".", username, status)
        body = (
            f"<p>Your address is <strong id='address'>{escape(str(jid))}</strong>. "
            "Log in with it and your password in any XMPP app, or here in the browser.</p>"
            "<p><a class='button' href='/'>Open the web client</a></p>"
            "<p><a href='/account'>Your account</a>: password, devices, your data.</p>"
        )
        return page("Welcome!", body, status=201)
