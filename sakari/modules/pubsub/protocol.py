"""The XEP-0060 wire format: namespaces, errors with their pubsub conditions, requests and notifications."""

from __future__ import annotations

from dataclasses import dataclass

from sakari.jid import JID, JIDError, parse_jid
from sakari.xml import fragment
from sakari.xml import ns as NS
from sakari.xml.element import Element, escape_attr
from sakari.xml.errors import StanzaError

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"


class PubsubError(StanzaError):
    """A stanza error with a pubsub-specific condition beside the RFC 6120 one (XEP-0060 §7.1.3 and others)."""

    def __init__(self, condition: str, pubsub_condition: str, text: str | None = None, feature: str | None = None) -> None:
        super().__init__(condition, text)
        self.pubsub_condition = pubsub_condition
        self.feature = feature

    def to_element(self, by: str | None = None) -> Element:
        el = super().to_element(by)
        el.add(self.pubsub_condition, NS_ERRORS, {"feature": self.feature} if self.feature else None)
        return el


def form_fields(form: Element) -> dict[str, list[str]]:
    """A submitted data form (XEP-0004) as var → values."""
    if form.name != "x" or form.ns != NS_DATA or form.attrs.get("type", "submit") not in ("submit", "result"):
        raise StanzaError("bad-request", "expected a submitted data form")
    return {f.attrs["var"]: [v.text for v in f.find_all("value")] for f in form.find_all("field") if "var" in f.attrs}


def find_form(parent: Element | None) -> Element | None:
    return None if parent is None else parent.find("x", NS_DATA)


@dataclass(frozen=True, slots=True)
class Request:
    """One ``<pubsub/>`` or ``<pubsub xmlns='…#owner'/>`` request: its action element and the node it names."""

    action: Element
    options: Element | None  # <publish-options/> or <configure/> beside the action
    node: str

    @property
    def verb(self) -> str:
        return self.action.name


_ACTIONS = {
    NS_PUBSUB: {"publish", "retract", "items", "create", "subscribe", "unsubscribe", "subscriptions",
                "affiliations", "configure", "default", "options"},
    NS_OWNER: {"configure", "delete", "purge", "default", "affiliations", "subscriptions"},
}
_SIDE_ELEMENTS = {"publish-options", "configure"}


def parse_request(query: Element) -> Request:
    """The action of a pubsub request; the first element that is an action is it, the others ride along."""
    actions = _ACTIONS.get(query.ns, set())
    elements = list(query.elements())
    # <configure/> rides along with <create/>, but is the action itself when alone (owner namespace).
    primary = [e for e in elements if e.name in actions and e.name not in _SIDE_ELEMENTS]
    action = primary[0] if primary else next((e for e in elements if e.name in actions), None)
    if action is None:
        raise StanzaError("bad-request", "no pubsub action in the request")
    options = next((e for e in elements if e is not action and e.name in _SIDE_ELEMENTS), None)
    node = action.attrs.get("node", "")
    if "\n" in node or len(node) > 1024:
        raise StanzaError("not-acceptable", "that node name is not acceptable")
    return Request(action, options, node)


def require_node(request: Request) -> str:
    if not request.node:
        raise PubsubError("bad-request", "nodeid-required")
    return request.node


def jid_text(text: str, bare: bool = False) -> str:
    """A JID named in a request, checked (and made bare if asked), as text."""
    try:
        jid = parse_jid(text)
    except JIDError as e:
        raise StanzaError("jid-malformed", e.text) from None
    return str(jid.bare) if bare else str(jid)


def own_subscriber(requester: JID, request: Request) -> str:
    """§6.1.3.1, §6.2: one subscribes or unsubscribes oneself (any of one's resources, or one's bare JID), nobody else."""
    text = jid_text(request.action.attrs.get("jid", ""))
    if parse_jid(text).bare != requester.bare:
        raise PubsubError("bad-request", "invalid-jid", "the JID to subscribe is not yours")
    return text


