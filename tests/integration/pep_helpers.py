"""Helpers for the PEP, OMEMO and profile tests: a server with PEP on, clients that announce +notify caps."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable

from xmpp_harness import Client, kind, q

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DATA = "jabber:x:data"

MODULES = [
    "roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking",
    "contact_info", "caps", "pep",
]


def pep_config(extra: str = "", modules: Iterable[str] = ()) -> str:
    enabled = ", ".join(f'"{m}"' for m in [*MODULES, *modules])
    return f"[modules]\nenabled = [{enabled}]\n{extra}"


async def announce(client: Client, *interests: str) -> None:
    """Caps with NODE+notify for each interest, then initial presence carrying them (as a real client does)."""
    for plugin in ("xep_0030", "xep_0115", "xep_0060", "xep_0163"):
        client.xmpp.register_plugin(plugin)
    for ns in interests:
        client.xmpp.plugin["xep_0030"].add_feature(f"{ns}+notify")
    await client.xmpp.plugin["xep_0115"].update_caps(broadcast=False)
    client.xmpp.send_presence()


def form(form_type: str, **fields: str) -> str:
    inner = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>" for k, v in fields.items())
    return (f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{form_type}</value></field>"
            f"{inner}</x>")


def publish_xml(node: str, payload: str, item_id: str | None = None, **options: str) -> str:
    id_attr = f" id='{item_id}'" if item_id else ""
    opts = ""
    if options:
        opts = f"<publish-options>{form(NS_PUBSUB + '#publish-options', **options)}</publish-options>"
    return f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'><item{id_attr}>{payload}</item></publish>{opts}</pubsub>"


async def publish(client: Client, node: str, payload: str, item_id: str | None = None, **options: str) -> str:
    """Publish and return the item id the server answers with."""
    result = await client.iq("set", publish_xml(node, payload, item_id, **options))
    item = result.find(f"{q(NS_PUBSUB, 'pubsub')}/{q(NS_PUBSUB, 'publish')}/{q(NS_PUBSUB, 'item')}")
    assert item is not None, "the publish result names no item"
    return item.get("id")


async def items(client: Client, owner: str | None, node: str, extra_attrs: str = "", inner: str = "") -> list[ET.Element]:
    result = await client.iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{node}'{extra_attrs}>{inner}</items></pubsub>", to=owner)
    return result.findall(f"{q(NS_PUBSUB, 'pubsub')}/{q(NS_PUBSUB, 'items')}/{q(NS_PUBSUB, 'item')}")


def is_event(node: str, sender: str | None = None, child: str = "item") -> Callable[[ET.Element], bool]:
    def pred(el: ET.Element) -> bool:
        if kind(el) != "message" or (sender is not None and el.get("from") != sender):
            return False
        wrapper = el.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, 'items')}")
        if child in ("purge", "delete"):
            found = el.find(f"{q(NS_EVENT, 'event')}/{q(NS_EVENT, child)}")
            return found is not None and found.get("node") == node
        return wrapper is not None and wrapper.get("node") == node and wrapper.find(q(NS_EVENT, child)) is not None

    pred.__doc__ = f"pubsub event {child} on {node} from {sender}"
    return pred


def pubsub_condition(error_stanza: ET.Element) -> str | None:
    err = error_stanza.find(q("jabber:client", "error"))
    if err is None:
        return None
    for c in err:
        if c.tag.startswith("{" + NS_ERRORS + "}"):
            return kind(c)
    return None
