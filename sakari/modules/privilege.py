"""XEP-0356 Privileged Entity (``urn:xmpp:privilege:2``): what a configured component may do for users.

Each ``[[components]]`` table may grant, in its ``privileges``:

- ``roster`` (get, set, both): read and write any local account's roster with iq get/set
  ``jabber:iq:roster`` addressed to the account (§4). A bridge puts its contacts in users'
  rosters this way; items of the component's own domain may be given a subscription. With get or both,
  the component also receives every roster push of every local account (§4.1, §4.4), from the account's
  bare JID, unless ``roster_push = false``.
- ``message = "outgoing"``: send messages as a user, wrapped in ``<privilege><forwarded>`` to the
  server (§5); they are handled as the user's own: archived, copied to the user's resources with
  carbons, routed.
- ``iq`` per namespace (get, set, both): iqs as a user, wrapped in ``<privileged_iq>`` (§6), e.g.
  pubsub for bookmarks; the answer comes back wrapped in ``<privilege><forwarded>``.

The grants are announced to the component as it connects (§4.2, a ``<message><privilege>``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from sakari import settings as S
from sakari.core import events as E
from sakari.core.events import ComponentEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID, JIDError, parse_jid, prep_domain
from sakari.modules.carbons import FLAG as CARBONS_FLAG
from sakari.modules.carbons import NS_CARBONS, should_copy
from sakari.modules.roster import NS as NS_ROSTER
from sakari.modules.roster import ROSTER_CHANGED, RosterChanged, item_element
from sakari.modules.util import payload
from sakari.storage.base import RosterItem
from sakari.xml import ns as NS
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_PRIVILEGE = "urn:xmpp:privilege:2"
NS_FORWARD = "urn:xmpp:forward:0"
SUBSCRIPTIONS = ("none", "to", "from", "both")


@dataclass(frozen=True, slots=True)
class Grants:
    domain: str
    roster: str = "none"
    message: str = "none"
    iq: dict[str, str] = field(default_factory=dict)
    roster_push: bool = True  # XEP-0356 §4.1: pushes by default to whoever may read rosters

    @property
    def gets_pushes(self) -> bool:
        return self.roster_push and self.may_roster("get")

    def may_roster(self, itype: str) -> bool:
        return self.roster == "both" or self.roster == itype

    def may_iq(self, ns: str, itype: str) -> bool:
        grant = self.iq.get(ns)
        return grant == "both" or grant == itype

    def advertisement(self) -> Element:
        """§4.2, §5.2, §6.2: the <privilege/> the server sends the component as it connects."""
        privilege = Element("privilege", NS_PRIVILEGE)
        if self.roster != "none":
            perm = privilege.add("perm", attrs={"access": "roster", "type": self.roster})
            if self.may_roster("get"):
                perm.attrs["push"] = "true" if self.roster_push else "false"
        if self.message != "none":
            privilege.add("perm", attrs={"access": "message", "type": self.message})
        if self.iq:
            perm = privilege.add("perm", attrs={"access": "iq"})
            for ns, grant in self.iq.items():
                perm.add("namespace", attrs={"ns": ns, "type": grant})
        return privilege


def grants_from_config(components: list[dict]) -> dict[str, Grants]:
    out = {}
    for component in components:
        privileges = component["privileges"]
        if privileges:
            domain = prep_domain(component["domain"])
            out[domain] = Grants(
                domain,
                privileges.get("roster", "none"),
                privileges.get("message", "none"),
                dict(privileges.get("iq", {})),
                privileges.get("roster_push", True),
            )
    return out


class Privileges:
    def __init__(self, mod: ModuleAPI, grants: dict[str, Grants]) -> None:
        self.mod = mod
        self.grants = grants
        self.pushed_to = [g.domain for g in grants.values() if g.gets_pushes]
        self._push_ids = itertools.count(1)

    def of(self, sender: JID) -> Grants | None:
        """The grants of a component, for stanzas from its own domain (not from its users or subdomains)."""
        return self.grants.get(sender.domain) if not sender.local and not sender.resource else None

    def account(self, jid: JID) -> JID:
        """A local account the component acts on: a bare JID on a domain of this server's users."""
        if jid.resource or not jid.local or not self.mod.hosts.has_accounts(jid.domain):
            raise StanzaError("forbidden", "privileges reach only this server's accounts, by bare JID")
        return jid

    # --- §4.2 ------------------------------------------------------------------------
    async def announce(self, event: ComponentEvent) -> None:
        grants = self.grants.get(event.domain)
        if grants is None:
            return
        message = Element("message", NS.CLIENT)
        message.children.append(grants.advertisement())
        await self.mod.router.route(message, JID("", self.mod.domain), JID("", event.domain))

    # --- §4.3 roster -------------------------------------------------------------------
    async def roster_get(self, event: StanzaEvent) -> Element | None:
        grants = self.of(event.from_jid)
        if grants is None:
            return None  # not a privileged component: the roster module refuses
        if not grants.may_roster("get"):
            raise StanzaError("forbidden", "this component may not read rosters")
        owner = str(self.account(event.to_jid))
        roster = await self.mod.require("roster").get(owner)
        query = Element("query", NS_ROSTER, {"ver": str(roster.version)})
        for item in roster.items.values():
            if item.listed:
                query.append(item_element(item))
        return query

    async def roster_set(self, event: StanzaEvent) -> bool | None:
        grants = self.of(event.from_jid)
        if grants is None:
            return None
        if not grants.may_roster("set"):
            raise StanzaError("forbidden", "this component may not change rosters")
        owner = str(self.account(event.to_jid))
        rosters = self.mod.require("roster")
        items = payload(event).find_all("item", NS_ROSTER)
        if not items:
            raise StanzaError("bad-request", "a roster set carries items")
        for el in items:
            try:
                jid = parse_jid(el.attrs.get("jid", ""))
            except JIDError as e:
                raise StanzaError("jid-malformed", e.text) from None
            subscription = el.attrs.get("subscription")
            if subscription == "remove":
                existing = await rosters.item(owner, str(jid))
                if existing is not None:
                    await self.mod.require("presence").roster_item_removed(owner, existing)
                    await rosters.remove(owner, str(jid))
                continue
            base = await rosters.item(owner, str(jid)) or RosterItem(str(jid))
            groups = [g.text for g in el.find_all("group", NS_ROSTER) if g.text]
            changed = replace(base, name=el.attrs.get("name") or None, groups=groups, listed=True)
            if subscription is not None:
                # Only for the component's own contacts: it answers for their side of the subscription.
                if subscription not in SUBSCRIPTIONS or not _within(jid.domain, grants.domain):
                    raise StanzaError("not-allowed", "a subscription may be set only for the component's own contacts")
                changed = replace(changed, subscription=subscription)
            await rosters.put(owner, changed)
        return True

    async def roster_changed(self, change: RosterChanged) -> None:
        """§4.4: what the account's own clients are pushed, from the account's bare JID, to each component reading
        rosters. One that is not connected gets nothing: it reads the rosters it needs again as it comes back."""
        owner = parse_jid(change.owner)
        for domain in self.pushed_to:
            host = self.mod.hosts.get(domain)
            if host is None or host.outlet is None:
                continue
            iq = Element("iq", NS.CLIENT, {"type": "set", "id": f"privpush{next(self._push_ids)}"})
            iq.add("query", NS_ROSTER, {"ver": str(change.version)}).append(change.item)
            await self.mod.router.route(iq, owner, JID("", domain))

    # --- §5.3 messages --------------------------------------------------------------------
    async def message(self, event: StanzaEvent) -> bool | None:
        privilege = event.stanza.find("privilege", NS_PRIVILEGE)
        grants = self.of(event.from_jid)
        if privilege is None or grants is None:
            return None
        if grants.message != "outgoing":
            raise StanzaError("forbidden", "this component may not send messages for users")
        forwarded = privilege.find("forwarded", NS_FORWARD)
        inner = forwarded.find("message", NS.CLIENT) if forwarded is not None else None
        if inner is None:
            raise StanzaError("bad-request", "a privileged message forwards one message")
        try:
            sender = self.account(parse_jid(inner.attrs.get("from", "")))
            to = parse_jid(inner.attrs.get("to", ""))
        except JIDError as e:
            raise StanzaError("jid-malformed", e.text) from None
        message = inner.shallow_copy()
        self._carbons(sender, message)
        # As if the user sent it: the same outbound events (archiving) as a client's message, then routing.
        target = "full" if to.resource else ("host" if not to.local else "bare")
        outbound = StanzaEvent(message, sender, to)
        if await self.mod.events.fire(E.pre_event("message", target), outbound) is None:
            await self.mod.router.route(message, sender, to)
        return True

    def _carbons(self, sender: JID, message: Element) -> None:
        """XEP-0280 §7: the user's resources that enabled carbons see what was sent in their name."""
        if not should_copy(message, received=False):
            return
        targets = [r for r in self.mod.router.resources(sender) if CARBONS_FLAG in r.flags]
        for resource in targets:
            attrs = {"from": str(sender), "to": str(resource.jid), "type": message.attrs.get("type", "normal")}
            carbon = Element("message", NS.CLIENT, attrs)
            carbon.add("sent", NS_CARBONS).add("forwarded", NS_FORWARD).children.append(message.shallow_copy())
            self.mod.router.send_to([resource], carbon)

    # --- §6 iq -------------------------------------------------------------------------
    async def iq(self, event: StanzaEvent) -> Element:
        grants = self.of(event.from_jid)
        if grants is None:
            raise StanzaError("forbidden", "only a privileged component sends privileged iqs")
        inner = payload(event).find("iq", NS.CLIENT)
        if inner is None:
            raise StanzaError("bad-request", "a privileged iq carries one iq")
        itype = inner.attrs.get("type", "")
        child = inner.first_child()
        if itype != event.stanza.attrs.get("type") or child is None:
            raise StanzaError("bad-request", "the inner iq is a get or set of the same type, with a payload")
        if not grants.may_iq(child.ns, itype):
            raise StanzaError("forbidden", f"this component may not send iq {itype} of {child.ns}")
        try:
            sender = self.account(parse_jid(inner.attrs.get("from", "")))
            to = parse_jid(inner.attrs["to"]) if "to" in inner.attrs else sender
        except JIDError as e:
            raise StanzaError("jid-malformed", e.text) from None
        if sender != event.to_jid.bare:
            raise StanzaError("bad-request", "the inner iq is from the account the privileged iq is addressed to")
        request = Element("iq", NS.CLIENT, {"type": itype}, [child])
        answer = await self.mod.request(request, to, from_jid=sender)
        answer.attrs["id"] = inner.attrs.get("id", "")
        answer.attrs["from"], answer.attrs["to"] = str(to), str(sender)
        if answer.attrs.get("type") == "error":
            raise StanzaError(_condition(answer), "the privileged iq failed")
        wrapper = Element("privilege", NS_PRIVILEGE)
        wrapper.add("forwarded", NS_FORWARD).children.append(answer)
        return wrapper


