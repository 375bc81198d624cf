"""Accounts by invitation: XEP-0077 in-band registration with XEP-0401 tokens, XEP-0379 contact invitations.

An operator makes an invitation (``sakari invite create``, or the XEP-0401
ad-hoc command for administrators); it is a random token in a link to a web
page (:mod:`sakari.modules.register.pages`) and in an ``xmpp:`` URI that
Conversations, Dino and others open. A client sends the token before
registering (``<preauth xmlns='urn:xmpp:pars:0'/>``), then registers in band
(``jabber:iq:register``) on the unauthenticated stream; the web page's form
does the same over HTTP. Without a token, registration is refused unless the
operator opened it (``register.open``), and then it is held to a rate.

An invitation a user made (when ``register.users_may_invite`` allows it)
makes the new account and the inviter contacts at once, each subscribed to
the other's presence (XEP-0379's pre-approval). An administrator's
invitation (``--admin``) makes an administrator.

Authenticated clients may change their password or delete their account
in band (XEP-0077 §3.2–§3.3), or on the account page at ``/account``
(:mod:`sakari.modules.register.account`), which also lists the devices and
exports the account's data.
"""

from __future__ import annotations

import asyncio
import time

from sakari.core import events as E
from sakari.core.events import ServerEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.sessions import PreAuth
from sakari.jid import JID
from sakari.modules.adhoc import Command, Done, Request, add_field, form
from sakari.modules.register.account import AccountPages
from sakari.modules.register.pages import InvitePages
from sakari.modules.register.service import (
    ALLOW_PASSWORD_CHANGE,
    OPEN,
    USERS_MAY_INVITE,
    Links,
    Registration,
    RegistrationRefused,
)
from sakari.modules.register.tokens import Invite
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, error_reply

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_PARS = "urn:xmpp:pars:0"  # XEP-0401's pre-authenticated roster subscription / registration token
NS_INVITE = "urn:xmpp:invite"
NODE_INVITE = "urn:xmpp:invite#invite"
NODE_CREATE_ACCOUNT = "urn:xmpp:invite#create-account"


# --- XEP-0077 before authentication ----------------------------------------------------------
def registration_form(instructions: str) -> Element:
    query = Element("query", NS_REGISTER)
    query.add("instructions", text=instructions)
    query.add("username")
    query.add("password")
    return query


def _field(query: Element, name: str) -> str:
    return query.child_text(name, NS_REGISTER) or ""


class InBand:
    """The stream side of registration: the token (``<preauth/>``), the form, and the account."""

    def __init__(self, registration: Registration) -> None:
        self.registration = registration

    async def preauth(self, request: PreAuth) -> Element:
        token = request.iq.first_child().attrs.get("token", "")  # type: ignore[union-attr]
        if request.iq.attrs.get("type") != "set" or await self.registration.valid(request.host, token) is None:
            raise StanzaError("item-not-found", "this invitation has been used or has expired")
        request.state["token"] = token
        return _result(request.iq)

    async def register(self, request: PreAuth) -> Element:
        iq, query = request.iq, request.iq.first_child()
        assert query is not None
        if iq.attrs.get("type") == "get":
            if request.state.get("token") or self.registration.mod.option(OPEN):
                instructions = "Choose a username and a password."
            else:
                instructions = "Accounts on this server are made by invitation: open your invitation's link first."
            return _result(iq, registration_form(instructions))
        if query.find("remove", NS_REGISTER) is not None:
            raise StanzaError("not-authorized", "log in to delete your account")
        username, password = _field(query, "username"), _field(query, "password")
        if not username or not password:
            raise StanzaError("not-acceptable", "give a username and a password")
        try:
            await self.registration.create_account(request.host, username, password, request.state.pop("token", None))
        except RegistrationRefused as refused:
            return error_reply(iq, refused.stanza_error())
        return _result(iq)


def _result(iq: Element, payload: Element | None = None) -> Element:
    reply = Element("iq", NS.CLIENT, {"type": "result", "id": iq.attrs.get("id", "")})
    if payload is not None:
        reply.append(payload)
    return reply


