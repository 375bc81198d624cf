"""XEP-0163 Personal Eventing Protocol: a pubsub service on every account, on the XEP-0060 node engine.

- Publish auto-creates nodes (§7.1.5 publish-options become their configuration, and are
  preconditions on a node that exists), retract, items (all, max_items, by id), create,
  configure, delete, purge and whitelist affiliations (XEP-0060 §6–§8).
- Notifications go to the owner's resources and to each contact's resources whose caps
  (XEP-0115, the ``caps`` module) show ``NODE+notify`` and who may see the node under its
  access model (presence by default, open, roster, whitelist). Nothing is remembered per
  contact: recipients are worked out from the roster and the router when an item is published.
- Explicit subscriptions (XEP-0060 §6.1, §6.2, §5.6): whoever may see a node can subscribe to it
  (a bare JID or one resource) and is notified whatever its caps say, until it unsubscribes or
  may no longer see the node; the subscription is kept with the node.
- The last item of each wanted node goes to a resource on its initial presence, and again
  for nodes it newly wants when its caps change (XEP-0163 §4.3).
- XEP-0223: nodes published with persist_items and the whitelist model keep private data.

Bounds: nodes per account, items per node and the size of an item are options.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sakari.config import declare, positive
from sakari.core.events import SessionEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.router import Resource
from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.caps import CAPS_CHANGED, CapsEvent
from sakari.modules.presence import PRESENCE_INITIAL
from sakari.modules.pubsub.config import (
    NodeConfig,
    check_access_model,
    check_preconditions,
    config_form,
    configure,
    meta_data_form,
    publish_options,
)
from sakari.modules.pubsub.delivery import headline_resources, send_each
from sakari.modules.pubsub.node import Node
from sakari.modules.pubsub.protocol import (
    NS_OWNER,
    NS_PUBSUB,
    Notification,
    PubsubError,
    Request,
    delete_event,
    find_form,
    items_event,
    items_result,
    own_subscriber,
    parse_request,
    publication,
    publish_result,
    purge_event,
    require_node,
    retract_event,
    retracted_ids,
    retrieval,
)
from sakari.modules.pubsub.store import NodeStore
from sakari.modules.util import payload
from sakari.storage.base import RosterItem
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NOTIFY = "+notify"
PEP_PUBLISHED = "pep/published"  # PepEvent: an item was published on an account's node
PEP_ACCESS_MODELS = ("open", "presence", "roster", "whitelist")
_SERVED = "pep-served"  # session props: nodes whose last items this resource was sent
_SEEN = "pep-seen"  # session props: accounts whose last items this resource was sent

MAX_NODES = declare("pep.max_nodes", 100, "PEP nodes one account may have; creating one more is refused (not-allowed).", positive)
MAX_ITEMS = declare(
    "pep.max_items", 256,
    "Items one PEP node keeps at most; a node asking for more (or for \"max\") keeps this many, the oldest go first.",
    positive,
)
MAX_ITEM_SIZE = declare(
    "pep.max_item_size", 131072,
    "Largest PEP item payload in bytes, as serialized; a bigger one is refused (not-acceptable, payload-too-big).",
    positive,
)

FEATURES = [
    "access-open", "access-presence", "access-roster", "access-whitelist", "auto-create", "auto-subscribe",
    "config-node", "create-and-configure", "create-nodes", "delete-items", "delete-nodes", "filtered-notifications",
    "last-published", "item-ids", "manage-affiliations", "member-affiliation", "persistent-items", "presence-notifications",
    "publish", "publish-options", "purge-nodes", "retract-items", "retrieve-affiliations", "retrieve-default",
    "retrieve-items", "retrieve-subscriptions", "subscribe",
]


@dataclass(frozen=True, slots=True)
class PepEvent:
    owner: JID
    node: str
    item: Element  # as stored: <item id='…'> in the event namespace


def _truthy(text: str | None) -> bool:
    return text in ("1", "true")


@functools.lru_cache(maxsize=1024)
def notified_nodes(features: frozenset[str]) -> frozenset[str]:
    """The nodes a set of caps features asks notifications of. Every resource of one client version shares
    the caps cache's set, so a publish to many contacts looks each version up instead of scanning its
    features (a hundred, for real clients) once per recipient."""
    return frozenset(f[: -len(NOTIFY)] for f in features if f.endswith(NOTIFY))


def _allowed(node: Node, owner: str, bare: str, item: RosterItem | None) -> bool:
    """Whether ``bare`` may see the node, given the owner's roster item for it (if any)."""
    if item is None or not item.listed:
        return node.may_see(bare, owner, None)
    return node.may_see(bare, owner, item.subscription, tuple(item.groups))


