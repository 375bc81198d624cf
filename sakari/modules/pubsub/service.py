"""XEP-0060 Publish-Subscribe as a service on its own domain (pubsub.<domain>), on the node engine PEP uses.

- Nodes are created instant or named (§8.1), configured (§8.2), deleted (§8.4) and purged (§8.5) by
  their owners; the ``admins`` act as owners of every node.
- Publish (§7.1) by the publish model (publishers, subscribers, open), with publish-options as
  preconditions; retract (§7.2); items by count or id (§6.5).
- Subscriptions (§6.1, §6.2) are ``subscribed``, or ``pending`` on an ``authorize`` node until an
  owner approves, by the form message of §8.6 or by managing subscriptions (§8.8).
- Affiliations owner, publisher, member and outcast, managed by owners (§8.9); a node always keeps
  an owner.
- Access models open, authorize and whitelist; a service has no roster, so presence and roster are
  refused (unsupported-access-model).
- Notifications go to the subscribers, serialized once for all of them.

The service keeps nothing in memory: every request reads its node from storage, so a restart or a
second node of a cluster sees the same state. Subscribers and affiliates are bare or full JIDs of
any server; an account's deletion takes them off every node.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sakari.core.events import AccountEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID, parse_jid
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
from sakari.modules.pubsub.node import AFFILIATIONS, READERS, SUBSCRIPTION_STATES, Node
from sakari.modules.pubsub.protocol import (
    NS_DATA,
    NS_OWNER,
    NS_PUBSUB,
    Notification,
    PubsubError,
    Request,
    delete_event,
    find_form,
    form_fields,
    items_event,
    items_result,
    jid_text,
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
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
FORM_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization"
ACCESS_MODELS = ("open", "authorize", "whitelist")
PUBLISHERS = ("owner", "publisher")
FEATURES = [
    "access-authorize", "access-open", "access-whitelist", "config-node", "create-and-configure", "create-nodes",
    "delete-items", "delete-nodes", "get-pending", "instant-nodes", "item-ids", "manage-affiliations",
    "manage-subscriptions", "member-affiliation", "modify-affiliations", "outcast-affiliation", "persistent-items",
    "publish", "publish-options", "publisher-affiliation", "purge-nodes", "retract-items", "retrieve-affiliations",
    "retrieve-default", "retrieve-items", "retrieve-subscriptions", "subscribe", "subscription-notifications",
]


@dataclass(frozen=True, slots=True)
class Policy:
    create_nodes: str  # admins, local or anyone
    max_nodes: int  # on the whole service
    max_nodes_per_owner: int
    max_items: int
    max_item_size: int
    defaults: NodeConfig


Action = Callable[[JID, Request], Awaitable[Element | bool]]


class PubsubService:
    def __init__(self, mod: ModuleAPI, domain: str, policy: Policy, store: NodeStore) -> None:
        self.mod = mod
        self.domain = domain
        self.jid = parse_jid(domain)
        self.policy = policy
        self.store = store
        self.actions: dict[tuple[str, str, str], Action] = {
            (NS_PUBSUB, "set", "create"): self.create,
            (NS_PUBSUB, "set", "publish"): self.publish,
            (NS_PUBSUB, "set", "retract"): self.retract,
            (NS_PUBSUB, "set", "subscribe"): self.subscribe,
            (NS_PUBSUB, "set", "unsubscribe"): self.unsubscribe,
            (NS_PUBSUB, "get", "items"): self.items,
            (NS_PUBSUB, "get", "subscriptions"): self.own_subscriptions,
            (NS_PUBSUB, "get", "affiliations"): self.own_affiliations,
            (NS_PUBSUB, "get", "default"): self.default,
            (NS_OWNER, "get", "default"): self.default,
            (NS_OWNER, "get", "configure"): self.get_configuration,
            (NS_OWNER, "set", "configure"): self.set_configuration,
            (NS_OWNER, "set", "delete"): self.delete,
            (NS_OWNER, "set", "purge"): self.purge,
            (NS_OWNER, "get", "affiliations"): self.get_affiliations,
            (NS_OWNER, "set", "affiliations"): self.set_affiliations,
            (NS_OWNER, "get", "subscriptions"): self.get_subscriptions,
            (NS_OWNER, "set", "subscriptions"): self.set_subscriptions,
        }

    # --- dispatch -----------------------------------------------------------------------
    async def handle(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        if event.to_jid.local or event.to_jid.resource:
            return None  # a pubsub service has no addresses of its own: the router refuses
        if stanza.name == "message":
            return await self.authorization_answer(event)
        child = stanza.first_child()
        itype = stanza.attrs.get("type")
        if stanza.name != "iq" or itype not in ("get", "set") or child is None:
            return None
        if child.name == "pubsub" and child.ns in (NS_PUBSUB, NS_OWNER):
            request = parse_request(child)
            action = self.actions.get((child.ns, itype, request.verb))  # type: ignore[arg-type]
            if action is None:
                raise PubsubError("feature-not-implemented", "unsupported", feature=request.verb)
            self.mod.router.reply_result(event, await action(event.from_jid, request))
            return True
        if itype == "get" and child.name == "query" and child.ns == NS_ITEMS:
            self.mod.router.reply_result(event, await self.disco_items(event.from_jid, child.attrs.get("node")))
            return True
        if itype == "get" and child.name == "query" and child.ns == NS_INFO and child.attrs.get("node"):
            self.mod.router.reply_result(event, await self.disco_info(event.from_jid, child.attrs["node"]))
            return True
        return None  # disco#info of the service, ping…: answered for every service alike

    # --- who may do what ----------------------------------------------------------------
    def affiliation(self, node: Node, jid: JID) -> str:
        if self.mod.is_admin(jid):
            return "owner"
        return node.affiliations.get(str(jid.bare), "none")

    def subscribed(self, node: Node, jid: JID) -> bool:
        return node.subscriptions.get(str(jid.bare)) == "subscribed" or node.subscriptions.get(str(jid)) == "subscribed"

    def require_owner(self, node: Node, jid: JID) -> None:
        if self.affiliation(node, jid) != "owner":
            raise StanzaError("forbidden", f"only owners may manage the node {node.name}")

    def check_access(self, node: Node, jid: JID) -> None:
        """§6.5.9 and on: who may retrieve items, each refusal with its condition."""
        affiliation = self.affiliation(node, jid)
        if affiliation == "outcast":
            raise StanzaError("forbidden", "you are banned from this node")
        model = node.config.access_model
        if affiliation in READERS or model == "open" or (model == "authorize" and self.subscribed(node, jid)):
            return
        if model == "authorize":
            raise PubsubError("not-authorized", "not-subscribed")
        raise PubsubError("not-allowed", "closed-node")

    def check_create(self, jid: JID) -> None:
        who = self.policy.create_nodes
        local = bool(jid.local) and self.mod.hosts.has_accounts(jid.domain)
        if self.mod.is_admin(jid) or who == "anyone" or (who == "local" and local):
            return
        raise StanzaError("forbidden", "only administrators may create nodes here" if who == "admins"
                          else "only accounts of this server may create nodes here")

    async def existing(self, name: str, with_items: bool = False) -> Node:
        node = await self.store.get(self.domain, name, with_items)
        if node is None:
            raise StanzaError("item-not-found", f"no node {name}")
        return node

    # --- nodes ----------------------------------------------------------------------------
    async def create(self, requester: JID, request: Request) -> Element | bool:
        self.check_create(requester)
        name = request.node or uuid.uuid4().hex  # §8.1.2: an instant node gets a name from the service
        form = find_form(request.options)
        config = configure(self.policy.defaults, form) if form is not None else self.policy.defaults
        check_access_model(config, ACCESS_MODELS)
        owner = str(requester.bare)
        async with self.store.editing(self.domain, name):
            nodes = await self.store.configs(self.domain)
            if name in nodes:
                raise StanzaError("conflict", f"the node {name} exists")
            if len(nodes) >= self.policy.max_nodes:
                raise PubsubError("not-allowed", "max-nodes-exceeded",
                                  f"this service has its most nodes ({self.policy.max_nodes})")
            owned = sum(1 for n in nodes.values() if n.affiliations.get(owner) == "owner")
            if owned >= self.policy.max_nodes_per_owner:
                raise PubsubError("not-allowed", "max-nodes-exceeded",
                                  f"one account may own at most {self.policy.max_nodes_per_owner} nodes here")
            await self.store.save(self.domain, Node(name, config, affiliations={owner: "owner"}))
        self.mod.log.info("event=pubsub-node-created service=%s node=%s", self.domain, name)
        if request.node:
            return True
        result = Element("pubsub", NS_PUBSUB)
        result.add("create", attrs={"node": name})
        return result

    async def default(self, requester: JID, request: Request) -> Element:
        result = Element("pubsub", request.action.ns)
        result.add("default").append(config_form(self.policy.defaults))
        return result

    async def get_configuration(self, requester: JID, request: Request) -> Element:
        node = await self.existing(require_node(request))
        self.require_owner(node, requester)
        result = Element("pubsub", NS_OWNER)
        result.add("configure", attrs={"node": node.name}).append(config_form(node.config))
        return result

    async def set_configuration(self, requester: JID, request: Request) -> bool:
        name = require_node(request)
        form = find_form(request.action)
        if form is None:
            raise StanzaError("bad-request", "send the configuration form")
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            self.require_owner(node, requester)
            if form.attrs.get("type") == "cancel":
                return True
            node.config = check_access_model(configure(node.config, form), ACCESS_MODELS)
            await self.store.save(self.domain, node, items=False)
        return True

    async def delete(self, requester: JID, request: Request) -> bool:
        name = require_node(request)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            self.require_owner(node, requester)
            await self.store.delete(self.domain, name)
        if node.config.notify_delete:
            await self.notify(node, delete_event(name))
        self.mod.log.info("event=pubsub-node-deleted service=%s node=%s", self.domain, name)
        return True

    async def purge(self, requester: JID, request: Request) -> bool:
        name = require_node(request)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            self.require_owner(node, requester)
            node.purge()
            await self.store.save(self.domain, node, config=False)
        await self.notify(node, purge_event(name))
        return True

    # --- items ----------------------------------------------------------------------------
    async def publish(self, requester: JID, request: Request) -> Element:
        name = require_node(request)
        item_id, content, form = publication(request, self.policy.max_item_size)
        wanted = publish_options(form)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name, with_items=True)
            affiliation = self.affiliation(node, requester)
            model = node.config.publish_model
            allowed = affiliation in PUBLISHERS or (model == "open" and affiliation != "outcast") or (
                model == "subscribers" and affiliation != "outcast" and self.subscribed(node, requester))
            if not allowed:
                raise StanzaError("forbidden", f"you may not publish to {name}")
            check_preconditions(node.config, wanted)
            stored, _ = node.publish(item_id, content, self.policy.max_items)
            await self.store.save(self.domain, node, config=False)
        await self.notify(node, items_event(name, [stored] if node.config.deliver_payloads
                                            else [Element(stored.name, stored.ns, dict(stored.attrs))]))
        return publish_result(name, stored.attrs["id"])

    async def retract(self, requester: JID, request: Request) -> bool:
        name = require_node(request)
        ids = retracted_ids(request)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name, with_items=True)
            if self.affiliation(node, requester) not in PUBLISHERS:
                raise StanzaError("forbidden", "only publishers and owners may retract items")
            for item_id in ids:
                node.retract(item_id)
            await self.store.save(self.domain, node, config=False)
        if node.config.notify_retract or request.action.attrs.get("notify") in ("1", "true"):
            await self.notify(node, retract_event(name, ids))
        return True

    async def items(self, requester: JID, request: Request) -> Element:
        name = require_node(request)
        node = await self.existing(name, with_items=True)
        self.check_access(node, requester)
        max_items, ids = retrieval(request)
        return items_result(name, node.select(max_items, ids))

    # --- subscriptions --------------------------------------------------------------------
    async def subscribe(self, requester: JID, request: Request) -> Element:
        name = require_node(request)
        subscriber = own_subscriber(requester, request)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            affiliation = self.affiliation(node, requester)
            model = node.config.access_model
            if affiliation == "outcast":
                raise StanzaError("forbidden", "you are banned from this node")
            if affiliation in READERS or model == "open":
                state = "subscribed"
            elif model == "authorize":
                state = node.subscriptions.get(subscriber, "pending")
            else:
                raise PubsubError("not-allowed", "closed-node")
            node.subscriptions[subscriber] = state
            await self.store.save(self.domain, node, items=False)
        if state == "pending":
            await self.ask_owners(node, subscriber)
        elif node.config.send_last_published_item != "never":
            await self.send_last(node, subscriber)
        result = Element("pubsub", NS_PUBSUB)
        result.add("subscription", attrs={"node": name, "jid": subscriber, "subscription": state})
        return result

    async def unsubscribe(self, requester: JID, request: Request) -> bool:
        name = require_node(request)
        subscriber = own_subscriber(requester, request)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            if node.subscriptions.pop(subscriber, None) is None:
                raise PubsubError("unexpected-request", "not-subscribed")
            await self.store.save(self.domain, node, items=False)
        return True

    async def own_subscriptions(self, requester: JID, request: Request) -> Element:
        """§5.6: the requester's subscriptions, on every node or one."""
        result = Element("pubsub", NS_PUBSUB)
        wrapper = result.add("subscriptions", attrs={"node": request.node} if request.node else None)
        bare = str(requester.bare)
        for node in (await self.store.configs(self.domain)).values():
            if request.node and node.name != request.node:
                continue
            for jid, state in node.subscriptions.items():
                if jid == bare or jid.startswith(bare + "/"):
                    wrapper.add("subscription", attrs={"node": node.name, "jid": jid, "subscription": state})
        return result

    async def own_affiliations(self, requester: JID, request: Request) -> Element:
        """§5.7: the requester's affiliations, on every node or one."""
        result = Element("pubsub", NS_PUBSUB)
        wrapper = result.add("affiliations", attrs={"node": request.node} if request.node else None)
        bare = str(requester.bare)
        for node in (await self.store.configs(self.domain)).values():
            affiliation = node.affiliations.get(bare)
            if affiliation is not None and (not request.node or node.name == request.node):
                wrapper.add("affiliation", attrs={"node": node.name, "affiliation": affiliation})
        return result

    async def ask_owners(self, node: Node, subscriber: str) -> None:
        """§8.6: each owner gets a form to allow or refuse a pending subscription."""
        for owner, affiliation in node.affiliations.items():
            if affiliation != "owner":
                continue
            message = Element("message", attrs={"id": uuid.uuid4().hex})
            form = message.add("x", NS_DATA, {"type": "form"})
            form.add("title", text="Subscription request")
            for var, type_, value in (("FORM_TYPE", "hidden", FORM_AUTHORIZATION), ("pubsub#node", "text-single", node.name),
                                      ("pubsub#subscriber_jid", "jid-single", subscriber),
                                      ("pubsub#allow", "boolean", "false")):
                form.add("field", attrs={"var": var, "type": type_}).add("value", text=value)
            await self.mod.router.route(message, self.jid, parse_jid(owner))

    async def authorization_answer(self, event: StanzaEvent) -> bool | None:
        """An owner's answer to §8.6: the submitted form, allowing the subscription or not."""
        form = event.stanza.find("x", NS_DATA)
        if form is None or event.stanza.attrs.get("type") == "error":
            return None
        fields = form_fields(form)
        if fields.get("FORM_TYPE") != [FORM_AUTHORIZATION]:
            return None
        name = (fields.get("pubsub#node") or [""])[0]
        subscriber = (fields.get("pubsub#subscriber_jid") or [""])[0]
        allow = (fields.get("pubsub#allow") or [""])[0] in ("1", "true")
        await self.change_subscriptions(event.from_jid, name, {subscriber: "subscribed" if allow else "none"})
        return True

    async def owner_list(self, requester: JID, request: Request, kind: str) -> Element:
        """§8.8.1 and §8.9.1: a node's subscriptions or affiliations (``kind``), for its owners only."""
        node = await self.existing(require_node(request))
        self.require_owner(node, requester)
        entries = node.subscriptions if kind == "subscription" else node.affiliations
        result = Element("pubsub", NS_OWNER)
        wrapper = result.add(f"{kind}s", attrs={"node": node.name})
        for jid, value in sorted(entries.items()):
            wrapper.add(kind, attrs={"jid": jid, kind: value})
        return result

    async def get_subscriptions(self, requester: JID, request: Request) -> Element:
        return await self.owner_list(requester, request, "subscription")

    async def set_subscriptions(self, requester: JID, request: Request) -> bool:
        changes = {}
        for entry in request.action.find_all("subscription"):
            state = entry.attrs.get("subscription", "")
            if state != "none" and state not in SUBSCRIPTION_STATES:
                raise StanzaError("bad-request", f"no subscription state {state}")
            changes[jid_text(entry.attrs.get("jid", ""))] = state
        await self.change_subscriptions(requester, require_node(request), changes)
        return True

    async def change_subscriptions(self, requester: JID, name: str, changes: dict[str, str]) -> None:
        """§8.8.2: an owner sets subscriptions; one newly subscribed is told (§8.6) and gets the last item."""
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            self.require_owner(node, requester)
            approved = []
            for jid, state in changes.items():
                if state == "none":
                    node.subscriptions.pop(jid, None)
                    continue
                if state == "subscribed" and node.subscriptions.get(jid) != "subscribed":
                    approved.append(jid)
                node.subscriptions[jid] = state
            await self.store.save(self.domain, node, items=False)
        for jid in approved:
            message = Element("message")
            event = message.add("event", "http://jabber.org/protocol/pubsub#event")
            event.add("subscription", attrs={"node": name, "jid": jid, "subscription": "subscribed"})
            await self.mod.router.route(message, self.jid, parse_jid(jid))
            if node.config.send_last_published_item != "never":
                await self.send_last(node, jid)

    # --- affiliations ---------------------------------------------------------------------
    async def get_affiliations(self, requester: JID, request: Request) -> Element:
        return await self.owner_list(requester, request, "affiliation")

    async def set_affiliations(self, requester: JID, request: Request) -> bool:
        """§8.9.2: all the changes, or none when one is wrong or would leave the node without an owner."""
        name = require_node(request)
        async with self.store.editing(self.domain, name):
            node = await self.existing(name)
            self.require_owner(node, requester)
            affiliations = dict(node.affiliations)
            subscriptions = dict(node.subscriptions)
            for entry in request.action.find_all("affiliation"):
                jid = jid_text(entry.attrs.get("jid", ""), bare=True)
                affiliation = entry.attrs.get("affiliation", "")
                if affiliation == "none":
                    affiliations.pop(jid, None)
                elif affiliation in AFFILIATIONS:
                    affiliations[jid] = affiliation
                else:
                    raise StanzaError("bad-request", f"no affiliation {affiliation}")
                if affiliation == "outcast":  # §8.8.1: an outcast is no longer subscribed
                    subscriptions = {s: state for s, state in subscriptions.items() if s.split("/", 1)[0] != jid}
            if "owner" not in affiliations.values():
                raise StanzaError("not-acceptable", "a node must keep an owner")
            node.affiliations, node.subscriptions = affiliations, subscriptions
            await self.store.save(self.domain, node, items=False)
        return True

    async def account_deleted(self, event: AccountEvent) -> None:
        """A deleted account is nobody's subscriber or affiliate any more (its data goes with it)."""
        bare = f"{event.user}@{event.host}"
        for node in (await self.store.configs(self.domain)).values():
            ours = [j for j in node.subscriptions if j.split("/", 1)[0] == bare]
            if bare not in node.affiliations and not ours:
                continue
            async with self.store.editing(self.domain, node.name):
                fresh = await self.store.get(self.domain, node.name, with_items=False)
                if fresh is None:
                    continue
                fresh.affiliations.pop(bare, None)
                for jid in ours:
                    fresh.subscriptions.pop(jid, None)
                await self.store.save(self.domain, fresh, items=False)

    # --- notifications --------------------------------------------------------------------
    async def notify(self, node: Node, event: Element) -> None:
        """One serialization of the event for every subscriber; each local bare JID's resources share its bytes."""
        subscribers = [jid for jid, state in node.subscriptions.items() if state == "subscribed"]
        if not subscribers:
            return
        notification = Notification(event, self.domain)
        for jid in subscribers:
            await self.deliver(notification, jid)

    async def deliver(self, notification: Notification, jid_text: str) -> None:
        message, data = notification.to(jid_text)
        jid = parse_jid(jid_text)
        router = self.mod.router
        if not self.mod.hosts.has_accounts(jid.domain):
            await router.route(message, self.jid, jid)  # a component, another service, another server
            return
        send_each(router, headline_resources(router, jid), message, data)

    async def send_last(self, node: Node, jid: str) -> None:
        await self.store.load_items(self.domain, node)
        last = node.last()
        if last is not None:
            await self.deliver(Notification(items_event(node.name, [last]), self.domain), jid)

    # --- discovery ------------------------------------------------------------------------
    def visible(self, node: Node, jid: JID) -> bool:
        try:
            self.check_access(node, jid)
        except StanzaError:
            return node.config.access_model == "authorize"  # one must see it to ask to subscribe
        return True

    async def disco_items(self, requester: JID, name: str | None) -> Element:
        query = Element("query", NS_ITEMS, {"node": name} if name else None)
        if name:
            node = await self.existing(name, with_items=True)
            self.check_access(node, requester)
            for item_id in node.items:
                query.add("item", attrs={"jid": self.domain, "name": item_id})
            return query
        for node in sorted((await self.store.configs(self.domain)).values(), key=lambda n: n.name):
            if self.visible(node, requester):
                attrs = {"jid": self.domain, "node": node.name}
                if node.config.title:
                    attrs["name"] = node.config.title
                query.add("item", attrs=attrs)
        return query

    async def disco_info(self, requester: JID, name: str) -> Element:
        node = await self.existing(name)
        if not self.visible(node, requester):
            raise StanzaError("item-not-found", f"no node {name}")
        query = Element("query", NS_INFO, {"node": name})
        query.add("identity", attrs={"category": "pubsub", "type": "leaf"})
        query.add("feature", attrs={"var": NS_PUBSUB})
        owners = [jid for jid, affiliation in sorted(node.affiliations.items()) if affiliation == "owner"]
        query.append(meta_data_form(node.config, owners))
        return query

