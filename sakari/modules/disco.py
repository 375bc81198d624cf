"""XEP-0030 Service Discovery for the server and its accounts, and XEP-0115 caps in stream features.

The server's identities and features are what the enabled modules
registered; the caps hash is computed once, after all modules are loaded.
disco#items of a user domain lists the local services and components
(the table of hosts); disco#info of a service's domain is answered from
what the service registered, unless the service answers itself.
"""

from __future__ import annotations

import base64
import hashlib

from sakari.core import events as E
from sakari.core.events import ServerEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.util import owner_of, payload
from sakari.xml.errors import StanzaError
from sakari.xml.element import Element

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA = "jabber:x:data"
CAPS_NODE = "https://sakari.chat"


def caps_ver(identities: list[tuple[str, str, str]], features: list[str], forms: list[Element]) -> str:
    """XEP-0115 §5.1 verification string, SHA-1, base64."""
    parts = [f"{c}/{t}//{n}<" for c, t, n in sorted(identities)]
    parts += [f"{f}<" for f in sorted(features)]
    keyed = []
    for form in forms:
        fields = {f.attrs.get("var", ""): sorted(v.text for v in f.find_all("value")) for f in form.find_all("field")}
        form_type = fields.pop("FORM_TYPE", [""])[0]
        text = f"{form_type}<" + "".join(f"{var}<" + "".join(f"{v}<" for v in values) for var, values in sorted(fields.items()))
        keyed.append((form_type, text))
    parts += [text for _, text in sorted(keyed)]
    return base64.b64encode(hashlib.sha1("".join(parts).encode()).digest()).decode()


def add_identity(query: Element, category: str, type_: str, name: str) -> None:
    attrs = {"category": category, "type": type_}
    if name:
        attrs["name"] = name
    query.add("identity", attrs=attrs)


def setup(mod: ModuleAPI) -> None:
    server = mod.ctx.disco
    caps: dict[str, str] = {}

    def server_info(node: str | None) -> Element:
        query = Element("query", NS_INFO, {"node": node} if node else None)
        for category, type_, name in sorted(server.identities):
            attrs = {"category": category, "type": type_}
            if name:
                attrs["name"] = name
            query.add("identity", attrs=attrs)
        for var in sorted(server.features):
            query.add("feature", attrs={"var": var})
        for form in server.extensions:
            query.append(form())
        return query

    def info(event: StanzaEvent) -> Element:
        node = payload(event).attrs.get("node")
        if node and node != f"{CAPS_NODE}#{caps.get('ver')}":
            raise StanzaError("item-not-found")
        return server_info(node)

    def items(event: StanzaEvent) -> Element:
        if payload(event).attrs.get("node"):
            raise StanzaError("item-not-found")
        query = Element("query", NS_ITEMS)
        for host in sorted(mod.hosts.services(), key=lambda h: h.domain):
            query.add("item", attrs={"jid": host.domain, "name": host.name} if host.name else {"jid": host.domain})
        return query

    def service_info(event: StanzaEvent) -> Element:
        host = mod.hosts.get(event.to_jid.domain)
        if event.to_jid.local or event.to_jid.resource or host is None or payload(event).attrs.get("node"):
            raise StanzaError("item-not-found")
        query = Element("query", NS_INFO)
        for identity in sorted(host.identities):
            add_identity(query, *identity)
        for var in sorted(host.features | {NS_INFO, NS_ITEMS}):
            query.add("feature", attrs={"var": var})
        return query

    def service_items(event: StanzaEvent) -> Element:
        if event.to_jid.local or event.to_jid.resource:
            raise StanzaError("item-not-found")
        return Element("query", NS_ITEMS)

    async def account_info(event: StanzaEvent) -> Element:
        owner = owner_of(event)
        if event.to_jid != event.from_jid.bare and await mod.storage.accounts.get(owner) is None:
            raise StanzaError("service-unavailable")
        query = Element("query", NS_INFO)
        for identity in sorted(server.account_identities):
            add_identity(query, *identity)
        for var in sorted(server.account_features):
            query.add("feature", attrs={"var": var})
        return query

    async def account_items(event: StanzaEvent) -> Element:
        owner = owner_of(event)
        if event.to_jid != event.from_jid.bare and await mod.storage.accounts.get(owner) is None:
            raise StanzaError("service-unavailable")
        return Element("query", NS_ITEMS)

    def compute_caps(event: ServerEvent) -> None:
        query = server_info(None)
        identities = [
            (i.attrs["category"], i.attrs["type"], i.attrs.get("name", "")) for i in query.find_all("identity")
        ]
        features = [f.attrs["var"] for f in query.find_all("feature")]
        caps["ver"] = caps_ver(identities, features, query.find_all("x", NS_DATA))

    def stream_feature(authenticated: bool) -> Element | None:
        return Element("c", NS_CAPS, {"hash": "sha-1", "node": CAPS_NODE, "ver": caps["ver"]}) if "ver" in caps else None

    for ns in (NS_INFO, NS_ITEMS):
        mod.add_feature(ns)
        mod.add_account_feature(ns)
    mod.add_feature(NS_CAPS)
    mod.hook(f"iq-get/host/{NS_INFO}:query", info)
    mod.hook(f"iq-get/host/{NS_ITEMS}:query", items)
    mod.hook(f"iq-get/service/{NS_INFO}:query", service_info)
    mod.hook(f"iq-get/service/{NS_ITEMS}:query", service_items)
    for target in ("self", "bare"):
        mod.hook(f"iq-get/{target}/{NS_INFO}:query", account_info, priority=-10)
        mod.hook(f"iq-get/{target}/{NS_ITEMS}:query", account_items, priority=-10)
    mod.hook(E.SERVER_STARTED, compute_caps)
    mod.add_stream_feature(stream_feature)
