"""Invitation tokens (XEP-0401): random, kept only as their hash, with an expiry and a number of uses.

A token is shown once, in the link and the ``xmpp:`` URI; the server keeps
its SHA-256, so a copy of the database cannot be turned into working
invitations. An expired token is deleted the first time anyone asks for it,
and by :meth:`InviteStore.sweep`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass

from sakari.storage.base import MapStore

STORE = "invites"  # documents kind; owner: the domain the invitation is for
TOKEN_BYTES = 18  # 144 random bits, 24 characters in the link
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds from "3600", "90m", "12h", "7d" or "2w"."""
    match = _DURATION.match(text.lower())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration such as 7d, 12h or 30m")
    return int(match[1]) * _UNITS[match[2]]


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Invite:
    expires: float  # Unix time
    uses: int  # accounts it may still create
    admin: bool = False  # the account it creates administers the server
    inviter: str | None = None  # bare JID: the new account and the inviter become contacts (XEP-0379)


class InviteStore:
    def __init__(self, documents: MapStore) -> None:
        self.documents = documents
        # Checking a token and spending a use is one step for the event loop: two registrations can never share
        # an invitation's last use.
        self.lock = asyncio.Lock()

    async def create(self, host: str, invite: Invite) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        await self.documents.set(host, token_key(token), json.dumps(asdict(invite)).encode())
        return token

    async def get(self, host: str, token: str, now: float) -> Invite | None:
        """The invitation, if it exists, has not expired and has a use left."""
        if not token:
            return None
        key = token_key(token)
        stored = await self.documents.get(host, key)
        if stored is None:
            return None
        invite = Invite(**json.loads(stored))
        if invite.expires <= now or invite.uses <= 0:
            await self.documents.set(host, key, None)
            return None
        return invite

    async def spend(self, host: str, token: str, invite: Invite) -> None:
        """One use of an invitation :meth:`get` returned is gone; the last use deletes it."""
        left = invite.uses - 1
        value = json.dumps({**asdict(invite), "uses": left}).encode() if left > 0 else None
        await self.documents.set(host, token_key(token), value)

    async def sweep(self, host: str, now: float) -> int:
        """Delete the invitations that expired; returns how many."""
        gone = 0
        for key, stored in (await self.documents.items(host)).items():
            if json.loads(stored)["expires"] <= now:
                await self.documents.set(host, key, None)
                gone += 1
        return gone
