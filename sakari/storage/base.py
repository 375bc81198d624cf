"""Storage contracts, one narrow interface per kind of data.

Owners are bare JID strings (``user@host``); stores know nothing of stanzas
beyond bytes. Every backend passes the same contract tests
(tests/unit/test_storage_contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sakari.credentials import Credentials


@dataclass(slots=True)
class RosterItem:
    jid: str
    name: str | None = None
    subscription: str = "none"  # none | to | from | both (RFC 6121 §2.1.2.5)
    ask: bool = False  # our subscription request is pending (pending out)
    pending_in: bool = False  # the contact asked to see our presence and awaits an answer
    approved: bool = False  # pre-approved (RFC 6121 §3.4)
    listed: bool = True  # shown in the roster; False for a pending request from a stranger
    groups: list[str] = field(default_factory=list)


class AccountStore(Protocol):
    async def create(self, owner: str, creds: Credentials) -> bool: ...
    async def get(self, owner: str) -> Credentials | None: ...
    async def set_credentials(self, owner: str, creds: Credentials) -> bool: ...
    async def list(self, host: str | None = None) -> list[str]: ...
    async def delete(self, owner: str) -> bool:
        """Remove the account and every piece of data any store keeps for it."""
        ...


class RosterStore(Protocol):
    async def get(self, owner: str) -> tuple[int, dict[str, RosterItem]]: ...
    async def put(self, owner: str, item: RosterItem) -> int: ...
    async def delete(self, owner: str, jid: str) -> int: ...


class OfflineStore(Protocol):
    async def push(self, owner: str, stanza: bytes) -> None: ...
    async def list(self, owner: str) -> list[tuple[int, bytes]]: ...
    async def delete_through(self, owner: str, last_id: int) -> None: ...
    async def count(self, owner: str) -> int: ...


class DocumentStore(Protocol):
    """Small per-account documents by key: vCards, private XML, last activity."""

    async def get(self, owner: str, key: str) -> bytes | None: ...
    async def set(self, owner: str, key: str, data: bytes | None) -> None: ...


class BlocklistStore(Protocol):
    async def get(self, owner: str) -> set[str]: ...
    async def add(self, owner: str, jids: list[str]) -> None: ...
    async def remove(self, owner: str, jids: list[str] | None) -> None:
        """Remove these JIDs, or all of them when ``jids`` is None."""
        ...


class Storage(Protocol):
    """A backend: one store per kind of data, opened and closed together."""

    @property
    def accounts(self) -> AccountStore: ...
    @property
    def roster(self) -> RosterStore: ...
    @property
    def offline(self) -> OfflineStore: ...
    @property
    def blocklist(self) -> BlocklistStore: ...

    def documents(self, kind: str) -> DocumentStore: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...
