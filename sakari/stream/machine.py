"""What the stream state machines (c2s, s2s, components) share, apart from what each negotiates.

:class:`StreamMachine` turns the framing's events into the machine's own
handlers (``_header``, ``_element``, ``close``), ends the stream on a
StreamError, and holds what is to be written; a machine names its closed
state (``CLOSED``) and its end event (``ENDED``). :func:`stream_version`
reads a header's ``version``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from sakari.stream.framing import Framing
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamClosed, StreamOpened

E = TypeVar("E")


class StreamMachine(Generic[E]):
    CLOSED: ClassVar[Any]  # the state in which the stream has ended: input is ignored, close() does nothing
    ENDED: ClassVar[Callable[[StreamError | None], Any]]  # the event close() reports, with the error we sent

    framing: Framing
    state: Any
    _out: list[bytes]
    _events: list[E]
    _header_sent: bool
    _send_header: Callable[[], None]  # ours, before the error and the footer if it was not sent yet

    def receive(self, data: bytes) -> list[E]:
        closed = self.CLOSED
        if self.state is closed:
            return []
        try:
            for item in self.framing.feed(data):
                if self.state is closed:
                    break
                if item.__class__ is Element:
                    self._element(item)  # type: ignore[arg-type]
                elif isinstance(item, StreamOpened):
                    self._header(item)
                elif isinstance(item, StreamClosed):
                    self.close()
        except StreamError as e:
            self.close(e)
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """What to write, as one byte string (a byte stream such as TCP)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def close(self, error: StreamError | None = None) -> None:
        """End the stream from our side, with ``error`` if given; inside receive() it reports the end event."""
        if self.state is self.CLOSED:
            return
        if not self._header_sent:
            self._send_header()
        if error is not None:
            self._out.append(self.framing.wrap("error", error.to_element().children))
        self._out.append(self.framing.footer())
        self.state = self.CLOSED
        self._events.append(self.ENDED(error))

    def _flush_events(self) -> list[E]:
        events, self._events = self._events, []
        return events

    def _header(self, opened: StreamOpened) -> None:
        raise NotImplementedError

    def _element(self, el: Element) -> None:
        raise NotImplementedError


def stream_version(text: str) -> tuple[int, int]:
    """A header's ``version`` as (major, minor) (RFC 6120 §4.7.5); one that is no number ends the stream."""
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise StreamError("unsupported-version") from None