class Pep:
    def __init__(self, mod: ModuleAPI) -> None:
        self.mod = mod
        self.router = mod.router
        self.rosters = mod.require("roster")
        self.caps = mod.require("caps")
        self.store = NodeStore(mod.storage, "pep")

    # --- who may see, who wants ------------------------------------------------------
    async def may_see(self, node: Node, owner: JID, requester: JID) -> bool:
        if node.config.access_model == "open" or requester.bare == owner:
            return True
        return _allowed(node, str(owner), str(requester.bare), await self.rosters.item(str(owner), str(requester.bare)))

    async def check_access(self, node: Node, owner: JID, requester: JID) -> None:
        """XEP-0060 §6.5.9: each access model refuses with its own condition."""
        if await self.may_see(node, owner, requester):
            return
        model = node.config.access_model
        if model == "presence":
            raise PubsubError("not-authorized", "presence-subscription-required")
        if model == "roster":
            raise PubsubError("not-authorized", "not-in-roster-group")
        raise PubsubError("not-allowed", "closed-node")

    def wanted(self, resource: Resource) -> frozenset[str]:
        """The nodes a resource asked notifications of (``NODE+notify`` among its caps features)."""
        features = self.caps.features(resource)
        return notified_nodes(features) if features else frozenset()

    async def audience(self, owner: JID, node: Node) -> list[Resource]:
        """Available resources that want this node's notifications and may see it: the owner's and its contacts'."""
        roster = await self.rosters.get(str(owner))
        name = node.name
        recipients = [r for r in self.router.resources(owner) if r.available and name in self.wanted(r)]
        for jid, item in roster.items.items():
            if not item.listed or not node.may_see(jid, str(owner), item.subscription, tuple(item.groups)):
                continue
            try:
                contact = parse_jid(jid)
            except JIDError:
                continue
            recipients.extend(r for r in self.router.resources(contact) if r.available and name in self.wanted(r))
        if node.subscriptions:
            taken = {r.jid for r in recipients}
            for jid in await self.subscribers(owner, node, roster.items):
                for resource in headline_resources(self.router, jid):
                    if resource.jid not in taken:
                        taken.add(resource.jid)
                        recipients.append(resource)
        return recipients

    async def subscribers(self, owner: JID, node: Node, roster: dict[str, RosterItem]) -> list[JID]:
        """The node's explicit subscribers on this server. One who may no longer see the node (the owner
        removed the contact, say) loses the subscription, as the access model says it cannot have one; so
        does a deleted account, looked up only for subscribers with nothing online."""
        found, lost = [], []
        for text, state in node.subscriptions.items():
            jid = parse_jid(text)
            bare = str(jid.bare)
            local = self.mod.hosts.has_accounts(jid.domain)
            if not _allowed(node, str(owner), bare, roster.get(bare)) or (
                    local and not self.router.resources(jid.bare) and await self.mod.storage.accounts.get(bare) is None):
                lost.append(text)
            elif state == "subscribed" and local:
                found.append(jid)
        if lost:
            async with self.store.editing(str(owner), node.name):
                fresh = await self.store.get(str(owner), node.name, with_items=False)
                if fresh is not None:
                    for text in lost:
                        fresh.subscriptions.pop(text, None)
                    await self.store.save(str(owner), fresh, items=False)
        return found

    async def notify(self, owner: JID, node: Node, event: Element) -> None:
        """One serialization of the event, whatever the number of recipients."""
        recipients = await self.audience(owner, node)
        if not recipients:
            return
        notification = Notification(event, str(owner))
        for resource in recipients:
            message, data = notification.to(resource.jid.text)
            send_each(self.router, (resource,), message, data)

    # --- last items on presence ------------------------------------------------------
    async def send_last_items(self, resource: Resource, nodes: frozenset[str]) -> None:
        """The last item of each of these nodes, from the account itself and every contact whose presence it sees."""
        session = resource.session
        if session is None:
            return
        me = session.bare
        roster = await self.rosters.get(str(me))
        owners = [me] + [
            parse_jid(jid) for jid, item in roster.items.items()
            if item.subscription in ("to", "both") and "@" in jid and self.mod.hosts.has_accounts(jid.rpartition("@")[2])
        ]
        session.props.setdefault(_SEEN, set()).update(owners)
        for owner in owners:
            await self.send_last_of(owner, resource, nodes)

    async def send_last_of(self, owner: JID, resource: Resource, nodes: frozenset[str]) -> None:
        session = resource.session
        if session is None or not nodes:
            return
        for node in (await self.store.configs(str(owner))).values():
            if node.name not in nodes or node.config.send_last_published_item != "on_sub_and_presence":
                continue
            if not await self.may_see(node, owner, session.bare):
                continue
            await self.store.load_items(str(owner), node)
            last = node.last()
            if last is not None and await session.drained():
                message, data = Notification(items_event(node.name, [last]), str(owner)).to(session.jid_text)
                session.send(message, data)

    async def presence_initial(self, event: SessionEvent) -> None:
        resource = self.router.resource_of(event.session)
        nodes = self.wanted(resource)
        event.session.props[_SERVED] = nodes
        await self.send_last_items(resource, nodes)

    async def caps_changed(self, event: CapsEvent) -> None:
        """Caps learned or changed after the initial presence: the nodes now wanted get their last items."""
        session = event.session
        resource = self.router.resource_of(session)
        if not resource.available or _SERVED not in session.props:
            return  # the initial presence, still being broadcast, takes care of it
        served: frozenset[str] = session.props[_SERVED]
        nodes = self.wanted(resource)
        session.props[_SERVED] = served | nodes
        await self.send_last_items(resource, nodes - served)

    async def presence_seen(self, event: StanzaEvent) -> None:
        """A local account's available presence reaches a contact's resources for the first time in their
        session (a subscription was just approved, say): they get its last items, as with a probe answered
        at their initial presence. Later presences of the same account find it seen and cost a set lookup."""
        if event.stanza.attrs.get("type") is not None:
            return
        owner = event.from_jid.bare
        if owner == event.to_jid.bare or not self.mod.hosts.has_accounts(owner.domain):
            return
        for resource in self.router.resources(event.to_jid):
            session = resource.session
            if not resource.available or session is None or _SERVED not in session.props:
                continue
            seen: set[JID] = session.props.setdefault(_SEEN, set())
            if owner not in seen:
                seen.add(owner)
                await self.send_last_of(owner, resource, self.wanted(resource))
        return

    # --- publish, retract -------------------------------------------------------------
    async def publish(self, owner: JID, request: Request) -> Element:
        name = require_node(request)
        item_id, content, form = publication(request, self.mod.option(MAX_ITEM_SIZE, host=owner.domain))
        stored = await self.publish_item(owner, name, item_id, content, publish_options(form))
        return publish_result(name, stored.attrs["id"])

    async def publish_item(self, owner: JID, name: str, item_id: str | None, content: Element,
                           wanted: dict[str, Any]) -> Element:
        """Publish on the account's behalf (its client, or a module converting its data): the node is made with
        ``wanted`` as its configuration, or must already have it; contacts are notified. Returns the stored item."""
        async with self.store.editing(str(owner), name):
            node = await self.store.get(str(owner), name)
            created = node is None
            if node is None:
                node = await self.new_node(owner, name, check_access_model(NodeConfig(**wanted), PEP_ACCESS_MODELS))
            else:
                check_preconditions(node.config, wanted)
            stored, _ = node.publish(item_id, content, self.mod.option(MAX_ITEMS, host=owner.domain))
            await self.store.save(str(owner), node, config=created)
        await self.notify(owner, node, items_event(name, [stored]))
        await self.mod.events.fire_all(PEP_PUBLISHED, PepEvent(owner, name, stored))
        return stored

    async def new_node(self, owner: JID, name: str, config: NodeConfig) -> Node:
        limit = self.mod.option(MAX_NODES, host=owner.domain)
        if len(await self.store.configs(str(owner))) >= limit:
            raise PubsubError("not-allowed", "max-nodes-exceeded", f"an account may have at most {limit} nodes")
        return Node(name, config)

    async def retract(self, owner: JID, request: Request) -> bool:
        await self.retract_items(owner, require_node(request), retracted_ids(request),
                                 _truthy(request.action.attrs.get("notify")))
        return True

    async def retract_items(self, owner: JID, name: str, ids: list[str], notify: bool = False) -> None:
        """Retract on the account's behalf; contacts hear of it if the node or the request says so."""
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name)
            for item_id in ids:
                node.retract(item_id)
            await self.store.save(str(owner), node, config=False)
        if node.config.notify_retract or notify:
            await self.notify(owner, node, retract_event(name, ids))

    async def existing(self, owner: JID, name: str, with_items: bool = True) -> Node:
        node = await self.store.get(str(owner), name, with_items)
        if node is None:
            raise StanzaError("item-not-found", f"no node {name}")
        return node

    # --- explicit subscriptions (XEP-0060 §6.1, §6.2, §5.6) ----------------------------------
    async def subscribe(self, owner: JID, requester: JID, request: Request) -> str:
        """Whoever may see the node is subscribed at once (no model here asks the owner to approve).
        Returns the JID subscribed."""
        name = require_node(request)
        subscriber = own_subscriber(requester, request)
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name, with_items=False)
            await self.check_access(node, owner, requester)
            node.subscriptions[subscriber] = "subscribed"
            await self.store.save(str(owner), node, items=False)
        return subscriber

    async def send_last_to(self, owner: JID, name: str, subscriber: str) -> None:
        """§6.1.7: a new subscriber gets the last item, unless the node says never."""
        node = await self.store.get(str(owner), name)
        last = node.last() if node is not None and node.config.send_last_published_item != "never" else None
        if last is None:
            return
        notification = Notification(items_event(name, [last]), str(owner))
        for resource in headline_resources(self.router, parse_jid(subscriber)):
            message, data = notification.to(resource.jid.text)
            send_each(self.router, (resource,), message, data)

    async def unsubscribe(self, owner: JID, requester: JID, request: Request) -> bool:
        name = require_node(request)
        subscriber = own_subscriber(requester, request)
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name, with_items=False)
            if node.subscriptions.pop(subscriber, None) is None:
                raise PubsubError("unexpected-request", "not-subscribed")
            await self.store.save(str(owner), node, items=False)
        return True

    async def own_subscriptions(self, owner: JID, requester: JID, request: Request) -> Element:
        """§5.6: the requester's subscriptions to this account's nodes (all, or the one named)."""
        result = Element("pubsub", NS_PUBSUB)
        wrapper = result.add("subscriptions", attrs={"node": request.node} if request.node else None)
        bare = str(requester.bare)
        for node in (await self.store.configs(str(owner))).values():
            if request.node and node.name != request.node:
                continue
            for jid, state in sorted(node.subscriptions.items()):
                if jid == bare or jid.startswith(bare + "/"):
                    wrapper.add("subscription", attrs={"node": node.name, "jid": jid, "subscription": state})
        return result

    # --- retrieval ----------------------------------------------------------------------
    async def items(self, owner: JID, requester: JID, request: Request) -> Element:
        name = require_node(request)
        node = await self.existing(owner, name)
        await self.check_access(node, owner, requester)
        max_items, ids = retrieval(request)
        return items_result(name, node.select(max_items, ids))

    async def own_affiliations(self, owner: JID) -> Element:
        result = Element("pubsub", NS_PUBSUB)
        wrapper = result.add("affiliations")
        for name in sorted(await self.store.configs(str(owner))):
            wrapper.add("affiliation", attrs={"node": name, "affiliation": "owner"})
        return result

    # --- owner requests -------------------------------------------------------------------
    async def create(self, owner: JID, request: Request) -> Element | bool:
        name = require_node(request)
        form = find_form(request.options)
        async with self.store.editing(str(owner), name):
            if await self.store.get(str(owner), name, with_items=False) is not None:
                raise StanzaError("conflict", f"the node {name} exists")
            config = check_access_model(configure(NodeConfig(), form) if form is not None else NodeConfig(), PEP_ACCESS_MODELS)
            await self.store.save(str(owner), await self.new_node(owner, name, config))
        return True

    async def configure_node(self, owner: JID, request: Request) -> bool:
        name = require_node(request)
        form = find_form(request.action)
        if form is None:
            raise StanzaError("bad-request", "send the configuration form")
        if form.attrs.get("type") == "cancel":
            return True
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name, with_items=False)
            node.config = check_access_model(configure(node.config, form), PEP_ACCESS_MODELS)
            await self.store.save(str(owner), node, items=False)
        return True

    async def delete(self, owner: JID, request: Request) -> bool:
        name = require_node(request)
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name, with_items=False)
            audience_event = delete_event(name) if node.config.notify_delete else None
            if audience_event is not None:
                # Those who could see it hear of its deletion; afterwards nobody can.
                await self.notify(owner, node, audience_event)
            await self.store.delete(str(owner), name)
        return True

    async def purge(self, owner: JID, request: Request) -> bool:
        name = require_node(request)
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name, with_items=False)
            node.purge()
            await self.store.save(str(owner), node, config=False)
        await self.notify(owner, node, purge_event(name))
        return True

    async def affiliations(self, owner: JID, request: Request, change: bool) -> Element | bool:
        name = require_node(request)
        async with self.store.editing(str(owner), name):
            node = await self.existing(owner, name, with_items=False)
            if not change:
                result = Element("pubsub", NS_OWNER)
                wrapper = result.add("affiliations", attrs={"node": name})
                wrapper.add("affiliation", attrs={"jid": str(owner), "affiliation": "owner"})
                for jid in sorted(node.affiliations):
                    wrapper.add("affiliation", attrs={"jid": jid, "affiliation": node.affiliations[jid]})
                return result
            members = {jid for jid, affiliation in node.affiliations.items() if affiliation == "member"}
            for entry in request.action.find_all("affiliation"):
                try:
                    jid = str(parse_jid(entry.attrs.get("jid", "")).bare)
                except JIDError as e:
                    raise StanzaError("jid-malformed", e.text) from None
                affiliation = entry.attrs.get("affiliation")
                if affiliation in ("member", "publisher"):
                    members.add(jid)
                elif affiliation == "none":
                    members.discard(jid)
                else:
                    raise StanzaError("not-acceptable", f"a PEP node has members only, not {affiliation}")
            node.affiliations = dict.fromkeys(sorted(members), "member")
            await self.store.save(str(owner), node, items=False)
        return True

    # --- dispatch ----------------------------------------------------------------------
    async def on_pubsub_set(self, event: StanzaEvent) -> Element | bool:
        request = parse_request(payload(event))
        owner = event.to_jid.bare
        verb = request.verb
        if verb == "publish":
            return await self.publish(owner, request)
        if verb == "retract":
            return await self.retract(owner, request)
        if verb == "create":
            return await self.create(owner, request)
        if verb in ("subscribe", "unsubscribe"):
            return await self.on_subscription_set(event)
        raise PubsubError("feature-not-implemented", "unsupported", feature=_feature_of(verb))

    async def on_subscription_set(self, event: StanzaEvent) -> Element | bool:
        """Subscribe or unsubscribe, to one's own account's node or another's; anything else to another's
        nodes is for their owner only."""
        request = parse_request(payload(event))
        owner = event.to_jid.bare
        if request.verb == "unsubscribe":
            return await self.unsubscribe(owner, event.from_jid, request)
        if request.verb != "subscribe":
            if request.verb == "options":
                raise PubsubError("feature-not-implemented", "unsupported", feature=_feature_of(request.verb))
            _forbidden(event)
        subscriber = await self.subscribe(owner, event.from_jid, request)
        result = Element("pubsub", NS_PUBSUB)
        result.add("subscription", attrs={"node": request.node, "jid": subscriber, "subscription": "subscribed"})
        # §6.1.7: the last item comes after the result, so the result is sent here and nothing more by the core.
        self.router.reply_result(event, result)
        await self.send_last_to(owner, request.node, subscriber)
        return False

    async def on_pubsub_get(self, event: StanzaEvent) -> Element:
        request = parse_request(payload(event))
        owner = event.to_jid.bare
        if request.verb == "items":
            return await self.items(owner, event.from_jid, request)
        if request.verb == "affiliations" and event.from_jid.bare == owner:
            return await self.own_affiliations(owner)
        if request.verb == "subscriptions":
            return await self.own_subscriptions(owner, event.from_jid, request)
        if request.verb == "default":
            result = Element("pubsub", NS_PUBSUB)
            result.add("default").append(config_form(NodeConfig()))
            return result
        raise PubsubError("feature-not-implemented", "unsupported", feature=_feature_of(request.verb))

    async def on_owner_get(self, event: StanzaEvent) -> Element | bool:
        request = parse_request(payload(event))
        owner = event.to_jid.bare
        result = Element("pubsub", NS_OWNER)
        if request.verb == "configure":
            node = await self.existing(owner, require_node(request), with_items=False)
            result.add("configure", attrs={"node": node.name}).append(config_form(node.config))
            return result
        if request.verb == "default":
            result.add("default").append(config_form(NodeConfig()))
            return result
        if request.verb == "affiliations":
            return await self.affiliations(owner, request, change=False)
        raise PubsubError("feature-not-implemented", "unsupported", feature=_feature_of(request.verb))

    async def on_owner_set(self, event: StanzaEvent) -> Element | bool:
        request = parse_request(payload(event))
        owner = event.to_jid.bare
        verb = request.verb
        if verb == "configure":
            return await self.configure_node(owner, request)
        if verb == "delete":
            return await self.delete(owner, request)
        if verb == "purge":
            return await self.purge(owner, request)
        if verb == "affiliations":
            return await self.affiliations(owner, request, change=True)
        raise PubsubError("feature-not-implemented", "unsupported", feature=_feature_of(verb))

    # --- discovery -----------------------------------------------------------------------
    async def disco_info(self, event: StanzaEvent) -> Element | None:
        name = payload(event).attrs.get("node")
        if not name:
            return None  # the account itself: the disco module answers
        owner = event.to_jid.bare
        node = await self.existing(owner, name, with_items=False)
        await self.check_access(node, owner, event.from_jid)
        query = Element("query", NS_INFO, {"node": name})
        query.add("identity", attrs={"category": "pubsub", "type": "leaf"})
        query.add("feature", attrs={"var": NS_PUBSUB})
        query.append(meta_data_form(node.config, [str(owner)]))
        return query

    async def disco_items(self, event: StanzaEvent) -> Element | None:
        owner = event.to_jid.bare
        name = payload(event).attrs.get("node")
        query = Element("query", NS_ITEMS, {"node": name} if name else None)
        if name:
            node = await self.existing(owner, name)
            await self.check_access(node, owner, event.from_jid)
            for item_id in node.items:
                query.add("item", attrs={"jid": str(owner), "name": item_id})
            return query
        if event.from_jid.bare != owner and await self.mod.storage.accounts.get(str(owner)) is None:
            return None  # no such account: the disco module answers for it
        for node in (await self.store.configs(str(owner))).values():
            if await self.may_see(node, owner, event.from_jid):
                query.add("item", attrs={"jid": str(owner), "node": node.name})
        return query


