"""Elements to bytes and back, for storage: self-contained (namespace declared on the root)."""

from sakari.xml.element import Element
from sakari.xml.parser import StreamParser

_WRAPPER = b"<fragment xmlns='jabber:client'>"


def dump(el: Element) -> bytes:
    return el.serialize("").encode()


def load(data: bytes) -> Element:
    parser = StreamParser(max_stanza_size=len(data) + 1024)
    parser.feed(_WRAPPER)
    events = parser.feed(data)
    if len(events) != 1 or events[0].__class__ is not Element:
        raise ValueError("stored data is not one element")
    return events[0]  # type: ignore[return-value]
