"""The registration service: accounts from invitations or open registration, password changes, invitations.

The in-band side (XEP-0077 on a stream) and the web pages both make
accounts through :class:`Registration`, so both follow the same rules.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

from sakari import settings as S
from sakari.config import declare, non_negative, positive
from sakari.core.events import AccountEvent
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.credentials import Credentials, derive
from sakari.jid import JID, JIDError, parse_jid, prep_local
from sakari.modules.register.tokens import STORE, Invite, InviteStore
from sakari.modules.upload import base_url
from sakari.storage.base import RosterItem
from sakari.xml.errors import StanzaError, StreamError

GRANTED_ADMINS = "granted-admins"  # documents kind; owner: the domain, key: the account made by an admin's invitation
INVITE_PATH = "/invite/"
SWEEP_INTERVAL = 3600.0

OPEN = declare(
    "register.open", False, "Anyone may create an account, in band (XEP-0077) or on the web, without an invitation.",
)
MAX_PER_HOUR = declare(
    "register.max_per_hour", 10, "Accounts that open registration may create per hour, all together (invitations "
    "are not counted).", positive,
)
USERS_MAY_INVITE = declare(
    "register.users_may_invite", False, "Users may invite people (XEP-0401 ad-hoc command): the new account and the "
    "inviter become contacts, each seeing the other's presence (XEP-0379).",
)
INVITE_EXPIRY = declare(
    "register.invite_expiry", 604800, "Seconds an invitation made by a user or an ad-hoc command stays valid (7 days).",
    positive,
)
ALLOW_PASSWORD_CHANGE = declare(
    "register.allow_password_change", True, "Users may change their password themselves, from their client "
    "(XEP-0077) or on the account page. Off where an operator hands out and manages passwords.",
)
MIN_PASSWORD = declare("register.min_password_length", 8, "Shortest password a new account may have.", non_negative)


class RegistrationRefused(Exception):
    """A registration that cannot be done, with the XMPP condition and a sentence for people."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text

    def stanza_error(self) -> StanzaError:
        return StanzaError(self.condition, self.text)


@dataclass(frozen=True, slots=True)
class Links:
    """Where an invitation leads: the web page and the URI that XMPP apps open."""

    page: str
    uri: str


def invite_links(base_url: str, host: str, token: str, inviter: str | None = None) -> Links:
    """XEP-0401 §4: an account invitation names the domain; a contact's invitation names the inviter."""
    uri = f"xmpp:{inviter}?roster;preauth={token};ibr=y" if inviter else f"xmpp:{host}?register;preauth={token}"
    return Links(f"{base_url}{INVITE_PATH}{token}", uri)