def _feature_of(verb: str) -> str:
    return {"subscribe": "subscribe", "unsubscribe": "subscribe", "options": "subscription-options",
            "subscriptions": "retrieve-subscriptions", "affiliations": "retrieve-affiliations"}.get(verb, verb)


def _forbidden(event: StanzaEvent) -> Any:
    raise StanzaError("forbidden", "only the account's owner may change its nodes")


def setup(mod: ModuleAPI) -> None:
    mod.depends("roster")
    mod.depends("presence")
    mod.depends("caps")
    pep = Pep(mod)
    mod.provide("pep", pep)
    mod.events.declare(PEP_PUBLISHED)
    mod.add_account_identity("pubsub", "pep")
    mod.add_account_feature(NS_PUBSUB)
    for feature in FEATURES:
        mod.add_account_feature(f"{NS_PUBSUB}#{feature}")
    mod.hook(f"iq-set/self/{NS_PUBSUB}:pubsub", pep.on_pubsub_set)
    mod.hook(f"iq-get/self/{NS_PUBSUB}:pubsub", pep.on_pubsub_get)
    mod.hook(f"iq-get/bare/{NS_PUBSUB}:pubsub", pep.on_pubsub_get)
    mod.hook(f"iq-get/self/{NS_OWNER}:pubsub", pep.on_owner_get)
    mod.hook(f"iq-set/self/{NS_OWNER}:pubsub", pep.on_owner_set)
    for kind in ("get", "set"):
        mod.hook(f"iq-{kind}/bare/{NS_OWNER}:pubsub", _forbidden)
    mod.hook(f"iq-set/bare/{NS_PUBSUB}:pubsub", pep.on_subscription_set)
    for target in ("self", "bare"):
        mod.hook(f"iq-get/{target}/{NS_INFO}:query", pep.disco_info)
        mod.hook(f"iq-get/{target}/{NS_ITEMS}:query", pep.disco_items)
    mod.hook(PRESENCE_INITIAL, pep.presence_initial)
    mod.hook(CAPS_CHANGED, pep.caps_changed)
    mod.hook("presence/bare", pep.presence_seen, priority=10)  # observes; the presence module delivers
