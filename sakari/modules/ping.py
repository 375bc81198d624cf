"""XEP-0199 XMPP Ping: answer pings to the server and to one's own account, and ping silent clients.

A session that has sent nothing for ``c2s.ping_interval`` seconds is pinged;
one that does not answer within ``c2s.ping_timeout`` is closed with
connection-timeout, so a client that vanished without closing its
connection does not keep its presence (and its messages) forever.
"""

from __future__ import annotations

import asyncio

from sakari.config import declare, positive
from sakari.core import events as E
from sakari.core.events import ServerEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.core.session import Session
from sakari.jid import JID
from sakari.xml.element import Element
from sakari.xml.errors import StreamError

NS = "urn:xmpp:ping"

PING_INTERVAL = declare(
    "c2s.ping_interval", 300.0, "Seconds of silence after which the server pings a client (XEP-0199).", positive
)
PING_TIMEOUT = declare("c2s.ping_timeout", 60.0, "Seconds to wait for the answer to that ping before dropping the session.", positive)


def pong(event: StanzaEvent) -> bool:
    return True


def setup(mod: ModuleAPI) -> None:
    interval = mod.option(PING_INTERVAL)
    timeout = mod.option(PING_TIMEOUT)
    pinging: set[Session] = set()  # the local sessions with a ping in flight

    async def ping(session: Session) -> None:
        pinging.add(session)
        iq = Element("iq", attrs={"type": "get"})
        iq.add("ping", NS)
        try:
            await mod.request(iq, session.jid, JID("", session.host), timeout)
        except TimeoutError:
            mod.log.info("event=ping-timeout session=%s", session)
            # The connection is dead, not necessarily the session: a phone with stream management resumes it.
            session.end_connection(StreamError("connection-timeout", "no answer to ping"))
        finally:
            pinging.discard(session)

    async def keepalive() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(interval, timeout) / 2)
            now = loop.time()
            for session in mod.sessions:
                if session.connection is not None and session not in pinging and now - session.last_active > interval:
                    mod.spawn(ping(session))

    running: list[asyncio.Task[None]] = []

    def start(event: ServerEvent) -> None:
        running.append(mod.spawn(keepalive()))

    def stop(event: ServerEvent) -> None:
        for task in running:
            task.cancel()

    mod.add_feature(NS)
    mod.hook(f"iq-get/host/{NS}:ping", pong)
    mod.hook(f"iq-get/self/{NS}:ping", pong)
    mod.hook(f"iq-get/service/{NS}:ping", pong)
    mod.hook(E.SERVER_STARTED, start)
    mod.hook(E.SERVER_STOPPING, stop)
