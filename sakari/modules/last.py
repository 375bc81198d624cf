"""XEP-0012 Last Activity: the server's uptime, and when a contact was last online.

Only the time of the last logout (and its status text) is kept, and only
contacts subscribed to the user's presence may ask for it.
"""

from __future__ import annotations

import json
import time

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.presence import PRESENCE_UNAVAILABLE, WentUnavailable
from sakari.modules.util import owner_of
from sakari.xml.errors import StanzaError
from sakari.xml.element import Element

NS = "jabber:iq:last"


def setup(mod: ModuleAPI) -> None:
    store = mod.storage.documents("last")
    rosters = mod.require("roster")
    started = time.monotonic()

    def uptime(event: StanzaEvent) -> Element:
        return Element("query", NS, {"seconds": str(int(time.monotonic() - started))})

    async def contact_last(event: StanzaEvent) -> Element:
        owner = owner_of(event)
        asker = str(event.from_jid.bare)
        if asker != owner:
            item = await rosters.item(owner, asker)
            if item is None or item.subscription not in ("from", "both"):
                raise StanzaError("forbidden", "only contacts subscribed to this user's presence may ask")
        if any(r.available for r in mod.router.resources(event.to_jid.bare)):
            return Element("query", NS, {"seconds": "0"})
        data = await store.get(owner, "")
        if data is None:
            raise StanzaError("item-not-found")
        record = json.loads(data)
        query = Element("query", NS, {"seconds": str(max(0, int(time.time() - record["at"])))})
        if record.get("status"):
            query.append(record["status"])
        return query

    async def went_unavailable(event: WentUnavailable) -> None:
        """Record the moment the account's last available resource leaves, before contacts hear of it."""
        session = event.session
        if any(r.available and r.session is not session for r in mod.router.resources(session.bare)):
            return
        status = event.stanza.child_text("status")
        await store.set(str(session.bare), "", json.dumps({"at": int(time.time()), "status": status or ""}).encode())

    mod.add_feature(NS)
    mod.hook(f"iq-get/host/{NS}:query", uptime)
    mod.hook(f"iq-get/bare/{NS}:query", contact_last)
    mod.hook(f"iq-get/self/{NS}:query", contact_last)
    mod.hook(PRESENCE_UNAVAILABLE, went_unavailable)
