"""An account's data as one XML document in the form of XEP-0227 (Portable Import/Export Format), and back.

Roster, vCard, private XML storage, block list, PEP nodes (their configuration as a node_config form and
their items), offline messages and the message archive (XEP-0313), as their modules store them. The stores
are read by the names those modules give them. The operator's export (``sakari user export``) adds the
SCRAM credentials (XEP-0227 §4.2), so that an import lets the user in with the same password; the one
users download from their account page does not carry them.

Import refuses an account that exists: it reproduces an account, it does not merge two.
"""

from __future__ import annotations

import base64
import calendar
import time
import xml.etree.ElementTree as ET
from xml.parsers import expat
from dataclasses import dataclass

from sakari.credentials import Credentials, ScramKeys, derive
from sakari.jid import JID, JIDError, prep_domain, prep_local
from sakari.modules.private import storage_key
from sakari.modules.pubsub.config import FORM_NODE_CONFIG, config_form, configure
from sakari.modules.pubsub.node import Node
from sakari.modules.pubsub.protocol import NS_EVENT, NS_OWNER, NS_PUBSUB
from sakari.modules.pubsub.store import NodeStore
from sakari.modules.roster import item_element
from sakari.storage.base import RosterItem, Storage
from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_PIE = "urn:xmpp:pie:0"
NS_SCRAM = "urn:xmpp:pie:0#scram"
NS_ROSTER = "jabber:iq:roster"
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"
NS_BLOCKING = "urn:xmpp:blocking"
NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
ARCHIVE_PAGE = 500
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
PEP_PREFIX = "pep"  # the name the PEP module gives its node store


async def export_account(storage: Storage, jid: JID, credentials: bool = False, archive: bool = True) -> bytes:
    """The account's document; with ``credentials`` its SCRAM keys too (the operator's export)."""
    owner = str(jid.bare)
    root = Element("server-data", NS_PIE)
    user = root.add("host", NS_PIE, {"jid": jid.domain}).add("user", NS_PIE, {"name": jid.local})
    if credentials:
        creds = await storage.accounts.get(owner)
        if creds is not None:
            for hash_name, keys in sorted(creds.keys.items()):
                user.append(_scram_element(hash_name, creds, keys))
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
    await _pep(NodeStore(storage, PEP_PREFIX), owner, user)
    offline = user.add("offline-messages", NS_PIE)
    for _, data in await storage.offline.list(owner):
        offline.append(fragment.load(data))
    if archive:
        await _archive(storage, owner, user.add("archive", f"{NS_PIE}#mam"))
    return fragment.dump(root)


def _scram_element(hash_name: str, creds: Credentials, keys: ScramKeys) -> Element:
    el = Element("scram-credentials", NS_SCRAM, {"mechanism": f"SCRAM-{hash_name}"})
    el.add("iter-count", NS_SCRAM, text=str(creds.iterations))
    el.add("salt", NS_SCRAM, text=base64.b64encode(creds.salt).decode())
    el.add("server-key", NS_SCRAM, text=base64.b64encode(keys.server_key).decode())
    el.add("stored-key", NS_SCRAM, text=base64.b64encode(keys.stored_key).decode())
    return el


async def _pep(nodes: NodeStore, owner: str, into: Element) -> None:
    """XEP-0227 §4.6: each node's configuration in a pubsub#owner element, its items in a pubsub one."""
    configs = await nodes.configs(owner)
    if not configs:
        return
    owner_el = into.add("pubsub", NS_OWNER)
    items_el = into.add("pubsub", NS_PUBSUB)
    for name, node in sorted(configs.items()):
        form = config_form(node.config, FORM_NODE_CONFIG)
        form.attrs["type"] = "submit"  # XEP-0227 carries the configuration as submitted, ready to apply
        owner_el.add("configure", NS_OWNER, {"node": name}).append(form)
        await nodes.load_items(owner, node)
        items = items_el.add("items", NS_PUBSUB, {"node": name})
        for item in node.items.values():
            items.append(Element("item", NS_PUBSUB, dict(item.attrs), list(item.children)))


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


# --- import ---------------------------------------------------------------------------------------
class PortableDataError(ValueError):
    """The document cannot be imported; the message says where and why."""


@dataclass(slots=True)
class Imported:
    owner: str
    roster: int = 0
    offline: int = 0
    archived: int = 0
    nodes: int = 0


