"""XEP-0045 Multi-User Chat: a group chat service on conference.<domain> for each virtual host.

With XEP-0249 direct invitations (clients send them; the room sends both
kinds with a mediated one), XEP-0359 stanza ids by the room, XEP-0421
occupant ids, XEP-0410 self-ping, the legacy ``<history/>`` on entering,
XEP-0313 archives of persistent rooms (``archive.py``), XEP-0424/0425
retraction and moderation (``retract.py``), vCard room avatars (XEP-0054,
XEP-0153), XEP-0317 hats (``hats.py``), XEP-0191 block lists applied to what
occupants receive, and XEP-0357 push notifications for members who are away
(through the push module; mentions in ``mentions.py``).
The room logic is sans-IO (``room.py``, ``admin.py``, ``forms.py``); the
service (``service.py``) does the routing, storage and fan-out.
"""

from __future__ import annotations

import secrets

from sakari.config import declare, non_negative, one_of, positive
from sakari.core import events as E
from sakari.core.events import ServerEvent, SessionEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID, parse_jid
from sakari.modules.mam import MAX_RESULTS as MAM_MAX_RESULTS
from sakari.modules.muc.room import Limits
from sakari.modules.muc.service import SERVICE_FEATURES, MucService, Policy
from sakari.xml.element import Element

SUBDOMAIN = declare(
    "muc.subdomain", "conference",
    "Group chat lives at <subdomain>.<domain> for each virtual host (conference.example.org).",
)
NAME = declare("muc.name", "Group chat", "The service's name in service discovery.")
CREATE_ROOMS = declare(
    "muc.create_rooms", "local",
    "Who may create rooms: \"local\" (accounts of this server), \"admins\" (the 'admins' key) or \"anyone\".",
    one_of("local", "admins", "anyone"),
)
MAX_OCCUPANTS = declare(
    "muc.max_occupants", 1000,
    "Most occupants in one room; owners may set less. Admins and owners may still enter a full room.", positive,
)
MAX_ROOMS_PER_USER = declare(
    "muc.max_rooms_per_user", 100, "Rooms one account may own; creating one more is refused (policy-violation).",
    non_negative,
)
JOINS_PER_MINUTE = declare(
    "muc.joins_per_minute", 60,
    "Rooms one account may enter per minute (as a burst too); beyond it, resource-constraint. 0: no limit.",
    non_negative,
)
MAX_HISTORY = declare(
    "muc.max_history", 100, "Most messages a room may keep to show newcomers (muc#maxhistoryfetch).", non_negative
)
DEFAULT_HISTORY = declare("muc.default_history", 20, "Messages a new room keeps to show newcomers.", non_negative)
PRESENCES_ON_JOIN = declare(
    "muc.presences_on_join", 200,
    "Most occupant presences a newcomer gets on entering a bigger room: moderators first, then the others"
    " in the order they came. Bounds the flood one join causes in a large room. 0: all of them.",
    non_negative,
)
LOCK_NEW_ROOMS = declare(
    "muc.lock_new_rooms", True,
    "A new room stays closed to others until its owner accepts or submits the configuration (XEP-0045 §10.1).",
)


def setup(mod: ModuleAPI) -> None:
    services: list[MucService] = []
    secrets_store = mod.storage.keyvalue("muc_secret")
    for host in mod.hosts.user_domains():
        domain = f"{mod.option(SUBDOMAIN, host=host)}.{host}"
        limits = Limits(mod.option(MAX_OCCUPANTS, host=host), mod.option(MAX_HISTORY, host=host),
                        mod.option(PRESENCES_ON_JOIN, host=host))
        policy = Policy(
            create_rooms=mod.option(CREATE_ROOMS, host=host),
            max_rooms_per_user=mod.option(MAX_ROOMS_PER_USER, host=host),
            joins_per_minute=mod.option(JOINS_PER_MINUTE, host=host),
            lock_new_rooms=mod.option(LOCK_NEW_ROOMS, host=host),
            default_history=min(mod.option(DEFAULT_HISTORY, host=host), limits.max_history),
            limits=limits,
            max_results=mod.option(MAM_MAX_RESULTS, host=host),
        )
        service = MucService(mod, domain, policy, b"")
        name = mod.option(NAME, host=host)
        mod.add_service(domain, service.handle, name=name, identities={("conference", "text", name)},
                        features=set(SERVICE_FEATURES))
        services.append(service)
        mod.add_write_barrier(service.archive.writer.barrier)  # a room message is acknowledged once archived

    async def start(event: ServerEvent) -> None:
        for service in services:
            # Occupant ids must stay the same across restarts (XEP-0421 §4), and not be guessable.
            secret = await secrets_store.get(service.domain)
            if secret is None:
                secret = secrets.token_bytes(32)
                await secrets_store.set(service.domain, secret)
            service.secret = secret
            await service.load()

    async def stop(event: ServerEvent) -> None:
        for service in services:
            await service.archive.writer.written()

    async def session_closed(event: SessionEvent) -> None:
        for service in services:
            if event.session.jid in service.where:
                await service.session_gone(event.session.jid)

    class Mentions:
        """For the push module: whether a room message for a hibernating session mentions its occupant."""

        def mentions(self, occupant: JID, message: Element) -> bool:
            domain = parse_jid(message.attrs.get("from", "")).domain
            return any(s.mentioned(occupant, message) for s in services if s.domain == domain)

    mod.provide("muc", Mentions())
    mod.hook(E.SERVER_STARTED, start)
    mod.hook(E.SERVER_STOPPING, stop)
    mod.hook(E.SESSION_CLOSED, session_closed)
