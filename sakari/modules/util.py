"""Small helpers shared by protocol modules."""

from __future__ import annotations

import datetime

from collections.abc import Callable

from sakari.core.events import StanzaEvent
from sakari.xml.errors import StanzaError
from sakari.xml.element import Element


def payload(event: StanzaEvent) -> Element:
    """The single child of an iq get/set (the router guarantees there is exactly one)."""
    child = event.stanza.first_child()
    assert child is not None
    return child


def owner_of(event: StanzaEvent) -> str:
    """The account an iq to a bare JID (or to oneself) is about."""
    return str(event.to_jid.bare)


def utc_stamp(when: datetime.datetime | None = None) -> str:
    """XEP-0082 date-time in UTC."""
    when = when or datetime.datetime.now(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def refuse(condition: str, text: str) -> Callable[[StanzaEvent], None]:
    """A handler that answers every request with this error (e.g. for others' private data)."""

    def handler(event: StanzaEvent) -> None:
        raise StanzaError(condition, text)

    return handler