def parse_document(data: bytes) -> Element:
    """A whole document, as other servers write them too (an XML declaration, comments, indentation), by
    ElementTree; entity declarations are refused, so that a hostile file cannot expand into gigabytes."""

    def no_entities(*_: object) -> None:
        raise PortableDataError("the document declares entities, which an import does not take")

    # ElementTree's parser offers no hook for declarations: one pass of expat with it refuses them first.
    scanner = expat.ParserCreate()
    scanner.EntityDeclHandler = no_entities
    try:
        scanner.Parse(data, True)
        root = _element(ET.fromstring(data))
    except (expat.ExpatError, ET.ParseError) as e:
        raise PortableDataError(f"not an XML document: {e}") from None
    if (root.ns, root.name) != (NS_PIE, "server-data"):
        raise PortableDataError(f"the document is <{root.name} xmlns='{root.ns}'>, not XEP-0227's <server-data xmlns='{NS_PIE}'>")
    return root


def _element(el: ET.Element) -> Element:
    """ElementTree's element as ours (what the stores and the modules read)."""
    ns, _, name = el.tag[1:].partition("}") if el.tag.startswith("{") else ("", "", el.tag)
    attrs = {}
    for key, value in el.attrib.items():
        if key.startswith(_XML_NS):
            attrs["xml:" + key[len(_XML_NS):]] = value
        elif not key.startswith("{"):
            attrs[key] = value
    out = Element(name, ns, attrs)
    if el.text:
        out.children.append(el.text)
    for child in el:
        out.children.append(_element(child))
        if child.tail:
            out.children.append(child.tail)
    return out


def accounts_in(root: Element) -> list[tuple[str, Element]]:
    """(bare JID, <user/>) of every account in the document."""
    found = []
    for host in root.find_all("host", NS_PIE):
        for user in host.find_all("user", NS_PIE):
            try:
                owner = f"{prep_local(user.attrs.get('name', ''))}@{prep_domain(host.attrs.get('jid', ''))}"
            except JIDError as e:
                raise PortableDataError(f"user {user.attrs.get('name')!r} of host {host.attrs.get('jid')!r}: {e.text}") from None
            found.append((owner, user))
    if not found:
        raise PortableDataError("the document holds no <user/>")
    return found


def credentials_of(user: Element, iterations: int) -> Credentials | None:
    """SCRAM keys of the document (those sharing the SHA-256 entry's salt), or keys derived from a plaintext
    password attribute; None when the document has neither."""
    entries: dict[str, tuple[bytes, int, ScramKeys]] = {}
    for el in user.find_all("scram-credentials", NS_SCRAM):
        hash_name = el.attrs.get("mechanism", "").removeprefix("SCRAM-")
        try:
            entries[hash_name] = (
                base64.b64decode(el.child_text("salt", NS_SCRAM) or "", validate=True),
                int(el.child_text("iter-count", NS_SCRAM) or ""),
                ScramKeys(
                    stored_key=base64.b64decode(el.child_text("stored-key", NS_SCRAM) or "", validate=True),
                    server_key=base64.b64decode(el.child_text("server-key", NS_SCRAM) or "", validate=True),
                ),
            )
        except ValueError:
            raise PortableDataError(f"the {el.attrs.get('mechanism')} credentials are not base64 and a number") from None
    entries = {h: e for h, e in entries.items() if h in ("SHA-1", "SHA-256")}
    if entries:
        salt, count, _ = entries.get("SHA-256") or next(iter(entries.values()))
        # One salt and iteration count serve every hash here; keys made with another salt cannot be kept.
        keys = {h: k for h, (s, c, k) in entries.items() if (s, c) == (salt, count)}
        return Credentials(salt, count, keys)
    password = user.attrs.get("password")
    if password:
        return derive(password, iterations)
    return None


def _roster_item(el: Element) -> RosterItem:
    jid = el.attrs.get("jid")
    if not jid:
        raise PortableDataError("a roster item without a jid")
    subscription = el.attrs.get("subscription", "none")
    if subscription not in ("none", "to", "from", "both"):
        subscription = "none"
    return RosterItem(
        jid=jid, name=el.attrs.get("name") or None, subscription=subscription, ask=el.attrs.get("ask") == "subscribe",
        approved=el.attrs.get("approved") == "true", groups=[g.text for g in el.find_all("group", NS_ROSTER) if g.text],
    )


async def import_document(storage: Storage, data: bytes, domains: list[str], iterations: int) -> list[Imported]:
    """Every account of the document, or none: an account that fails takes those made before it away again."""
    accounts = accounts_in(parse_document(data))
    for owner, _ in accounts:
        if owner.rpartition("@")[2] not in domains:
            raise PortableDataError(f"{owner}: this server serves {', '.join(domains)}")
    done: list[Imported] = []
    try:
        for owner, user in accounts:
            done.append(await import_account(storage, owner, user, iterations))
    except BaseException:
        for imported in done:
            await storage.accounts.delete(imported.owner)
        raise
    return done


