"""FAST tokens (XEP-0484) as the fast module keeps them: hashed, per client and mechanism, two slots
for rotation, expiry, and no longer valid once the password changed."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from test_storage_contract import backend, postgres_database, storage  # noqa: F401

from sakari.config import Option
from sakari.credentials import derive
from sakari.modules.fast import LIFETIME, ROTATE_AFTER, STORE, FastTokens
from sakari.storage.base import Storage
from sakari.stream.sasl2 import HashedToken, TokenCheck

USER, HOST, CLIENT = "juliet", "example.org", "c0ffee-1234"
CREDS = derive("first password", 1, salt=b"a" * 16)
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def option(opt: Option[Any], host: str | None = None) -> Any:
    return opt.default


def tokens(storage: Storage, clock: Clock) -> FastTokens:
    return FastTokens(storage.map(STORE), option, clock)


async def issue(store: FastTokens, mechanism: str = "HT-SHA-256-NONE", creds: Any = CREDS) -> str:
    el = await store.issue(USER, HOST, CLIENT, mechanism, creds)
    assert el.name == "token" and el.attrs["expiry"].endswith("Z")
    return el.attrs["token"]


async def login(store: FastTokens, token: str, mechanism: str = "HT-SHA-256-NONE", creds: Any = CREDS,
                client: str = CLIENT) -> TokenCheck:
    """The server's side of an HT login whose client computed its proof from ``token``."""
    ht = HashedToken(mechanism, {"tls-server-end-point": b"e" * 32})
    proof = hmac.digest(token.encode(), b"Initiator" + ht.cb_data, "sha256")
    ht.start(USER.encode() + b"\0" + proof)
    return await store.check(USER, HOST, client, mechanism, creds, ht.verify)


async def test_a_token_logs_in_and_only_its_hash_is_stored(storage: Storage) -> None:
    clock = Clock()
    store = tokens(storage, clock)
    token = await issue(store)
    assert len(token) > 64
    assert (await login(store, token)).ok
    stored = await storage.map(STORE).items(f"{USER}@{HOST}")
    assert len(stored) == 1
    (key, value), = stored.items()
    assert CLIENT not in key and token.encode() not in value and base64.b64encode(token.encode()) not in value


async def test_a_wrong_token_another_client_or_another_mechanism_fails(storage: Storage) -> None:
    store = tokens(storage, Clock())
    token = await issue(store)
    assert await login(store, token[:-2] + "xx") == TokenCheck(False)
    assert await login(store, token, client="another") == TokenCheck(False)
    assert await login(store, token, mechanism="HT-SHA-256-ENDP") == TokenCheck(False)


async def test_an_expired_token_fails_credentials_expired_and_is_deleted(storage: Storage) -> None:
    clock = Clock()
    store = tokens(storage, clock)
    token = await issue(store)
    clock.now += LIFETIME.default
    assert await login(store, token) == TokenCheck(False, "credentials-expired")
    assert await login(store, token) == TokenCheck(False)
    assert await storage.map(STORE).items(f"{USER}@{HOST}") == {}


async def test_a_password_change_invalidates_tokens(storage: Storage) -> None:
    store = tokens(storage, Clock())
    token = await issue(store)
    assert not (await login(store, token, creds=derive("new password", 1))).ok


async def test_rotation_keeps_the_old_token_until_the_new_one_is_used_then_drops_it(storage: Storage) -> None:
    clock = Clock()
    store = tokens(storage, clock)
    old = await issue(store)
    assert await login(store, old) == TokenCheck(True, rotate=False)
    clock.now += ROTATE_AFTER.default
    assert await login(store, old) == TokenCheck(True, rotate=True)
    new = await issue(store)  # the client may never receive it
    assert (await login(store, old)).ok
    assert (await login(store, new)).ok
    assert not (await login(store, old)).ok  # the new token was used: the old one is gone


async def test_a_second_issue_drops_the_token_that_was_never_used(storage: Storage) -> None:
    store = tokens(storage, Clock())
    first = await issue(store)
    second = await issue(store)
    assert not (await login(store, first)).ok
    assert (await login(store, second)).ok


async def test_invalidate_drops_the_clients_tokens(storage: Storage) -> None:
    store = tokens(storage, Clock())
    token = await issue(store)
    await store.invalidate(USER, HOST, CLIENT)
    assert not (await login(store, token)).ok
    assert await storage.map(STORE).items(f"{USER}@{HOST}") == {}


async def test_account_deletion_deletes_the_tokens(storage: Storage) -> None:
    await storage.accounts.create(f"{USER}@{HOST}", CREDS)
    store = tokens(storage, Clock())
    token = await issue(store)
    await storage.accounts.delete(f"{USER}@{HOST}")
    assert await storage.map(STORE).items(f"{USER}@{HOST}") == {}
    assert not (await login(store, token)).ok
