"""The account page (``/account``): a user logs in with the account's password and manages it.

Change the password (every other session ends), see the devices (the bound
resources) and log one out, download one's data (XEP-0227), delete the
account. A password is only taken over a confidential channel, as for web
logins. The login is a random token in a cookie that scripts cannot read
(HttpOnly), that no other site's page sends (SameSite=Strict), and that
travels only over TLS unless the browser is on this machine (Secure). Web
logins live in memory only: a restart ends them. Failed logins to one
account are limited, and an unknown account costs the same check as a
known one, so the page does not tell which accounts exist.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from html import escape

from aiohttp import web

from sakari import settings as S
from sakari.core.modules import ModuleAPI
from sakari.credentials import check_password, decoy
from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.admin_commands import DISABLED_STORE
from sakari.modules.register.export import export_account
from sakari.modules.register.html import error_line, page
from sakari.modules.register.service import Registration, RegistrationRefused
from sakari.net.web import PUBLIC_URL, TRUSTED_PROXIES, WebOrigin
from sakari.xml.errors import StreamError

PATH = "/account"
COOKIE = "sakari_account"
LIFETIME = 8 * 3600.0  # seconds a web login lasts
MAX_FAILURES = 5  # failed logins to one account within FAILURE_WINDOW before it is refused for that long
FAILURE_WINDOW = 900.0


@dataclass(slots=True)
class WebLogin:
    jid: JID
    expires: float


class AccountPages:
    def __init__(self, mod: ModuleAPI, registration: Registration) -> None:
        self.mod = mod
        self.registration = registration
        self.origin = WebOrigin.from_lists(mod.option(TRUSTED_PROXIES), mod.option(PUBLIC_URL))
        self.disabled = mod.storage.cached_keyvalue(DISABLED_STORE)
        self.logins: dict[str, WebLogin] = {}
        self.failures: dict[str, list[float]] = {}
        self._decoy_secret = os.urandom(32)

    def add_routes(self) -> None:
        add = self.mod.add_http_route
        add("GET", PATH, self.show)
        add("POST", PATH + "/login", self.login)
        add("POST", PATH + "/logout", self.logout)
        add("POST", PATH + "/password", self.password)
        add("POST", PATH + "/devices/end", self.end_device)
        add("GET", PATH + "/export", self.export)
        add("POST", PATH + "/delete", self.delete)

    # --- who is asking ------------------------------------------------------------------
    def _check_channel(self, request: web.Request) -> None:
        if not self.origin.is_secure(request):
            raise web.HTTPForbidden(text="Open this page over https://: a password must not cross the network unencrypted.\n")
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="This form may only be sent from this server's own pages.\n")

    def _current(self, request: web.Request) -> tuple[str, WebLogin] | None:
        token = request.cookies.get(COOKIE, "")
        login = self.logins.get(token)
        if login is None:
            return None
        if login.expires <= time.time():
            del self.logins[token]
            return None
        return token, login

    def _required(self, request: web.Request) -> tuple[str, WebLogin]:
        self._check_channel(request)
        current = self._current(request)
        if current is None:
            raise web.HTTPSeeOther(PATH)
        return current

    def _cookie_secure(self, request: web.Request) -> bool:
        # Over TLS (here or at the proxy) the cookie never travels without it; the only other way in is a browser
        # on this machine over http://localhost, which would not keep a Secure cookie.
        return self.origin.base_url(request).startswith("https://")

    # --- pages --------------------------------------------------------------------------
    async def show(self, request: web.Request) -> web.Response:
        self._check_channel(request)
        current = self._current(request)
        if current is None:
            return self._login_page()
        return self._account_page(current[1].jid)

    def _login_page(self, error: str = "", status: int = 200) -> web.Response:
        body = (
            f"{error_line(error)}<form method='post' action='{PATH}/login'>"
            "<label>Address <input name='jid' autocomplete='username' required></label>"
            "<label>Password <input name='password' type='password' autocomplete='current-password' required></label>"
            "<button type='submit'>Log in</button></form>"
        )
        return page("Your account", body, status=status)

    def _account_page(self, jid: JID, message: str = "", error: str = "", status: int = 200) -> web.Response:
        devices = "".join(
            f"<tr><td>{escape(r.jid.resource)}</td><td>{'online' if r.available else 'connected'}</td><td>"
            f"<form method='post' action='{PATH}/devices/end'><input type='hidden' name='resource' "
            f"value='{escape(r.jid.resource)}'><button type='submit'>Log out</button></form></td></tr>"
            for r in self.mod.router.resources(jid)
        ) or "<tr><td colspan='3'>No device is connected now.</td></tr>"
        note = f"<p class='note' role='status'>{escape(message)}</p>" if message else ""
        body = (
            f"{note}{error_line(error)}<p>You are logged in as <strong id='address'>{escape(str(jid))}</strong>. "
            f"<form method='post' action='{PATH}/logout'><button type='submit'>Log out of this page</button></form></p>"
            "<h2>Devices</h2><table id='devices'><tr><th>Device</th><th>State</th><th></th></tr>"
            f"{devices}</table>"
            "<h2>Password</h2><p>Changing it logs out every device.</p>"
            f"<form method='post' action='{PATH}/password'>"
            "<label>Current password <input name='current' type='password' autocomplete='current-password' required></label>"
            "<label>New password <input name='password' type='password' autocomplete='new-password' required></label>"
            "<label>New password again <input name='password2' type='password' autocomplete='new-password' required></label>"
            "<button type='submit'>Change the password</button></form>"
            "<h2>Your data</h2><p>Your contacts, profile, block list, stored messages and archive, as one XML file "
            f"(XEP-0227).</p><p><a class='button' href='{PATH}/export'>Download my data</a></p>"
            "<h2>Delete the account</h2><p>This deletes the account and everything the server keeps for it, at once "
            "and for good.</p>"
            f"<form method='post' action='{PATH}/delete'>"
            f"<label>Type your address ({escape(str(jid))}) to confirm <input name='confirm' required></label>"
            "<label>Password <input name='password' type='password' autocomplete='current-password' required></label>"
            "<button class='danger' type='submit'>Delete my account</button></form>"
        )
        return page("Your account", body, status=status)

    # --- actions ------------------------------------------------------------------------
    async def _password_ok(self, jid: JID, password: str) -> bool:
        """The account's password, held to the failure limit; an unknown or disabled account checks a decoy."""
        owner = str(jid)
        now = time.time()
        recent = [t for t in self.failures.get(owner, []) if t > now - FAILURE_WINDOW]
        if len(recent) >= MAX_FAILURES:
            self.failures[owner] = recent
            return False
        creds = await self.mod.storage.accounts.get(owner)
        if creds is None or await self.disabled.get(owner) is not None:
            creds = decoy(self._decoy_secret, owner, self.mod.option(S.SCRAM_ITERATIONS))
        ok = await asyncio.get_running_loop().run_in_executor(None, check_password, creds, password)
        if ok:
            self.failures.pop(owner, None)
        else:
            self.failures[owner] = recent + [now]
        return ok

    async def login(self, request: web.Request) -> web.Response:
        self._check_channel(request)
        form = await request.post()
        text = str(form.get("jid", "")).strip()
        try:
            jid = parse_jid(text if "@" in text else f"{text}@{self.mod.domain}")
        except JIDError:
            return self._login_page("That is not an address such as alice@" + self.mod.domain + ".", 400)
        if jid.resource or not jid.local or not self.mod.hosts.has_accounts(jid.domain) \
                or not await self._password_ok(jid, str(form.get("password", ""))):
            return self._login_page("Wrong address or password.", 403)
        token = secrets.token_urlsafe(32)
        self.logins[token] = WebLogin(jid, time.time() + LIFETIME)
        response = web.HTTPSeeOther(PATH)
        response.set_cookie(COOKIE, token, path=PATH, httponly=True, samesite="Strict",
                            secure=self._cookie_secure(request), max_age=int(LIFETIME))
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        token, _ = self._required(request)
        del self.logins[token]
        response = web.HTTPSeeOther(PATH)
        response.del_cookie(COOKIE, path=PATH)
        raise response

    async def password(self, request: web.Request) -> web.Response:
        token, login = self._required(request)
        form = await request.post()
        new = str(form.get("password", ""))
        if new != form.get("password2"):
            return self._account_page(login.jid, error="The two new passwords differ.", status=400)
        if not await self._password_ok(login.jid, str(form.get("current", ""))):
            return self._account_page(login.jid, error="The current password is wrong.", status=403)
        try:
            await self.registration.change_password(login.jid, new)
        except RegistrationRefused as refused:
            return self._account_page(login.jid, error=refused.text[:1].upper() + refused.text[1:] + ".", status=400)
        self._end_web_logins(login.jid, keep=token)
        return self._account_page(login.jid, "The password was changed; every device was logged out.")

    async def end_device(self, request: web.Request) -> web.Response:
        _, login = self._required(request)
        resource = str((await request.post()).get("resource", ""))
        for session in self.mod.sessions.sessions_of(login.jid):
            if session.jid.resource == resource:
                session.close(StreamError("not-authorized", "this device was logged out from the account page"))
                return self._account_page(login.jid, f"{resource} was logged out.")
        return self._account_page(login.jid, error=f"{resource} is not connected.", status=404)

    async def export(self, request: web.Request) -> web.Response:
        _, login = self._required(request)
        data = await export_account(self.mod.storage, login.jid)
        filename = f"{login.jid.local}-{login.jid.domain}.xml".replace('"', "_")
        return web.Response(body=data, content_type="application/xml", headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
        })

    async def delete(self, request: web.Request) -> web.Response:
        _, login = self._required(request)
        form = await request.post()
        if str(form.get("confirm", "")).strip() != str(login.jid):
            return self._account_page(login.jid, error="Type your address exactly to confirm.", status=400)
        if not await self._password_ok(login.jid, str(form.get("password", ""))):
            return self._account_page(login.jid, error="The password is wrong.", status=403)
        self._end_web_logins(login.jid)
        await self.registration.delete_account(login.jid)
        response = page("Account deleted", f"<p>{escape(str(login.jid))} and all its data are gone.</p>")
        response.del_cookie(COOKIE, path=PATH)
        return response

    def _end_web_logins(self, jid: JID, keep: str | None = None) -> None:
        for token in [t for t, login in self.logins.items() if login.jid == jid and t != keep]:
            del self.logins[token]