# --- XEP-0077 on an authenticated stream: password change and cancellation ------------------------
class SignedIn:
    def __init__(self, registration: Registration) -> None:
        self.registration = registration

    async def get(self, event: StanzaEvent) -> Element:
        query = Element("query", NS_REGISTER)
        query.add("registered")
        query.add("username", text=event.from_jid.local)
        if self.registration.mod.option(ALLOW_PASSWORD_CHANGE, host=event.from_jid.domain):
            query.add("password")  # §3.3: the fields offered are the ones that may be changed
        return query

    async def set(self, event: StanzaEvent) -> bool:
        query = event.stanza.first_child()
        assert query is not None
        if query.find("remove", NS_REGISTER) is not None:
            self.registration.mod.router.reply_result(event)  # §3.2: answered before the stream ends
            await self.registration.delete_account(event.from_jid)
            return True
        username, password = _field(query, "username"), _field(query, "password")
        if username and username != event.from_jid.local:
            raise StanzaError("not-allowed", "a password can only be changed for one's own account")
        if not password:
            raise StanzaError("bad-request", "give the new password")
        try:
            await self.registration.change_password(event.from_jid, password, keep=event.origin)
        except RegistrationRefused as refused:
            raise refused.stanza_error() from None
        return True


# --- XEP-0401 ad-hoc commands ------------------------------------------------------------------
def _outcome(links: Links, invite: Invite) -> Done:
    result = form("result", "Invitation", form_type=NS_INVITE)
    add_field(result, "uri", "text-single", "Invitation URI", [links.uri])
    add_field(result, "landing-url", "text-single", "Invitation web page", [links.page])
    add_field(result, "expire", "text-single", "Valid until", [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(invite.expires))])
    return Done("Send this link to the person you invite.", result)


def _add_commands(mod: ModuleAPI, registration: Registration) -> None:
    def may_invite(jid: JID) -> bool:
        local = bool(jid.local) and mod.hosts.has_accounts(jid.domain)
        return mod.is_admin(jid) or (local and mod.option(USERS_MAY_INVITE))

    async def invite_contact(request: Request) -> Done:
        inviter = str(request.requester.bare)
        token, invite = await registration.invite(request.host, inviter=inviter)
        return _outcome(registration.links(request.host, token, inviter), invite)

    async def create_account(request: Request) -> Done:
        token, invite = await registration.invite(request.host)
        return _outcome(registration.links(request.host, token), invite)

    mod.depends("adhoc")
    commands = mod.require("adhoc")
    commands.register(Command(NODE_INVITE, "Invite someone", may_invite, invite_contact))
    commands.register(Command(NODE_CREATE_ACCOUNT, "Make an invitation for a new account", mod.is_admin, create_account))


def setup(mod: ModuleAPI) -> None:
    mod.depends("roster")
    registration = Registration(mod)
    mod.provide("registration", registration)
    in_band = InBand(registration)
    mod.add_pre_auth(NS_PARS, "preauth", in_band.preauth)
    mod.add_pre_auth(NS_REGISTER, "query", in_band.register)
    # Before authentication: registration is possible here, and takes XEP-0401 tokens.
    mod.add_stream_feature(lambda authenticated: None if authenticated else Element("register", NS_REGISTER_FEATURE))
    mod.add_stream_feature(lambda authenticated: None if authenticated else Element("register", NS_INVITE))
    signed_in = SignedIn(registration)
    for to in ("host", "self"):  # XEP-0077 §3.2 addresses the server; many clients leave 'to' out
        mod.hook(f"iq-get/{to}/{NS_REGISTER}:query", signed_in.get)
        mod.hook(f"iq-set/{to}/{NS_REGISTER}:query", signed_in.set)
    mod.add_feature(NS_REGISTER)
    _add_commands(mod, registration)
    InvitePages(mod, registration).add_routes()
    AccountPages(mod, registration).add_routes()
    mod.hook(E.ACCOUNT_DELETED, registration.account_deleted)
    sweeper: list[asyncio.Task[None]] = []

    async def start(event: ServerEvent) -> None:
        await registration.load_granted()
        sweeper.append(mod.spawn(registration.sweep_forever()))

    def stop(event: ServerEvent) -> None:
        for task in sweeper:
            task.cancel()

    mod.hook(E.SERVER_STARTED, start)
    mod.hook(E.SERVER_STOPPING, stop)
