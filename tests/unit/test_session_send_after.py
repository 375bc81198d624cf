"""Session.send_after: a stanza an outbound filter held back goes on through the filters after it only."""

from __future__ import annotations

from sakari.core.events import Events
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.session import Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import parse_jid
from sakari.xml.element import Element
from sakari.xml.errors import StreamError


class Written:
    stanza_ns = "jabber:client"

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)

    async def writable(self) -> bool:
        return True

    def close_stream(self, error: StreamError | None = None) -> None:
        pass


def test_a_released_stanza_skips_the_filters_before_the_one_that_held_it():
    hosts = Hosts()
    hosts.add_users("example.org")
    events = Events()
    conn = Written()
    session = Session(parse_jid("a@example.org/r"), SessionManager(LocalRouter(hosts, events), events, Tasks()), conn)
    seen: list[str] = []
    held: list[Element] = []

    def first(s: Session, stanza: Element) -> Element:
        seen.append("first")
        return stanza

    def holder(s: Session, stanza: Element) -> Element | None:
        seen.append("holder")
        held.append(stanza)
        return None

    def last(s: Session, stanza: Element) -> Element:
        seen.append("last")
        return stanza

    session.outbound.add(first, 10)
    session.outbound.add(holder, 0)
    session.outbound.add(last, -10)
    session.send(Element("presence"))
    assert seen == ["first", "holder"] and conn.data == []
    session.send_after(holder, held[0])
    assert seen == ["first", "holder", "last"]
    assert conn.data == [b"<presence/>"]
