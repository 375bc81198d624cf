"""Pubsub nodes in the generic stores, on every storage backend: configuration, affiliations, subscriptions and
items come back as saved, PEP nodes saved with a plain member list still load, and a deleted node is gone."""

from __future__ import annotations

import json

import pytest
from test_storage_contract import backend, postgres_database, storage  # noqa: F401

from sakari.modules.pubsub.config import NodeConfig
from sakari.modules.pubsub.node import Node
from sakari.modules.pubsub.store import NodeStore
from sakari.storage.base import Storage
from sakari.xml.element import Element

pytestmark = pytest.mark.asyncio

SERVICE = "pubsub.example.org"


async def test_a_node_loads_as_it_was_saved(storage: Storage) -> None:
    store = NodeStore(storage, "pubsub")
    node = Node("news", NodeConfig(access_model="authorize", max_items=5, publish_model="open", title="News"),
                affiliations={"a@example.org": "owner", "b@example.org": "outcast"},
                subscriptions={"c@example.org": "subscribed", "d@example.org/phone": "pending"})
    node.publish("one", Element("entry", "http://www.w3.org/2005/Atom", children=["first"]), server_max=10)
    await store.save(SERVICE, node)
    again = NodeStore(storage, "pubsub")
    loaded = await again.get(SERVICE, "news")
    assert loaded is not None
    assert (loaded.config, loaded.affiliations, loaded.subscriptions) == (node.config, node.affiliations, node.subscriptions)
    assert list(loaded.items) == ["one"] and loaded.items["one"].serialize() == node.items["one"].serialize()
    await again.delete(SERVICE, "news")
    assert await NodeStore(storage, "pubsub").configs(SERVICE) == {}


async def test_pep_nodes_saved_with_a_member_list_load_with_member_affiliations(storage: Storage) -> None:
    record = {"config": NodeConfig(access_model="whitelist").to_dict(), "members": ["b@example.org"]}
    await storage.map("pep-nodes").set("a@example.org", "secret", json.dumps(record).encode())
    node = await NodeStore(storage, "pep").get("a@example.org", "secret", with_items=False)
    assert node is not None and node.affiliations == {"b@example.org": "member"}
    assert node.may_see("b@example.org", "a@example.org", None)
