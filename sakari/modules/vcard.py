"""XEP-0054 vcard-temp: each account's public vCard (name, nickname, avatar)."""

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.util import owner_of, payload, refuse
from sakari.xml.errors import StanzaError
from sakari.xml import fragment
from sakari.xml.element import Element

NS = "vcard-temp"


def setup(mod: ModuleAPI) -> None:
    store = mod.storage.documents("vcard")
    mod.provide("vcard", store)  # vcard_legacy reads and mirrors the stored vCards (XEP-0398)

    async def get(event: StanzaEvent) -> Element:
        owner = owner_of(event)
        data = await store.get(owner, "")
        if data is not None:
            return fragment.load(data)
        if event.to_jid.bare != event.from_jid.bare and await mod.storage.accounts.get(owner) is None:
            raise StanzaError("service-unavailable")
        return Element("vCard", NS)

    async def set_(event: StanzaEvent) -> bool:
        vcard = payload(event)
        await store.set(owner_of(event), "", fragment.dump(vcard) if vcard.children else None)
        return True

    forbidden = refuse("forbidden", "only the owner may change a vCard")

    mod.add_feature(NS)
    mod.hook(f"iq-get/self/{NS}:vCard", get)
    mod.hook(f"iq-get/bare/{NS}:vCard", get)
    mod.hook(f"iq-set/self/{NS}:vCard", set_)
    mod.hook(f"iq-set/bare/{NS}:vCard", forbidden)
