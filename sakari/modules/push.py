"""XEP-0357 Push Notifications: wake a phone whose client is gone or asleep, through its app server.

- §5 ``<enable jid=… node=…/>`` to one's own account registers an app server's pubsub node, with
  the optional publish-options form (the app server's secret) that every notification carries back;
  ``<disable jid=…/>`` removes one node, or every node of that app server. Registrations are kept
  per account in storage, so they outlive sessions and restarts; an account keeps at most
  ``push.max_registrations`` (a reinstalled app registers a new node: the oldest one goes).
- When to notify: a message worth waking for (a body, an encrypted payload, a call or an
  invitation; not typing notifications, receipts or markers) that goes to offline storage wakes
  every registration of the account; one for a session hibernating in stream management (its
  connection lost, the session waiting to be resumed) wakes the registrations that session's
  client enabled, also for what it had not acknowledged when its connection went.
- §6 the notification is published to the node from the account's bare JID. It carries nothing
  about the message unless the user allowed it for that registration (the ad-hoc command
  "Push notification contents"): then the ``urn:xmpp:push:summary`` form, with the count of
  messages since the client enabled it, and the last one's sender and text.
- §7 an error from the app server, other than a temporary one (type ``wait``), disables the
  registration. One registration is notified at most once per ``push.min_interval``; what comes
  meanwhile is merged into one notification at the end of the interval.

- Group chat (with the ``muc`` module): a room's message wakes a member of a members-only room who
  is not in it and has no client connected (``room_message``); a session hibernating while in a room is
  woken only by messages that mention its nick, since a busy room would keep the phone awake. A
  notification about a message that mentions the user says so even without the summary the user may
  allow: the ``urn:xmpp:push:summary`` form then carries ``last-message-priority`` = ``high`` and
  nothing else (nothing about the message beyond that one bit).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from sakari.config import declare, positive
from sakari.core import events as E
from sakari.core.events import SessionEvent, StanzaEvent, UndeliverableEvent
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.adhoc import NS_DATA, Ask, Command, Done, Request, add_field, form
from sakari.modules.util import payload
from sakari.xml import fragment
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_PUSH = "urn:xmpp:push:0"
NS_SUMMARY = "urn:xmpp:push:summary"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NODE_CONTENTS = "urn:sakari:push:contents"  # the ad-hoc command that lets a registration's notifications say more
STORE = "push"  # map: owner = account, key = registration key, value = Registration as JSON
# cached keyvalue: owner = account, value = the keys of its registrations (JSON list), none without any. Read
# for every member who is away from a room, on every message of the room: so it costs no storage read.
REGISTERED = "push_registered"
PROP = "push"  # session.props: the keys of the registrations this session's client enabled

# What makes a message worth waking a phone for, besides a body: end-to-end encrypted payloads
# (OMEMO, OpenPGP), a call (XEP-0353 <propose/>) and invitations to rooms (XEP-0249, XEP-0045).
WAKING = frozenset({
    ("encrypted", "eu.siacs.conversations.axolotl"), ("encrypted", "urn:xmpp:omemo:2"),
    ("openpgp", "urn:xmpp:openpgp:0"), ("x", "jabber:x:encrypted"),
    ("propose", "urn:xmpp:jingle-message:0"), ("x", "jabber:x:conference"),
})

MIN_INTERVAL = declare(
    "push.min_interval", 5.0,
    "Seconds between two notifications to one app server registration (XEP-0357); messages meanwhile are "
    "merged into one notification at the end.", positive,
)
MAX_REGISTRATIONS = declare(
    "push.max_registrations", 5,
    "Push registrations (devices) one account may have; a new one beyond it replaces the oldest.", positive,
)


@dataclass(slots=True)
class Registration:
    """One app server node that wants to hear about an account's messages."""

    jid: str  # the app server
    node: str
    options: str  # the publish-options form as given (the app server's secret), or "" for none
    enabled: float  # when the client last enabled it (the oldest goes first)
    summary: bool = False  # the user allowed the sender and text of the last message in notifications

    @property
    def key(self) -> str:
        return registration_key(self.jid, self.node)

    def dump(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def load(cls, data: bytes) -> Registration:
        return cls(**json.loads(data))


def registration_key(jid: str, node: str) -> str:
    return f"{jid}\n{node}"


@dataclass(slots=True)
class Pending:
    """A registration's notifications since its client enabled it, and its rate limit (memory only)."""

    count: int = 0
    sender: str = ""
    body: str = ""
    mention: bool = False  # a message since the last notification mentioned the user (in a room)
    last_sent: float = float("-inf")  # loop time
    timer: asyncio.TimerHandle | None = field(default=None)


def waking_message(stanza: Element, groupchat: bool = False) -> Element | None:
    """The message a notification is about (inside a received carbon), or None if it should not wake.
    Room messages (``groupchat``) only where the caller asks for them."""
    kind = stanza.attrs.get("type", "normal")
    if stanza.name != "message" or kind in ("error", "headline") or (kind == "groupchat" and not groupchat):
        return None
    received = stanza.find("received", NS_CARBONS)
    if received is not None:
        forwarded = received.find("forwarded", NS_FORWARD)
        inner = forwarded.find("message", NS.CLIENT) if forwarded is not None else None
        return waking_message(inner) if inner is not None else None
    if stanza.find("sent", NS_CARBONS) is not None:
        return None  # what the user wrote on another device
    for child in stanza.elements():
        if (child.name == "body" and child.ns == NS.CLIENT) or (child.name, child.ns) in WAKING:
            return stanza
        if child.ns == "http://jabber.org/protocol/muc#user" and child.find("invite") is not None:
            return stanza
    return None


def summary_form(pending: Pending, contents: bool) -> Element | None:
    """The ``urn:xmpp:push:summary`` form: count, sender and text when the user allowed ``contents``;
    ``last-message-priority`` = ``high`` when a message mentioned the user (the field app servers read to
    send a notification as urgent). None when there is nothing the notification may say."""
    if not contents and not pending.mention:
        return None
    x = Element("x", NS_DATA, {"type": "submit"})
    add_field(x, "FORM_TYPE", "hidden", values=[NS_SUMMARY])
    if contents:
        add_field(x, "message-count", "text-single", values=[str(pending.count)])
        if pending.sender:
            add_field(x, "last-message-sender", "jid-single", values=[pending.sender])
        if pending.body:
            add_field(x, "last-message-body", "text-single", values=[pending.body])
    if pending.mention:
        add_field(x, "last-message-priority", "text-single", values=["high"])
    return x


def publish_iq(registration: Registration, pending: Pending) -> Element:
    """XEP-0357 §6: the notification, with what of the summary the registration's user allowed."""
    iq = Element("iq", NS.CLIENT, {"type": "set"})
    pubsub = iq.add("pubsub", NS_PUBSUB)
    notification = pubsub.add("publish", attrs={"node": registration.node}).add("item").add("notification", NS_PUSH)
    x = summary_form(pending, registration.summary)
    if x is not None:
        notification.append(x)
    if registration.options:
        pubsub.add("publish-options").append(fragment.load(registration.options.encode()))
    return iq


def form_type(x: Element) -> str | None:
    for f in x.find_all("field", NS_DATA):
        if f.attrs.get("var") == "FORM_TYPE":
            return f.child_text("value", NS_DATA)
    return None


class Push:
    """The module: registrations, when to notify, and the notifications themselves."""

    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.store = mod.storage.map(STORE)
        self.registered = mod.storage.cached_keyvalue(REGISTERED)
        self.pending: dict[tuple[str, str], Pending] = {}  # (account, registration key)

    # --- enable and disable (§5) ------------------------------------------------------------
    async def enable(self, event: StanzaEvent) -> bool:
        el = payload(event)
        app_server, node = self._app_server(el), el.attrs.get("node", "")
        if not node:
            raise StanzaError("bad-request", "enable needs the app server's node")
        options = ""
        x = el.find("x", NS_DATA)
        if x is not None:
            if form_type(x) != NS_PUBLISH_OPTIONS:
                raise StanzaError("bad-request", f"the form is one of {NS_PUBLISH_OPTIONS}")
            options = fragment.dump(x).decode()
        owner = str(event.to_jid.bare)
        stored = {k: Registration.load(v) for k, v in (await self.store.items(owner)).items()}
        key = registration_key(str(app_server), node)
        earlier = stored.pop(key, None)
        # The user's choice about contents stays when the client enables the same node again.
        registration = Registration(str(app_server), node, options, time.time(), earlier.summary if earlier else False)
        for old in sorted(stored.values(), key=lambda r: r.enabled)[: max(0, len(stored) + 1 - self._max(event))]:
            await self._forget(owner, old.key)
        await self.store.set(owner, key, registration.dump())
        await self._mark(owner)
        self._cancel(owner, key)  # the client is here: what it was told about so far is read
        if event.origin is not None:
            event.origin.props.setdefault(PROP, set()).add(key)
        return True

    async def disable(self, event: StanzaEvent) -> bool:
        el = payload(event)
        app_server, node = str(self._app_server(el)), el.attrs.get("node")
        owner = str(event.to_jid.bare)
        for key, data in (await self.store.items(owner)).items():
            registration = Registration.load(data)
            if registration.jid == app_server and node in (None, registration.node):
                await self._forget(owner, key)
                if event.origin is not None:
                    event.origin.props.get(PROP, set()).discard(key)
        return True

    def _app_server(self, el: Element) -> JID:
        try:
            return parse_jid(el.attrs.get("jid", ""))
        except JIDError:
            raise StanzaError("jid-malformed", "the app server's address is missing or malformed") from None

    def _max(self, event: StanzaEvent) -> int:
        return self.mod.option(MAX_REGISTRATIONS, host=event.to_jid.domain)

    async def _forget(self, owner: str, key: str) -> None:
        await self.store.set(owner, key, None)
        await self._mark(owner)
        self._cancel(owner, key)

    async def _mark(self, owner: str) -> None:
        keys = sorted(await self.store.items(owner))
        await self.registered.set(owner, json.dumps(keys).encode() if keys else None)

    def _cancel(self, owner: str, key: str) -> None:
        pending = self.pending.pop((owner, key), None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    # --- when to notify -------------------------------------------------------------------------
    def offline(self, event: StanzaEvent) -> None:
        """A message goes to offline storage: no client is there, every registration is woken."""
        message = waking_message(event.stanza)
        if message is not None:
            self.mod.spawn(self.notify(event.to_jid.bare, None, message))

    def undeliverable(self, event: UndeliverableEvent) -> None:
        """A stanza for a hibernating session: its client's registrations are woken."""
        keys = event.session.props.get(PROP)
        if not keys:
            return
        wake = self._waking_for(event.session, event.stanza)
        if wake is not None:
            message, mention = wake
            self.mod.spawn(self.notify(event.session.bare, set(keys), message, mention=mention))

    def _waking_for(self, session: Session, stanza: Element) -> tuple[Element, bool] | None:
        """What wakes a session's client, and whether it mentions the user: a room's message only when
        it names the session's occupant (the group chat module knows its nicks), others as for offline."""
        message = waking_message(stanza, groupchat=True)
        if message is None:
            return None
        if message.attrs.get("type") != "groupchat":
            return message, False
        try:
            rooms = self.mod.require("muc")
        except RuntimeError:
            return None
        return (message, True) if rooms.mentions(session.jid, message) else None

    def wakes(self, message: Element) -> bool:
        """Whether a room's message is worth a notification (a body or an encrypted payload, not a chat state)."""
        return waking_message(message, groupchat=True) is not None

    async def room_message(self, account: JID, message: Element, mention: bool) -> None:
        """A room's message for a member who is not in the room and has no client connected: every
        registration of the account is woken, as for a message to offline storage."""
        owner = account.text
        cached = self.registered.peek(owner)
        marker = cached[0] if cached is not None else await self.registered.get(owner)
        if marker is not None:
            # Registrations disabled meanwhile are skipped when their notification is sent (_publish).
            self.pend(account, json.loads(marker), (message,), mention)

    def detached(self, event: SessionEvent) -> None:
        """The connection went with messages the client had not acknowledged: they may never have arrived."""
        session = event.session
        keys = session.props.get(PROP)
        if not keys:
            return
        try:
            acks = self.mod.require("smacks")
        except RuntimeError:
            return
        unread = [w for w in (self._waking_for(session, s) for s in acks.unacknowledged(session)) if w is not None]
        if unread:
            mention = any(m for _, m in unread)
            self.mod.spawn(self.notify(session.bare, set(keys), *(w for w, _ in unread), mention=mention))

    async def notify(self, account: JID, keys: Iterable[str] | None, *messages: Element, mention: bool = False) -> None:
        stored = await self.store.items(account.text)
        self.pend(account, stored if keys is None else [k for k in keys if k in stored], messages, mention)

    def pend(self, account: JID, keys: Iterable[str], messages: tuple[Element, ...], mention: bool) -> None:
        """Count the messages for each registration and send its notification, or schedule it for the end
        of its interval (``push.min_interval``) when one went out less than that ago."""
        owner = account.text
        loop = asyncio.get_running_loop()
        for key in keys:
            pending = self.pending.setdefault((owner, key), Pending())
            pending.count += len(messages)
            pending.mention = pending.mention or mention
            last = messages[-1]
            pending.sender, pending.body = last.attrs.get("from", ""), last.child_text("body") or ""
            if pending.timer is not None:
                continue  # merged into the notification already waiting for the end of the interval
            wait = pending.last_sent + self.mod.option(MIN_INTERVAL, host=account.domain) - loop.time()
            if wait <= 0:
                self.publish(account, key, pending)
            else:
                pending.timer = loop.call_later(wait, self.publish, account, key, pending)

    # --- the notification (§6) and the app server's answer (§7) ------------------------------------
    def publish(self, account: JID, key: str, pending: Pending) -> None:
        pending.timer = None
        pending.last_sent = asyncio.get_running_loop().time()
        self.mod.spawn(self._publish(account, key, pending))

    async def _publish(self, account: JID, key: str, pending: Pending) -> None:
        owner = str(account)
        data = await self.store.get(owner, key)
        if data is None:
            return  # disabled meanwhile
        registration = Registration.load(data)
        iq = publish_iq(registration, pending)
        pending.mention = False  # told now; the next notification flags only a new mention
        try:
            answer = await self.mod.request(iq, parse_jid(registration.jid), from_jid=account)
        except TimeoutError:
            self.mod.log.info("event=push-timeout account=%s", owner)
            return
        error = answer.find("error", NS.CLIENT) if answer.attrs.get("type") == "error" else None
        if error is None:
            self.mod.log.debug("event=push-sent account=%s", owner)
        elif error.attrs.get("type") != "wait":
            condition = next((c.name for c in error.elements() if c.ns == NS.STANZA_ERRORS), "undefined-condition")
            await self._forget(owner, key)
            self.mod.log.info("event=push-disabled account=%s condition=%s", owner, condition)

    # --- what notifications may say: the user's choice, per registration ---------------------------
    async def contents(self, request: Request) -> Ask | Done:
        owner = str(request.requester.bare)
        stored = {k: Registration.load(v) for k, v in (await self.store.items(owner)).items()}
        if not stored:
            return Done("No device has push notifications on for this account.")
        if request.fields is None:
            x = form("form", "Push notification contents", "Notifications normally say only that something "
                     "arrived. For the devices ticked here, they also name the sender of the last message "
                     "and carry its text, which the app server and the phone's push service then see.")
            f = add_field(x, "summary", "list-multi", "Sender and text for",
                          [k for k, r in stored.items() if r.summary])
            for key, registration in stored.items():
                option = f.add("option", attrs={"label": f"{registration.jid} ({registration.node[:8]}…)"})
                option.add("value", text=key)
            return Ask(x)
        chosen = set(request.fields.get("summary", []))
        for key, registration in stored.items():
            if registration.summary != (key in chosen):
                registration.summary = key in chosen
                await self.store.set(owner, key, registration.dump())
        return Done(f"Sender and text are now sent for {len(chosen & stored.keys())} of {len(stored)} devices.")


def setup(mod: ModuleAPI) -> None:
    push = Push(mod)
    mod.provide("push", push)  # for group chat: room messages for members who are away
    mod.add_feature(NS_PUSH)
    mod.add_account_feature(NS_PUSH)  # §5: clients look for it on their own account
    mod.hook(f"iq-set/self/{NS_PUSH}:enable", push.enable)
    mod.hook(f"iq-set/self/{NS_PUSH}:disable", push.disable)
    # Observers before the handlers that keep the stanza (offline storage), so they always run.
    mod.hook(E.MESSAGE_OFFLINE, push.offline, priority=100)
    mod.hook(E.STANZA_UNDELIVERABLE, push.undeliverable, priority=100)
    mod.hook(E.SESSION_DETACHED, push.detached)
    mod.depends("adhoc")

    def local_user(jid: JID) -> bool:
        return bool(jid.local) and mod.hosts.has_accounts(jid.domain)

    mod.require("adhoc").register(Command(NODE_CONTENTS, "Push notification contents", local_user, push.contents))
