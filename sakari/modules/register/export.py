"""An account's data as one XML document in the form of XEP-0227 (Portable Import/Export Format).

Roster, vCard, private XML storage, block list, offline messages and the
message archive (XEP-0313), as their modules store them. The stores are read
by the names those modules give them.
"""

from __future__ import annotations

import time

from sakari.jid import JID
from sakari.modules.roster import item_element
from sakari.storage.base import Storage
from sakari.xml import fragment
from sakari.xml.element import Element

NS_PIE = "urn:xmpp:pie:0"
NS_ROSTER = "jabber:iq:roster"
NS_PRIVATE = "jabber:iq:private"
NS_BLOCKING = "urn:xmpp:blocking"
NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
ARCHIVE_PAGE = 500


async def export_account(storage: Storage, jid: JID) -> bytes:
    owner = str(jid.bare)
    root = Element("server-data", NS_PIE)
    user = root.add("host", NS_PIE, {"jid": jid.domain}).add("user", NS_PIE, {"name": jid.local})
    roster = user.add("query", NS_ROSTER)
    for item in (await storage.roster.get(owner))[1].values():
        if item.listed:
            roster.append(item_element(item))
    vcard = await storage.documents("vcard").get(owner, "")
    if vcard is not None:
        user.append(fragment.load(vcard))
    private = await storage.documents("private").items(owner)
    if private:
        query = user.add("query", NS_PRIVATE)
        for data in private.values():
            query.append(fragment.load(data))
    blocked = user.add("blocklist", NS_BLOCKING)
    for blocked_jid in sorted(await storage.blocklist.get(owner)):
        blocked.add("item", NS_BLOCKING, {"jid": blocked_jid})
    offline = user.add("offline-messages", NS_PIE)
    for _, data in await storage.offline.list(owner):
        offline.append(fragment.load(data))
    await _archive(storage, owner, user.add("archive", f"{NS_PIE}#mam"))
    return fragment.dump(root)


async def _archive(storage: Storage, owner: str, into: Element) -> None:
    archive = storage.archive("mam")
    after: str | None = None
    while True:
        page = await archive.query(owner, after_id=after, limit=ARCHIVE_PAGE)
        for item in page.items:
            result = into.add("result", NS_MAM, {"id": item.id})
            forwarded = result.add("forwarded", NS_FORWARD)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(item.timestamp)) + f".{int(item.timestamp % 1 * 1e6):06d}Z"
            forwarded.add("delay", NS_DELAY, {"stamp": stamp})
            forwarded.append(fragment.load(item.stanza))
        if page.complete or not page.items:
            return
        after = page.last