async def import_account(storage: Storage, owner: str, user: Element, iterations: int) -> Imported:
    """Create ``owner`` from its <user/> element; refuses an account that exists or has no credentials."""
    creds = credentials_of(user, iterations)
    if creds is None:
        raise PortableDataError(f"{owner}: no <scram-credentials/> and no password: nobody could log in")
    if not await storage.accounts.create(owner, creds):
        raise PortableDataError(f"{owner} exists already; delete it first ('sakari user delete {owner}') to import it")
    try:
        return await _import_data(storage, owner, user)
    except BaseException:
        await storage.accounts.delete(owner)  # all or nothing: a half-imported account is no copy of the old one
        raise


async def _import_data(storage: Storage, owner: str, user: Element) -> Imported:
    done = Imported(owner)
    for child in user.elements():
        key = (child.ns, child.name)
        if key == (NS_ROSTER, "query"):
            for item in child.find_all("item", NS_ROSTER):
                await storage.roster.put(owner, _roster_item(item))
                done.roster += 1
        elif key == (NS_VCARD, "vCard"):
            await storage.documents("vcard").set(owner, "", fragment.dump(child))
        elif key == (NS_PRIVATE, "query"):
            for data in child.elements():
                try:
                    name = storage_key(data)
                except StanzaError as e:
                    raise PortableDataError(f"{owner}: private XML storage: {e.text}") from None
                await storage.documents("private").set(owner, name, fragment.dump(data))
        elif key == (NS_BLOCKING, "blocklist"):
            jids = [i.attrs["jid"] for i in child.find_all("item", NS_BLOCKING) if i.attrs.get("jid")]
            if jids:
                await storage.blocklist.add(owner, jids)
        elif key == (NS_OWNER, "pubsub"):
            done.nodes += await _import_pep(NodeStore(storage, PEP_PREFIX), owner, child, user.find_all("pubsub", NS_PUBSUB))
        elif key == (NS_PIE, "offline-messages"):
            for message in child.elements():
                await storage.offline.push(owner, fragment.dump(message))
                done.offline += 1
        elif key == (f"{NS_PIE}#mam", "archive"):
            done.archived += await _import_archive(storage, owner, child)
    return done


async def _import_pep(nodes: NodeStore, owner: str, configs: Element, item_lists: list[Element]) -> int:
    items_by_node = {el.attrs.get("node"): el for pubsub in item_lists for el in pubsub.find_all("items", NS_PUBSUB)}
    count = 0
    for configure_el in configs.find_all("configure", NS_OWNER):
        name = configure_el.attrs.get("node")
        if not name:
            continue
        node = Node(name)
        form = configure_el.first_child()
        if form is not None:
            form.attrs["type"] = "submit"  # some exporters write the form as shown, not as submitted
            try:
                node.config = configure(node.config, form)
            except (StanzaError, ValueError) as e:  # a form the node_config rules refuse: say which node
                raise PortableDataError(f"{owner}: the configuration of PEP node {name!r}: {getattr(e, 'text', None) or e}") from None
        items = items_by_node.get(name)
        for item in items.find_all("item", NS_PUBSUB) if items is not None else ():
            node.items[item.attrs.get("id", "")] = Element("item", NS_EVENT, dict(item.attrs), list(item.children))
        await nodes.save(owner, node)
        count += 1
    return count


async def _import_archive(storage: Storage, owner: str, archive_el: Element) -> int:
    """Archived messages at their times, under new ids (ids are the archive's own)."""
    archive = storage.archive("mam")
    count = 0
    for result in archive_el.find_all("result", NS_MAM):
        forwarded = result.find("forwarded", NS_FORWARD)
        stanza = next((c for c in forwarded.elements() if c.name == "message"), None) if forwarded is not None else None
        if stanza is None:
            continue
        delay = forwarded.find("delay", NS_DELAY)  # type: ignore[union-attr]
        when = _stamp(delay.attrs.get("stamp", "")) if delay is not None else None
        sender, recipient = _bare(stanza.attrs.get("from", "")), _bare(stanza.attrs.get("to", ""))
        with_jid = recipient if sender == owner else sender
        body = stanza.child_text("body", stanza.ns)
        await archive.append(owner, with_jid, fragment.dump(stanza), when, body)
        count += 1
    return count


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def _stamp(text: str) -> float | None:
    """A XEP-0082 UTC stamp, with or without fractions of a second."""
    main, _, fraction = text.rstrip("Z").partition(".")
    try:
        seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
