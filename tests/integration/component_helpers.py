"""An external component (XEP-0114) written with slixmpp's ComponentXMPP, recording what it receives.

What it receives is recorded in ``jabber:client`` (slixmpp hands components their stanzas in
``jabber:component:accept``), so the harness's predicates (``is_message``…) apply to it too.
"""

from __future__ import annotations

import asyncio
import copy
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

from sakari_process import HOST
from xmpp_harness import WAIT, Inbox, stream_error_condition

NS_ACCEPT = "jabber:component:accept"
_STANZAS = {f"{{{NS_ACCEPT}}}{name}" for name in ("message", "presence", "iq")}


class _AnyStanza(MatcherBase):
    def match(self, xml) -> bool:  # noqa: D102 - slixmpp API
        return xml.xml.tag in _STANZAS


def as_client(el: ET.Element) -> ET.Element:
    el = copy.deepcopy(el)
    for e in el.iter():
        if e.tag.startswith("{" + NS_ACCEPT + "}"):
            e.tag = "{jabber:client}" + e.tag[len(NS_ACCEPT) + 2:]
    return el


class ComponentFailed(Exception):
    def __init__(self, reason: str, detail: object) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Component:
    def __init__(self, xmpp: slixmpp.ComponentXMPP) -> None:
        self.xmpp = xmpp
        self.inbox = Inbox()
        self.stream_errors: list[str] = []
        self.disconnected = asyncio.get_running_loop().create_future()
        xmpp.register_handler(Callback("test:any", _AnyStanza(None), lambda s: self.inbox.put(as_client(s.xml))))
        xmpp.add_event_handler("stream_error", lambda err: self.stream_errors.append(stream_error_condition(err.xml) or "?"))

        def gone(_reason: object) -> None:
            if not self.disconnected.done():
                self.disconnected.set_result(True)

        xmpp.add_event_handler("disconnected", gone)

    def send(self, xml: str) -> None:
        self.xmpp.send_raw(xml)

    async def expect_disconnect(self) -> None:
        await asyncio.wait_for(asyncio.shield(self.disconnected), WAIT)

    def abort(self) -> None:
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is not None:
            self.xmpp.transport.abort()


async def connect_component(port: int, domain: str, secret: str, plugins: tuple[str, ...] = ()) -> Component:
    """Connect a component and wait for the server's <handshake/>; ComponentFailed if it does not come."""
    xmpp = slixmpp.ComponentXMPP(domain, secret, HOST, port)
    xmpp.whitespace_keepalive = False
    for plugin in plugins:
        xmpp.register_plugin(plugin)
    component = Component(xmpp)
    outcome = asyncio.get_running_loop().create_future()

    def settle(reason: str, detail: object = None) -> None:
        if not outcome.done():
            outcome.set_result((reason, detail))

    xmpp.add_event_handler("session_start", lambda _: settle("ok"))
    xmpp.add_event_handler("stream_error", lambda err: settle("stream_error", stream_error_condition(err.xml)))
    xmpp.add_event_handler("disconnected", lambda reason: settle("disconnected", reason))
    xmpp.add_event_handler("connection_failed", lambda err: settle("connection_failed", err))
    xmpp.connect()
    try:
        reason, detail = await asyncio.wait_for(outcome, WAIT)
    except TimeoutError:
        reason, detail = "timeout", f"no handshake within {WAIT}s"
    if reason != "ok":
        component.abort()
        raise ComponentFailed(reason, detail)
    return component
