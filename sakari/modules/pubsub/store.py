"""Nodes kept in the generic stores, keyed by owner (an account for PEP, a service's domain for a service).

Two maps per kind of owner: node configurations (small, read to learn which
nodes exist and who may see them) and node items (read only when items are
wanted), so a contact coming online does not load every avatar of its roster.
Deleting an account deletes both, as for every store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from sakari.modules.pubsub.config import NodeConfig
from sakari.modules.pubsub.node import Node
from sakari.modules.pubsub.protocol import NS_EVENT
from sakari.storage.base import Storage
from sakari.xml import fragment
from sakari.xml.element import Element


class NodeStore:
    def __init__(self, storage: Storage, prefix: str) -> None:
        self._nodes = storage.map(f"{prefix}-nodes")
        self._items = storage.map(f"{prefix}-items")
        self._busy: dict[tuple[str, str], asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def editing(self, owner: str, name: str) -> AsyncIterator[None]:
        """Serialize read-modify-write of one node, so two publishes at once both land."""
        key = (owner, name)
        lock = self._busy.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._busy.get(key) is lock:
                del self._busy[key]

    async def configs(self, owner: str) -> dict[str, Node]:
        """Every node of the owner, without items."""
        return {name: _node(name, data) for name, data in (await self._nodes.items(owner)).items()}

    async def get(self, owner: str, name: str, with_items: bool = True) -> Node | None:
        data = await self._nodes.get(owner, name)
        if data is None:
            return None
        node = _node(name, data)
        if with_items:
            await self.load_items(owner, node)
        return node

    async def load_items(self, owner: str, node: Node) -> None:
        data = await self._items.get(owner, node.name)
        if data is not None:
            node.items = {item.attrs["id"]: item for item in fragment.load(data).find_all("item", NS_EVENT)}

    async def save(self, owner: str, node: Node, items: bool = True, config: bool = True) -> None:
        if config:
            record = {"config": node.config.to_dict(), "affiliations": node.affiliations, "subscriptions": node.subscriptions}
            await self._nodes.set(owner, node.name, json.dumps(record).encode())
        if items:
            wrapper = Element("items", NS_EVENT, children=list(node.items.values()))
            await self._items.set(owner, node.name, fragment.dump(wrapper) if node.items else None)

    async def delete(self, owner: str, name: str) -> None:
        await self._items.set(owner, name, None)
        await self._nodes.set(owner, name, None)


def _node(name: str, data: bytes) -> Node:
    record = json.loads(data)
    affiliations = record.get("affiliations")
    if affiliations is None:  # PEP nodes saved before affiliations had kinds kept a list of members
        affiliations = dict.fromkeys(record.get("members", ()), "member")
    return Node(name, NodeConfig.from_dict(record["config"]), affiliations=affiliations,
                subscriptions=record.get("subscriptions", {}))
