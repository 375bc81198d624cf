"""XEP-0484 FAST: tokens that let a client log in again in one round trip, without its password.

A client that logged in with SASL2 and asked for a token (``<request-token/>``) gets one in
``<success/>``; its later logins use the token with an HT mechanism (checked in
:mod:`sakari.stream.sasl2`), which skips the password's PBKDF2 and SCRAM's second round trip.

- Tokens belong to one client of one account (its SASL2 ``<user-agent id>``), and to the mechanism
  they were asked for: a token for HT-SHA-256-ENDP (channel binding) is refused with -NONE.
- Each client has two slots, as §5 suggests: a token just issued waits in ``new`` until it is used
  (the client may not have received it), then replaces ``current``. Issuing a token drops an
  unused one. A token older than ``fast.rotate_after`` is replaced at its next use.
- What is stored of a token is its SHA-256 only (see :func:`sakari.stream.sasl2.token_key`), with
  its expiry, mechanism and a fingerprint of the account's password keys: a password change
  (from any path: client, account page, admin command, command line) makes every token fail, and
  deleting the account deletes its tokens with its other data.
- An expired token that is otherwise right fails with ``credentials-expired`` and is deleted; the
  client then logs in with its password again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sakari.config import declare, positive
from sakari.core.modules import ModuleAPI
from sakari.credentials import Credentials
from sakari.modules.util import utc_stamp
from sakari.storage.base import MapStore
from sakari.stream.sasl2 import NS_FAST, TokenCheck, token_key
from sakari.xml.element import Element

STORE = "fast_tokens"
TOKEN_BYTES = 66  # random bytes; their base64 (88 characters) is longer than HMAC-SHA-256's block, see token_key

LIFETIME = declare(
    "fast.token_lifetime", 1814400.0,
    "Seconds a FAST token (XEP-0484) stays valid: a device not used for longer logs in with its password again.",
    positive,
)
ROTATE_AFTER = declare(
    "fast.rotate_after", 86400.0,
    "Seconds after which a FAST token is replaced by a new one at its next use.",
    positive,
)

Slot = dict[str, Any]  # key (base64 of the token's hash), mechanism, issued, expiry, creds (fingerprint)


def creds_fingerprint(creds: Credentials) -> str:
    """Changes with the password (new salt, new keys), and tells nothing about it."""
    keys = creds.keys["SHA-256"]
    return hashlib.sha256(b"fast\0" + creds.salt + keys.stored_key).hexdigest()[:32]


def client_key(client_id: str) -> str:
    """The store's key for a client: a hash, so the client's id is not kept as it sent it."""
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


class FastTokens:
    """The :class:`sakari.stream.sasl2.TokenStore` of the server."""

    def __init__(self, store: MapStore, option: Callable[..., Any], now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.option = option  # ModuleAPI.option: (option, host=) → a virtual host's value
        self.now = now

    async def _load(self, owner: str, client: str) -> dict[str, Slot | None]:
        data = await self.store.get(owner, client)
        return json.loads(data) if data else {"new": None, "current": None}

    async def _save(self, owner: str, client: str, slots: dict[str, Slot | None]) -> None:
        empty = slots["new"] is None and slots["current"] is None
        await self.store.set(owner, client, None if empty else json.dumps(slots).encode())

    async def check(
        self, user: str, host: str, client_id: str, mechanism: str, creds: Credentials, verify: Callable[[bytes], bool]
    ) -> TokenCheck:
        owner, client = f"{user}@{host}", client_key(client_id)
        slots = await self._load(owner, client)
        fingerprint, now = creds_fingerprint(creds), self.now()
        for name in ("new", "current"):
            slot = slots[name]
            if slot is None or slot["mechanism"] != mechanism or slot["creds"] != fingerprint:
                continue
            if not verify(base64.b64decode(slot["key"])):
                continue
            if slot["expiry"] <= now:
                slots[name] = None
                await self._save(owner, client, slots)
                return TokenCheck(False, "credentials-expired")
            if name == "new":
                # The client has the new token: the one before it is no longer needed (§5).
                slots["current"], slots["new"] = slot, None
                await self._save(owner, client, slots)
            rotate = now - slot["issued"] >= self.option(ROTATE_AFTER, host=host)
            return TokenCheck(True, rotate=rotate)
        return TokenCheck(False)

    async def issue(self, user: str, host: str, client_id: str, mechanism: str, creds: Credentials) -> Element:
        owner, client = f"{user}@{host}", client_key(client_id)
        token = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode()
        now = self.now()
        expiry = now + self.option(LIFETIME, host=host)
        slots = await self._load(owner, client)
        slots["new"] = {  # an earlier token never used is dropped (§5)
            "key": base64.b64encode(token_key(token)).decode(),
            "mechanism": mechanism,
            "issued": now,
            "expiry": expiry,
            "creds": creds_fingerprint(creds),
        }
        await self._save(owner, client, slots)
        return Element("token", NS_FAST, {"expiry": utc_stamp(datetime.fromtimestamp(expiry, UTC)), "token": token})

    async def invalidate(self, user: str, host: str, client_id: str) -> None:
        await self.store.set(f"{user}@{host}", client_key(client_id), None)


def setup(mod: ModuleAPI) -> None:
    mod.set_token_store(FastTokens(mod.storage.map(STORE), mod.option))
