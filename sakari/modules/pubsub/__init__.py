"""XEP-0060 Publish-Subscribe: the node engine shared by PEP (``pep``), and a pubsub service (this module).

- ``config``: node configuration, its data forms and publish-options preconditions (§7.1.5, §8.2);
- ``node``: a node's items, affiliations, subscriptions and access, sans-IO;
- ``store``: nodes persisted through the generic stores, keyed by owner (an account, or a service's domain);
- ``protocol``: the ``<pubsub/>`` requests and the ``<event/>`` notifications as elements, and the errors;
- ``delivery``: notifications handed to local resources, serialized once for all of them;
- ``service``: the service on pubsub.<domain> (community feeds, push app servers, XEP-0357).

Enabling the ``pubsub`` module starts one service for each virtual host.
"""

from __future__ import annotations

from sakari.config import declare, one_of, positive
from sakari.core import events as E
from sakari.core.events import AccountEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.pubsub.config import NodeConfig
from sakari.modules.pubsub.protocol import NS_OWNER, NS_PUBSUB
from sakari.modules.pubsub.service import FEATURES, Policy, PubsubService
from sakari.modules.pubsub.store import NodeStore

SUBDOMAIN = declare(
    "pubsub.subdomain", "pubsub", "The service lives at <subdomain>.<domain> for each virtual host (pubsub.example.org)."
)
NAME = declare("pubsub.name", "Publish-Subscribe", "The service's name in service discovery.")
CREATE_NODES = declare(
    "pubsub.create_nodes", "local",
    "Who may create nodes: \"local\" (accounts of this server), \"admins\" (the 'admins' key) or \"anyone\".",
    one_of("local", "admins", "anyone"),
)
MAX_NODES = declare("pubsub.max_nodes", 10000, "Nodes one service may have; creating one more is refused (not-allowed).",
                    positive)
MAX_NODES_PER_OWNER = declare(
    "pubsub.max_nodes_per_owner", 100, "Nodes one account may create; one more is refused (not-allowed).", positive
)
MAX_ITEMS = declare(
    "pubsub.max_items", 256,
    "Items one node keeps at most; a node asking for more (or for \"max\") keeps this many, the oldest go first.",
    positive,
)
DEFAULT_ITEMS = declare("pubsub.default_items", 20, "Items a new node keeps unless its creator asks otherwise.", positive)
MAX_ITEM_SIZE = declare(
    "pubsub.max_item_size", 131072,
    "Largest item payload in bytes, as serialized; a bigger one is refused (not-acceptable, payload-too-big).",
    positive,
)


def setup(mod: ModuleAPI) -> None:
    store = NodeStore(mod.storage, "pubsub")
    services: list[PubsubService] = []
    for host in mod.hosts.user_domains():
        domain = f"{mod.option(SUBDOMAIN, host=host)}.{host}"
        max_items = mod.option(MAX_ITEMS, host=host)
        policy = Policy(
            create_nodes=mod.option(CREATE_NODES, host=host),
            max_nodes=mod.option(MAX_NODES, host=host),
            max_nodes_per_owner=mod.option(MAX_NODES_PER_OWNER, host=host),
            max_items=max_items,
            max_item_size=mod.option(MAX_ITEM_SIZE, host=host),
            # A service's nodes are open and keep some history by default (XEP-0060 §16.4.3); the last item
            # goes to each new subscriber, since a service has no presence to send it on.
            defaults=NodeConfig(access_model="open", max_items=min(mod.option(DEFAULT_ITEMS, host=host), max_items),
                                send_last_published_item="on_sub"),
        )
        service = PubsubService(mod, domain, policy, store)
        name = mod.option(NAME, host=host)
        features = {NS_PUBSUB, NS_OWNER} | {f"{NS_PUBSUB}#{feature}" for feature in FEATURES}
        mod.add_service(domain, service.handle, name=name, identities={("pubsub", "service", name)}, features=features)
        services.append(service)

    async def account_deleted(event: AccountEvent) -> None:
        for service in services:
            await service.account_deleted(event)

    mod.hook(E.ACCOUNT_DELETED, account_deleted)
