"""XEP-0133 Service Administration: ad-hoc commands (XEP-0050) for the administrators in ``admins``.

Commands (node ``http://jabber.org/protocol/admin#NAME``): add-user, delete-user, disable-user,
reenable-user, change-user-password, get-registered-users-num, get-online-users-num,
get-online-users-list, get-user-stats, announce, and Sakari's own get-spam-reports (the XEP-0377
reports users sent, as ``sakari reports`` lists them). Anyone else gets ``forbidden`` and does not
see them. They act on the domain they are sent to.

A disabled account stays with its data but cannot log in: it is listed in the ``disabled``
store, which the server's login path reads. Deleting an account ends its sessions and deletes
all its data, through the server's ``account-deletion`` service. User statistics hold no
addresses: Sakari keeps none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sakari import settings as S
from sakari.core.modules import ModuleAPI
from sakari.credentials import derive
from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.adhoc import Ask, Command, Done, Request, add_field, form
from sakari.modules.spam_reports import Reports
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, StreamError

NS_ADMIN = "http://jabber.org/protocol/admin"
DISABLED_STORE = "disabled"  # the store the server's login path reads (sakari.server.DISABLED_STORE)


class Admin:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.accounts = mod.storage.accounts
        self.disabled = mod.storage.cached_keyvalue(DISABLED_STORE)

    # --- reading forms ----------------------------------------------------------------
    def account(self, text: str, host: str) -> JID:
        """An account address given in a form: bare, on the domain the command was sent to."""
        try:
            jid = parse_jid(text.strip())
        except JIDError as e:
            raise StanzaError("jid-malformed", e.text) from None
        if jid.resource or not jid.local or jid.domain != host:
            raise StanzaError("bad-request", f"{text} is not an account of {host}")
        return jid

    def accounts_in(self, request: Request, var: str) -> list[JID]:
        assert request.fields is not None
        values = [v for v in request.fields.get(var, []) if v.strip()]
        if not values:
            raise StanzaError("bad-request", "name at least one account")
        return [self.account(v, request.host) for v in values]

    def one(self, request: Request, var: str) -> str:
        assert request.fields is not None
        values = request.fields.get(var) or [""]
        return values[0]

    async def credentials(self, password: str) -> object:
        if not password:
            raise StanzaError("not-acceptable", "the password is empty")
        # PBKDF2: milliseconds of CPU, off the event loop.
        return await asyncio.get_running_loop().run_in_executor(None, derive, password, self.mod.option(S.SCRAM_ITERATIONS))

    def end_sessions(self, jid: JID, why: str) -> None:
        for session in self.mod.sessions.sessions_of(jid):
            session.close(StreamError("not-authorized", why))

    def online(self, host: str) -> list[JID]:
        return sorted({s.bare for s in self.mod.sessions if s.host == host}, key=str)

    # --- the commands ---------------------------------------------------------------------
    async def add_user(self, request: Request) -> Ask | Done:
        if request.fields is None:
            x = form("form", "Add a user", f"The new account's address (on {request.host}) and password.", NS_ADMIN)
            add_field(x, "accountjid", "jid-single", "The account's address", required=True)
            add_field(x, "password", "text-private", "Password", required=True)
            add_field(x, "password-verify", "text-private", "Password again", required=True)
            return Ask(x)
        jid = self.account(self.one(request, "accountjid"), request.host)
        password = self.one(request, "password")
        if password != self.one(request, "password-verify"):
            raise StanzaError("not-acceptable", "the two passwords differ")
        if not await self.accounts.create(str(jid), await self.credentials(password)):  # type: ignore[arg-type]
            raise StanzaError("conflict", f"{jid} exists already")
        self.mod.log.info("event=account-created by=admin-command")
        return Done(f"{jid} was created.")

    async def delete_user(self, request: Request) -> Ask | Done:
        if request.fields is None:
            return Ask(self.accounts_form("Delete users", "Their sessions end and all their data is deleted."))
        delete: Callable[[str], Awaitable[bool]] = self.mod.require("account-deletion")
        deleted = [str(jid) for jid in self.accounts_in(request, "accountjids") if await delete(str(jid))]
        return Done(f"Deleted: {', '.join(deleted)}." if deleted else "No such account.")

    async def disable_user(self, request: Request) -> Ask | Done:
        if request.fields is None:
            return Ask(self.accounts_form("Disable users", "They cannot log in until re-enabled; their data stays."))
        done = []
        for jid in self.accounts_in(request, "accountjids"):
            if await self.accounts.get(str(jid)) is None:
                continue
            await self.disabled.set(str(jid), b"1")
            self.end_sessions(jid, "this account has been disabled")
            done.append(str(jid))
        return Done(f"Disabled: {', '.join(done)}." if done else "No such account.")

    async def reenable_user(self, request: Request) -> Ask | Done:
        if request.fields is None:
            return Ask(self.accounts_form("Re-enable users", "They can log in again."))
        for jid in self.accounts_in(request, "accountjids"):
            await self.disabled.set(str(jid), None)
        return Done("Re-enabled.")

    async def change_password(self, request: Request) -> Ask | Done:
        if request.fields is None:
            x = form("form", "Change a user's password", "", NS_ADMIN)
            add_field(x, "accountjid", "jid-single", "The account's address", required=True)
            add_field(x, "password", "text-private", "New password", required=True)
            return Ask(x)
        jid = self.account(self.one(request, "accountjid"), request.host)
        creds = await self.credentials(self.one(request, "password"))
        if not await self.accounts.set_credentials(str(jid), creds):  # type: ignore[arg-type]
            raise StanzaError("item-not-found", f"{jid} does not exist")
        return Done(f"The password of {jid} was changed.")

    async def registered_num(self, request: Request) -> Ask | Done:
        count = len(await self.accounts.list(request.host))
        return Done(f"{count} accounts.", self.result([("registeredusersnum", "text-single", [str(count)])]))

    async def online_num(self, request: Request) -> Ask | Done:
        count = len(self.online(request.host))
        return Done(f"{count} users online.", self.result([("onlineusersnum", "text-single", [str(count)])]))

    async def online_list(self, request: Request) -> Ask | Done:
        users = self.online(request.host)
        return Done(f"{len(users)} users online.", self.result([("onlineuserjids", "jid-multi", [str(u) for u in users])]))

    async def user_stats(self, request: Request) -> Ask | Done:
        if request.fields is None:
            x = form("form", "User statistics", "", NS_ADMIN)
            add_field(x, "accountjid", "jid-single", "The account's address", required=True)
            return Ask(x)
        jid = self.account(self.one(request, "accountjid"), request.host)
        if await self.accounts.get(str(jid)) is None:
            raise StanzaError("item-not-found", f"{jid} does not exist")
        _, items = await self.mod.storage.roster.get(str(jid))
        resources = [str(r.jid) for r in self.mod.router.resources(jid)]
        disabled = await self.disabled.get(str(jid)) is not None
        return Done(
            f"Statistics of {jid}.",
            self.result([
                ("accountjid", "jid-single", [str(jid)]),
                ("rostersize", "text-single", [str(sum(1 for i in items.values() if i.listed))]),
                ("onlineresources", "text-multi", resources),
                ("disabled", "boolean", ["1" if disabled else "0"]),
            ]),
        )

    async def announce(self, request: Request) -> Ask | Done:
        if request.fields is None:
            x = form("form", "Announce", "A message to every user online now.", NS_ADMIN)
            add_field(x, "subject", "text-single", "Subject")
            add_field(x, "body", "text-multi", "Message", required=True)
            return Ask(x)
        assert request.fields is not None
        body = "\n".join(request.fields.get("body", []))
        if not body.strip():
            raise StanzaError("bad-request", "the announcement is empty")
        subject = self.one(request, "subject")
        sessions = [s for s in self.mod.sessions if s.host == request.host]
        for session in sessions:
            message = Element("message", NS.CLIENT, {"from": request.host, "to": session.jid_text, "type": "headline"})
            if subject:
                message.add("subject", text=subject)
            message.add("body", text=body)
            session.send(message)
        return Done(f"Sent to {len(sessions)} sessions.")

    async def spam_reports(self, request: Request) -> Ask | Done:
        reports = await Reports(self.mod.storage).list(request.host)
        lines = [line for report in reports for line in report.lines()]
        return Done(f"{len(reports)} spam and abuse reports.", self.result([("reports", "text-multi", lines)]))

    # --- forms ------------------------------------------------------------------------------
    def accounts_form(self, title: str, instructions: str) -> Element:
        x = form("form", title, instructions, NS_ADMIN)
        add_field(x, "accountjids", "jid-multi", "Accounts", required=True)
        return x

    def result(self, fields: list[tuple[str, str, list[str]]]) -> Element:
        x = form("result", form_type=NS_ADMIN)
        for var, type_, values in fields:
            add_field(x, var, type_, values=values)
        return x


def setup(mod: ModuleAPI) -> None:
    mod.depends("adhoc")
    admin = Admin(mod)
    commands = mod.require("adhoc")
    for name, title, run in (
        ("add-user", "Add a user", admin.add_user),
        ("delete-user", "Delete users", admin.delete_user),
        ("disable-user", "Disable users", admin.disable_user),
        ("reenable-user", "Re-enable users", admin.reenable_user),
        ("change-user-password", "Change a user's password", admin.change_password),
        ("get-registered-users-num", "Number of accounts", admin.registered_num),
        ("get-online-users-num", "Number of users online", admin.online_num),
        ("get-online-users-list", "Users online", admin.online_list),
        ("get-user-stats", "User statistics", admin.user_stats),
        ("announce", "Announce to users online", admin.announce),
        ("get-spam-reports", "Spam and abuse reports", admin.spam_reports),
    ):
        commands.register(Command(f"{NS_ADMIN}#{name}", title, mod.is_admin, run))