def _condition(answer: Element) -> str:
    """The defined condition of an error answer (RFC 6120 §8.3)."""
    error = answer.find("error", NS.CLIENT)
    names = [c.name for c in error.elements() if c.ns == NS.STANZA_ERRORS and c.name != "text"] if error is not None else []
    return names[0] if names else "undefined-condition"


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def setup(mod: ModuleAPI) -> None:
    mod.depends("roster")
    mod.depends("presence")
    privileges = Privileges(mod, grants_from_config(mod.option(S.COMPONENTS)))
    mod.hook(E.COMPONENT_CONNECTED, privileges.announce)
    if privileges.pushed_to:
        mod.hook(ROSTER_CHANGED, privileges.roster_changed)
    # Before the roster module's refusal of others' rosters, which it leaves to when not a privileged component.
    mod.hook(f"iq-get/bare/{NS_ROSTER}:query", privileges.roster_get, priority=10)
    mod.hook(f"iq-set/bare/{NS_ROSTER}:query", privileges.roster_set, priority=10)
    mod.hook("message/host", privileges.message, priority=10)
    mod.hook(f"iq-get/bare/{NS_PRIVILEGE}:privileged_iq", privileges.iq)
    mod.hook(f"iq-set/bare/{NS_PRIVILEGE}:privileged_iq", privileges.iq)
