"""A room's recent messages for newcomers, and the legacy <history/> limits (XEP-0045 §7.2.15)."""

from __future__ import annotations

import datetime
from collections import deque
from dataclasses import dataclass

from sakari.modules.muc.model import NS_DELAY, NS_SID
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError


@dataclass(slots=True)
class HistoryLimits:
    maxstanzas: int
    maxchars: int | None = None
    seconds: float | None = None
    since: float | None = None

    @classmethod
    def parse(cls, history: Element | None, default: int) -> HistoryLimits:
        """The limits a joining client asked for; the room's length caps them all."""
        if history is None:
            return cls(default)
        try:
            maxstanzas = int(history.attrs.get("maxstanzas", default))
            maxchars = int(history.attrs["maxchars"]) if "maxchars" in history.attrs else None
            seconds = float(history.attrs["seconds"]) if "seconds" in history.attrs else None
            since = _parse_stamp(history.attrs["since"]) if "since" in history.attrs else None
        except ValueError:
            raise StanzaError("bad-request", "<history/> limits are numbers and a XEP-0082 date-time") from None
        return cls(max(0, min(maxstanzas, default)), maxchars, seconds, since)


def _parse_stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stamp(when: float) -> str:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Entry:
    __slots__ = ("_chars", "stanza", "when")

    def __init__(self, stanza: Element, when: float) -> None:
        self.stanza = stanza  # as sent, with its delay already attached
        self.when = when
        self._chars: int | None = None

    @property
    def chars(self) -> int:
        # Counted only when a newcomer asks for maxchars: a serialization per message would show on the hot path.
        if self._chars is None:
            self._chars = len(self.stanza.serialize())
        return self._chars


class History:
    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()

    def add(self, message: Element, when: float, length: int, room: str) -> None:
        if length <= 0:
            self.entries.clear()
            return
        kept = message.shallow_copy()
        kept.children = list(message.children)
        kept.add("delay", NS_DELAY, {"from": room, "stamp": stamp(when)})
        self.entries.append(_Entry(kept, when))
        while len(self.entries) > length:
            self.entries.popleft()

    def select(self, limits: HistoryLimits, now: float) -> list[Element]:
        """The newest messages within every limit, oldest first."""
        chosen: list[Element] = []
        chars = 0
        for entry in reversed(self.entries):
            if len(chosen) >= limits.maxstanzas:
                break
            if limits.seconds is not None and now - entry.when > limits.seconds:
                break
            if limits.since is not None and entry.when < limits.since:
                break
            if limits.maxchars is not None:
                chars += entry.chars
                if chars > limits.maxchars:
                    break
            chosen.append(entry.stanza)
        chosen.reverse()
        return chosen

    def restore(self, stanzas: list[tuple[Element, float]], length: int, room: str) -> None:
        """The newest of a room's archived messages (oldest first, as stored: without a delay)."""
        self.entries.clear()
        for stanza, when in stanzas:
            self.add(stanza, when, length, room)

    def find(self, stanza_id: str) -> Element | None:
        for entry in self.entries:
            if stanza_id_of(entry.stanza) == stanza_id:
                return entry.stanza
        return None

    def replace(self, stanza_id: str, stanza: Element) -> None:
        """A retracted message's tombstone in its place (XEP-0424 §5), so newcomers no longer get it."""
        for entry in self.entries:
            if stanza_id_of(entry.stanza) == stanza_id:
                entry.stanza = stanza
                entry._chars = None


def stanza_id_of(message: Element) -> str | None:
    """The id the room gave a message (XEP-0359; foreign ones were dropped on the way in)."""
    found = message.find("stanza-id", NS_SID)
    return found.attrs.get("id") if found is not None else None