def publication(request: Request, size_limit: int) -> tuple[str | None, Element, Element | None]:
    """A publish request (§7.1): the item id (None: the service picks), its one payload, the publish-options form."""
    items = request.action.find_all("item")
    if len(items) > 1:
        raise PubsubError("bad-request", "invalid-payload", "publish one item at a time")
    item = items[0] if items else None
    contents = list(item.elements()) if item is not None else []
    if len(contents) != 1:
        raise PubsubError("bad-request", "payload-required" if not contents else "invalid-payload")
    if len(fragment.dump(contents[0])) > size_limit:
        raise PubsubError("not-acceptable", "payload-too-big", f"an item may have at most {size_limit} bytes")
    options = request.options
    form = find_form(options) if options is not None and options.name == "publish-options" else None
    return (item.attrs.get("id") if item is not None else None), contents[0], form


def publish_result(node: str, item_id: str) -> Element:
    result = Element("pubsub", NS_PUBSUB)
    result.add("publish", attrs={"node": node}).add("item", attrs={"id": item_id})
    return result


def retracted_ids(request: Request) -> list[str]:
    """The ids of a retract request (§7.2); each item must name one."""
    ids = [i.attrs.get("id", "") for i in request.action.find_all("item")]
    if not ids or not all(ids):
        raise PubsubError("bad-request", "item-required")
    return ids


def retrieval(request: Request) -> tuple[int | None, list[str]]:
    """What an items request asks for (§6.5): at most max_items of the newest, or these ids."""
    ids = [i.attrs["id"] for i in request.action.find_all("item") if "id" in i.attrs]
    max_text = request.action.attrs.get("max_items")
    try:
        return (int(max_text) if max_text else None), ids
    except ValueError:
        raise StanzaError("bad-request", "max_items is not a number") from None


def items_result(node: str, items: list[Element]) -> Element:
    result = Element("pubsub", NS_PUBSUB)
    wrapper = result.add("items", attrs={"node": node})
    wrapper.children.extend(item_in(i, NS_PUBSUB) for i in items)
    return result


def event_message(event: Element, from_jid: str, to_jid: str | None = None, headline: bool = True) -> Element:
    """A notification: ``<message><event>…</event></message>`` (§7.1.2.1). ``to`` is set per recipient."""
    attrs = {} if to_jid is None else {"to": to_jid}
    attrs["from"] = from_jid
    if headline:
        attrs["type"] = "headline"
    message = Element("message", NS.CLIENT, attrs)
    message.append(event)
    return message


def items_event(node: str, items: list[Element]) -> Element:
    event = Element("event", NS_EVENT)
    wrapper = event.add("items", attrs={"node": node})
    wrapper.children.extend(items)
    return event


def retract_event(node: str, item_ids: list[str]) -> Element:
    event = Element("event", NS_EVENT)
    wrapper = event.add("items", attrs={"node": node})
    for item_id in item_ids:
        wrapper.add("retract", attrs={"id": item_id})
    return event


def purge_event(node: str) -> Element:
    event = Element("event", NS_EVENT)
    event.add("purge", attrs={"node": node})
    return event


def delete_event(node: str) -> Element:
    event = Element("event", NS_EVENT)
    event.add("delete", attrs={"node": node})
    return event


def item_in(item: Element, ns: str) -> Element:
    """A stored item in another namespace (results carry ``pubsub``, notifications ``pubsub#event``); shares children."""
    return Element("item", ns, dict(item.attrs), item.children)


class Notification:
    """One event for many recipients: the event is serialized once, each recipient gets its own envelope.

    Bytes are what ``Element.serialize`` would give for the message against jabber:client (a unit
    test holds the two together), so a session may write them as they are.
    """

    __slots__ = ("_inner", "event", "sender")

    def __init__(self, event: Element, sender: str) -> None:
        self.event = event
        self.sender = sender
        self._inner = f' from="{escape_attr(sender)}" type="headline">{event.serialize(NS.CLIENT)}</message>'.encode()

    def to(self, recipient: str) -> tuple[Element, bytes]:
        message = event_message(self.event, self.sender, recipient)
        return message, f'<message to="{escape_attr(recipient)}"'.encode() + self._inner