class Registration:
    """The ``registration`` service: accounts from invitations or open registration, passwords, invitations."""

    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.invites = InviteStore(mod.storage.documents(STORE))
        self.granted = mod.storage.documents(GRANTED_ADMINS)
        self.base_url = base_url(mod)
        self._open_recent: collections.deque[float] = collections.deque()  # times of accounts made without a token

    # --- invitations --------------------------------------------------------------------
    def links(self, host: str, token: str, inviter: str | None = None) -> Links:
        return invite_links(self.base_url, host, token, inviter)

    async def invite(self, host: str, inviter: str | None = None, admin: bool = False) -> tuple[str, Invite]:
        invite = Invite(time.time() + self.mod.option(INVITE_EXPIRY), 1, admin, inviter)
        return await self.invites.create(host, invite), invite

    async def valid(self, host: str, token: str) -> Invite | None:
        return await self.invites.get(host, token, time.time())

    # --- accounts -----------------------------------------------------------------------
    def _check_open(self, now: float) -> None:
        if not self.mod.option(OPEN):
            raise RegistrationRefused("not-allowed", "accounts on this server are made by invitation only")
        recent = self._open_recent
        while recent and recent[0] <= now - 3600:
            recent.popleft()
        if len(recent) >= self.mod.option(MAX_PER_HOUR):
            raise RegistrationRefused("resource-constraint", "too many accounts were made lately: try again later")

    async def create_account(self, host: str, username: str, password: str, token: str | None) -> JID:
        """Make an account, spending one use of the invitation (or, without one, if registration is open)."""
        try:
            jid = JID(prep_local(username.strip()), host)
        except JIDError as e:
            raise RegistrationRefused("not-acceptable", f"that username cannot be used: {e.text}") from None
        if not jid.local:
            raise RegistrationRefused("not-acceptable", "choose a username")
        creds = await self._derive(password)
        async with self.invites.lock:
            now = time.time()
            invite = await self.invites.get(host, token, now) if token else None
            if token and invite is None:
                raise RegistrationRefused("item-not-found", "this invitation has been used or has expired")
            if invite is None:
                self._check_open(now)
            if not await self.mod.storage.accounts.create(str(jid), creds):
                raise RegistrationRefused("conflict", f"{jid} is taken: choose another username")
            if invite is not None:
                await self.invites.spend(host, token or "", invite)
            else:
                self._open_recent.append(now)
        if invite is not None and invite.inviter:
            await self._befriend(str(jid), invite.inviter)
        if invite is not None and invite.admin:
            await self.granted.set(host, str(jid), b"1")
            self.mod.grant_admin(jid)
        self.mod.log.info("event=account-registered invited=%s", invite is not None)
        return jid

    async def _derive(self, password: str) -> Credentials:
        """The SCRAM keys of an acceptable new password."""
        shortest = self.mod.option(MIN_PASSWORD)
        if len(password) < shortest:
            raise RegistrationRefused("not-acceptable", f"the password needs {shortest} characters or more")
        try:
            # PBKDF2 takes milliseconds of CPU and releases the GIL: off the event loop.
            return await asyncio.get_running_loop().run_in_executor(
                None, derive, password, self.mod.option(S.SCRAM_ITERATIONS)
            )
        except ValueError as e:
            raise RegistrationRefused("not-acceptable", str(e)) from None

    async def _befriend(self, new: str, inviter: str) -> None:
        """XEP-0379: each sees the other's presence from the start, as if both had asked and approved."""
        if await self.mod.storage.accounts.get(inviter) is None:
            return  # the inviter's account went away meanwhile
        rosters = self.mod.require("roster")
        await rosters.put(new, RosterItem(inviter, subscription="both"))
        await rosters.put(inviter, RosterItem(new, subscription="both"))

    async def change_password(self, jid: JID, password: str, keep: Session | None = None) -> None:
        """Set a new password and end the account's other sessions (whoever knew the old one is logged out)."""
        if not self.mod.option(ALLOW_PASSWORD_CHANGE, host=jid.domain):
            raise RegistrationRefused("not-allowed", "passwords on this server are changed by its administrators")
        creds = await self._derive(password)
        await self.mod.storage.accounts.set_credentials(str(jid.bare), creds)
        for session in self.mod.sessions.sessions_of(jid.bare):
            if session is not keep:
                session.close(StreamError("not-authorized", "the account's password was changed"))

    async def delete_account(self, jid: JID) -> None:
        await self.mod.require("account-deletion")(str(jid.bare))

    # --- administrators by invitation -----------------------------------------------------
    async def load_granted(self) -> None:
        for host in self.mod.hosts.user_domains():
            for account in await self.granted.items(host):
                self.mod.grant_admin(parse_jid(account))

    async def account_deleted(self, event: AccountEvent) -> None:
        jid = JID(event.user, event.host)
        await self.granted.set(event.host, str(jid), None)
        self.mod.grant_admin(jid, granted=False)

    async def sweep_forever(self) -> None:
        while True:
            for host in self.mod.hosts.user_domains():
                await self.invites.sweep(host, time.time())
            await asyncio.sleep(SWEEP_INTERVAL)
