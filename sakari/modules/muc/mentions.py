"""Whether a room message mentions someone: for push notifications to members who are away (sans-IO).

A message mentions a member when its body names one of the member's nicks in the room (the
registered nick, XEP-0045 §7.10, or the nick the member last used there) as a word of its own, in
any case ("Alice:", "@alice", "thanks alice!" but not "Malice"), or when it carries a XEP-0372
reference of type ``mention`` to the member's occupant address or account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import unquote

from sakari.jid import JID
from sakari.xml.element import Element

NS_REFERENCE = "urn:xmpp:reference:0"


@lru_cache(maxsize=4096)
def _word(nick: str) -> re.Pattern[str]:
    # Not inside a longer word on either side; a nick that begins or ends with punctuation still matches.
    return re.compile(rf"(?<!\w){re.escape(nick)}(?!\w)", re.IGNORECASE)


def mentions(message: Element, room: JID, nicks: Iterable[str], account: JID) -> bool:
    """Whether ``message`` (as the room relays it) mentions the member ``account`` known by ``nicks``."""
    names = [n for n in nicks if n]
    references = message.find_all("reference", NS_REFERENCE)
    if references:
        uris = {f"xmpp:{account.text}"} | {f"xmpp:{room.text}/{n}" for n in names}
        for reference in references:
            if reference.attrs.get("type") == "mention" and unquote(reference.attrs.get("uri", "")) in uris:
                return True
    body = message.child_text("body") or ""
    return any(_word(n).search(body) for n in names)
