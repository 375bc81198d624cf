"""XEP-0050 Ad-Hoc Commands on the server's domains, with XEP-0004 data forms for their steps.

Other modules register commands through the ``adhoc`` service; each says who
may see and run it. A command runs in steps: its first step answers either
with a form to fill in (the command stays "executing", §3.4) or with its
outcome ("completed", a note and perhaps a result form). The submitted form
comes back with the session id the first step gave out; a session is only
its requester's, for that command.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID
from sakari.modules.util import payload
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
MAX_SESSIONS = 1000  # commands waiting for their form, over all requesters


# --- XEP-0004 data forms ------------------------------------------------------------
def form(type_: str, title: str = "", instructions: str = "", form_type: str | None = None) -> Element:
    x = Element("x", NS_DATA, {"type": type_})
    if title:
        x.add("title", text=title)
    if instructions:
        x.add("instructions", text=instructions)
    if form_type is not None:
        add_field(x, "FORM_TYPE", "hidden", values=[form_type])
    return x


def add_field(
    x: Element, var: str, type_: str, label: str = "", values: list[str] | None = None, required: bool = False
) -> Element:
    attrs = {"var": var, "type": type_}
    if label:
        attrs["label"] = label
    f = x.add("field", attrs=attrs)
    if required:
        f.add("required")
    for value in values or ():
        f.add("value", text=value)
    return f


def read_fields(x: Element) -> dict[str, list[str]]:
    """A submitted form's values by field (XEP-0004 §3.3)."""
    if x.attrs.get("type") != "submit":
        raise StanzaError("bad-request", "a command's form comes back as type 'submit'")
    return {f.attrs.get("var", ""): [v.text for v in f.find_all("value", NS_DATA)] for f in x.find_all("field", NS_DATA)}


# --- commands ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    requester: JID  # the full JID that runs the command
    host: str  # the domain it was sent to
    fields: dict[str, list[str]] | None  # None: the first step, no form yet


@dataclass(frozen=True, slots=True)
class Ask:
    """The command needs this form filled in."""

    form: Element


@dataclass(frozen=True, slots=True)
class Done:
    """The command is complete: a note for the requester and perhaps a result form."""

    note: str
    form: Element | None = None


@dataclass(frozen=True, slots=True)
class Command:
    node: str
    name: str
    allowed: Callable[[JID], bool]
    run: Callable[[Request], Awaitable[Ask | Done]]


@dataclass
class Commands:
    """The ``adhoc`` service: the registry of commands, and their sessions waiting for a form."""

    by_node: dict[str, Command] = field(default_factory=dict)
    sessions: dict[str, tuple[str, JID]] = field(default_factory=dict)  # session id → (node, requester)

    def register(self, command: Command) -> None:
        if command.node in self.by_node:
            raise ValueError(f"the command {command.node} is already registered")
        self.by_node[command.node] = command

    def visible(self, requester: JID) -> list[Command]:
        return [c for c in self.by_node.values() if c.allowed(requester)]

    async def execute(self, event: StanzaEvent) -> Element:
        el = payload(event)
        node = el.attrs.get("node", "")
        command = self.by_node.get(node)
        if command is None:
            raise StanzaError("item-not-found", f"no command {node}")
        requester = event.from_jid
        if not command.allowed(requester):
            raise StanzaError("forbidden", "this command is for the server's administrators")
        action = el.attrs.get("action", "execute")
        sid = el.attrs.get("sessionid")
        if sid is not None and self.sessions.get(sid) != (node, requester):
            raise StanzaError("bad-request", "no such command session")  # §4.4 bad-sessionid
        reply = Element("command", NS_COMMANDS, {"node": node})
        if action == "cancel":
            if sid is not None:
                del self.sessions[sid]
                reply.attrs["sessionid"] = sid
            reply.attrs["status"] = "canceled"
            return reply
        if action not in ("execute", "complete", "next"):
            raise StanzaError("bad-request", f"the action {action} is not offered")  # §4.4 bad-action
        fields = None
        if sid is not None:
            x = el.find("x", NS_DATA)
            if x is None:
                raise StanzaError("bad-request", "submit the command's form")
            fields = read_fields(x)
        outcome = await command.run(Request(requester, event.to_jid.domain, fields))
        if isinstance(outcome, Ask):
            if sid is None:
                if len(self.sessions) >= MAX_SESSIONS:
                    raise StanzaError("resource-constraint", "too many commands are waiting; try again later")
                sid = secrets.token_urlsafe(12)
                self.sessions[sid] = (node, requester)
            reply.attrs.update(sessionid=sid, status="executing")
            reply.add("actions", attrs={"execute": "complete"}).add("complete")
            reply.append(outcome.form)
            return reply
        if sid is not None:
            del self.sessions[sid]
            reply.attrs["sessionid"] = sid
        reply.attrs["status"] = "completed"
        reply.add("note", attrs={"type": "info"}, text=outcome.note)
        if outcome.form is not None:
            reply.append(outcome.form)
        return reply


def setup(mod: ModuleAPI) -> None:
    commands = Commands()
    mod.provide("adhoc", commands)
    mod.add_feature(NS_COMMANDS)

    def items(event: StanzaEvent) -> Element | None:
        if payload(event).attrs.get("node") != NS_COMMANDS:
            return None  # other nodes are disco's
        query = Element("query", NS_ITEMS, {"node": NS_COMMANDS})
        for command in commands.visible(event.from_jid):
            query.add("item", attrs={"jid": event.to_jid.domain, "node": command.node, "name": command.name})
        return query

    def info(event: StanzaEvent) -> Element | None:
        node = payload(event).attrs.get("node")
        command = commands.by_node.get(node or "")
        if command is None:
            return None
        if not command.allowed(event.from_jid):
            raise StanzaError("forbidden")
        query = Element("query", NS_INFO, {"node": command.node})
        query.add("identity", attrs={"category": "automation", "type": "command-node", "name": command.name})
        query.add("feature", attrs={"var": NS_COMMANDS})
        query.add("feature", attrs={"var": NS_DATA})
        return query

    # Before disco's own answers, which know no command nodes.
    mod.hook(f"iq-get/host/{NS_ITEMS}:query", items, priority=10)
    mod.hook(f"iq-get/host/{NS_INFO}:query", info, priority=10)
    mod.hook(f"iq-set/host/{NS_COMMANDS}:command", commands.execute)
