"""XEP-0054 vcard-temp: each account's public vCard (name, nickname, avatar), kept whole as the client set it."""

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.util import owner_of, payload, refuse
from sakari.storage.base import MapStore
from sakari.xml.errors import StanzaError
from sakari.xml import fragment
from sakari.xml.element import Element

NS = "vcard-temp"


class Vcards:
    """The stored vCards, one per account; vcard_legacy reads and writes them too (XEP-0398)."""

    def __init__(self, store: MapStore) -> None:
        self.store = store

    async def load(self, owner: str) -> Element | None:
        data = await self.store.get(owner, "")
        return fragment.load(data) if data is not None else None

    async def save(self, owner: str, vcard: Element) -> None:
        """§3.2: the new vCard replaces the old one; an empty one deletes it."""
        await self.store.set(owner, "", fragment.dump(vcard) if vcard.children else None)


def setup(mod: ModuleAPI) -> None:
    vcards = Vcards(mod.storage.documents("vcard"))
    mod.provide("vcard", vcards)

    async def get(event: StanzaEvent) -> Element:
        owner = owner_of(event)
        vcard = await vcards.load(owner)
        if vcard is not None:
            return vcard
        if event.to_jid.bare != event.from_jid.bare and await mod.storage.accounts.get(owner) is None:
            raise StanzaError("service-unavailable")
        return Element("vCard", NS)

    async def set_(event: StanzaEvent) -> bool:
        await vcards.save(owner_of(event), payload(event))
        return True

    forbidden = refuse("forbidden", "only the owner may change a vCard")

    mod.add_feature(NS)
    mod.hook(f"iq-get/self/{NS}:vCard", get)
    mod.hook(f"iq-get/bare/{NS}:vCard", get)
    mod.hook(f"iq-set/self/{NS}:vCard", set_)
    mod.hook(f"iq-set/bare/{NS}:vCard", forbidden)
