"""Invitation tokens (XEP-0401): random, stored only as a hash, spent use by use, gone when expired."""

from __future__ import annotations

import json

import pytest

from sakari.modules.register.tokens import STORE, Invite, InviteStore, parse_duration, token_key
from sakari.storage.base import Storage
from test_storage_contract import backend, postgres_database, storage  # noqa: F401

HOST = "example.org"
NOW = 1_800_000_000.0


@pytest.mark.parametrize("text, seconds", [("3600", 3600), ("90m", 5400), ("12h", 43200), ("7d", 604800), ("2W", 1209600)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "7 days", "-1h", "1.5h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


async def test_the_token_is_random_and_only_its_hash_is_stored(storage: Storage) -> None:
    invites = InviteStore(storage.documents(STORE))
    first = await invites.create(HOST, Invite(NOW + 60, 1))
    second = await invites.create(HOST, Invite(NOW + 60, 1))
    assert first != second and len(first) >= 24
    stored = await storage.documents(STORE).items(HOST)
    assert set(stored) == {token_key(first), token_key(second)}
    assert all(first not in key and first.encode() not in value for key, value in stored.items())


async def test_each_use_is_spent_and_the_last_deletes_the_invitation(storage: Storage) -> None:
    invites = InviteStore(storage.documents(STORE))
    token = await invites.create(HOST, Invite(NOW + 60, 2, admin=True, inviter="alice@example.org"))
    invite = await invites.get(HOST, token, NOW)
    assert invite == Invite(NOW + 60, 2, True, "alice@example.org")
    await invites.spend(HOST, token, invite)
    invite = await invites.get(HOST, token, NOW)
    assert invite is not None and invite.uses == 1
    await invites.spend(HOST, token, invite)
    assert await invites.get(HOST, token, NOW) is None
    assert await storage.documents(STORE).items(HOST) == {}


async def test_an_expired_invitation_is_not_valid_and_goes(storage: Storage) -> None:
    invites = InviteStore(storage.documents(STORE))
    token = await invites.create(HOST, Invite(NOW, 1))
    assert await invites.get(HOST, token, NOW - 1) is not None
    assert await invites.get(HOST, token, NOW) is None
    assert await storage.documents(STORE).items(HOST) == {}


async def test_a_token_is_valid_only_for_its_domain_and_unknown_tokens_are_not(storage: Storage) -> None:
    invites = InviteStore(storage.documents(STORE))
    token = await invites.create(HOST, Invite(NOW + 60, 1))
    assert await invites.get("other.example", token, NOW) is None
    assert await invites.get(HOST, token + "x", NOW) is None
    assert await invites.get(HOST, "", NOW) is None


async def test_sweep_removes_only_expired_invitations(storage: Storage) -> None:
    invites = InviteStore(storage.documents(STORE))
    await invites.create(HOST, Invite(NOW - 1, 1))
    kept = await invites.create(HOST, Invite(NOW + 60, 1))
    assert await invites.sweep(HOST, NOW) == 1
    assert list(await storage.documents(STORE).items(HOST)) == [token_key(kept)]
    assert json.loads((await storage.documents(STORE).items(HOST))[token_key(kept)])["uses"] == 1
