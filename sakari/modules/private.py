"""XEP-0049 Private XML Storage: a client keeps small XML fragments on its own account."""

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.util import owner_of, payload, refuse
from sakari.xml.errors import StanzaError
from sakari.xml.element import Element
from sakari.xml import fragment

NS = "jabber:iq:private"
_RESERVED = {"jabber:client", "jabber:server", "jabber:component:accept", NS}


def storage_key(el: Element) -> str:
    if el.ns in _RESERVED:
        raise StanzaError("not-acceptable", f"the {el.ns} namespace cannot be stored")
    return f"{el.ns} {el.name}"


def setup(mod: ModuleAPI) -> None:
    store = mod.storage.documents("private")

    async def get(event: StanzaEvent) -> Element:
        query = payload(event)
        children = list(query.elements())
        if len(children) != 1:
            raise StanzaError("bad-request", "ask for exactly one element")
        wanted = children[0]
        data = await store.get(owner_of(event), storage_key(wanted))
        result = Element("query", NS)
        result.append(fragment.load(data) if data else Element(wanted.name, wanted.ns))
        return result

    async def set_(event: StanzaEvent) -> bool:
        children = list(payload(event).elements())
        if not children:
            raise StanzaError("bad-request", "nothing to store")
        keys = [storage_key(c) for c in children]
        for key, child in zip(keys, children):
            await store.set(owner_of(event), key, fragment.dump(child))
        return True

    forbidden = refuse("forbidden", "private storage belongs to its owner")

    mod.add_account_feature(NS)
    mod.hook(f"iq-get/self/{NS}:query", get)
    mod.hook(f"iq-set/self/{NS}:query", set_)
    mod.hook(f"iq-get/bare/{NS}:query", forbidden)
    mod.hook(f"iq-set/bare/{NS}:query", forbidden)
