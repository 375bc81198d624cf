"""Helpers for the message archive tests: a server with the archive on, queries and their results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from xmpp_harness import Client, q

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_DATA = "jabber:x:data"
NS_CLIENT = "jabber:client"

MODULES = [
    "roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking",
    "contact_info", "mam",
]


def mam_config(extra: str = "", modules: Iterable[str] = ()) -> str:
    enabled = ", ".join(f'"{m}"' for m in [*MODULES, *modules])
    return f"[modules]\nenabled = [{enabled}]\n{extra}"


@dataclass
class Results:
    messages: list[ET.Element]  # the forwarded originals, in the order they came
    ids: list[str]  # each result's archive id
    stamps: list[str]
    fin: ET.Element

    @property
    def bodies(self) -> list[str | None]:
        return [m.findtext(q(NS_CLIENT, "body")) for m in self.messages]

    @property
    def complete(self) -> bool:
        return self.fin.get("complete") == "true"

    def rsm(self, name: str) -> str | None:
        return self.fin.findtext(f"{q(NS_RSM, 'set')}/{q(NS_RSM, name)}")


def form(**fields: str | list[str]) -> str:
    """A query form; keyword names use _ for - (after_id → after-id)."""
    inner = f"<field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>"
    for name, value in fields.items():
        var = "{urn:xmpp:fulltext:0}fulltext" if name == "fulltext" else name.replace("_", "-")
        values = value if isinstance(value, list) else [value]
        inner += f"<field var={quoteattr(var)}>" + "".join(f"<value>{escape(v)}</value>" for v in values) + "</field>"
    return f"<x xmlns='{NS_DATA}' type='submit'>{inner}</x>"


def rsm(max: int | None = None, after: str | None = None, before: str | None = None) -> str:
    inner = "" if max is None else f"<max>{max}</max>"
    if after is not None:
        inner += f"<after>{after}</after>"
    if before is not None:
        inner += f"<before>{before}</before>" if before else "<before/>"
    return f"<set xmlns='{NS_RSM}'>{inner}</set>"


def query_payload(queryid: str, inner: str = "") -> str:
    return f"<query xmlns='{NS_MAM}' queryid={quoteattr(queryid)}>{inner}</query>"


async def mam_query(client: Client, inner: str = "", extra: str = "") -> Results:
    """Query one's archive and collect the results that came before the iq result."""
    queryid = client.next_id("q")
    mark = client.inbox.mark()
    result = await client.iq("set", query_payload(queryid, inner + extra))
    done = result.find(q(NS_MAM, "fin"))
    assert done is not None, f"no <fin/> in {ET.tostring(result)!r}"
    messages, ids, stamps = [], [], []
    for el in client.inbox.since(mark):
        found = el.find(q(NS_MAM, "result"))
        if found is None or found.get("queryid") != queryid:
            continue
        forwarded = found.find(q(NS_FORWARD, "forwarded"))
        assert forwarded is not None
        messages.append(forwarded.find(q(NS_CLIENT, "message")))
        stamps.append(forwarded.find(q(NS_DELAY, "delay")).get("stamp"))
        ids.append(found.get("id"))
    return Results(messages, ids, stamps, done)


def stanza_id(message: ET.Element, by: str) -> str | None:
    for sid in message.findall(q(NS_SID, "stanza-id")):
        if sid.get("by") == by:
            return sid.get("id")
    return None
