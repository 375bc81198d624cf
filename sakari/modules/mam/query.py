"""Reading a XEP-0313 query (its data form, XEP-0059 paging) and writing its results, sans-IO.

Form fields: ``with``, ``start``, ``end`` (XEP-0313 §4.1.1), ``before-id``, ``after-id``
and ``ids`` (``urn:xmpp:mam:2#extended``), and XEP-0431's full-text field. A field this
server does not know is refused with bad-request, so that a client never takes
unfiltered results for filtered ones.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from sakari.jid import JIDError, parse_jid
from sakari.modules.mam.rules import NS_MAM
from sakari.storage.base import ArchiveItem, ArchivePage
from sakari.xml import fragment
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS_DATA = "jabber:x:data"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_FULLTEXT = "urn:xmpp:fulltext:0"
FULLTEXT_FIELD = "{urn:xmpp:fulltext:0}fulltext"
MAX_IDS = 250  # ids in one query


@dataclass(frozen=True, slots=True)
class Query:
    queryid: str | None = None
    with_jid: str | None = None
    start: float | None = None
    end: float | None = None
    after_id: str | None = None  # exclusive bounds: the form's after-id/before-id and RSM's after/before together
    before_id: str | None = None
    ids: tuple[str, ...] | None = None
    text: str | None = None
    limit: int = 50
    reverse: bool = False  # RSM <before/>: the page at the newest end of the range
    flip: bool = False  # <flip-page/>: the page's items newest first
    named: tuple[str, ...] = ()  # ids the client named as bounds, which must exist (item-not-found)
    count_only: bool = False  # <max>0</max>: the client asks for the count alone (XEP-0059 §2.6)


def parse_time(text: str) -> float:
    """XEP-0082 date-time; one without a zone is taken as UTC."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise StanzaError("bad-request", f"not a XEP-0082 date-time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _values(field: Element) -> list[str]:
    return [value.text for value in field.find_all("value", NS_DATA)]


def _single(var: str, field: Element) -> str:
    values = _values(field)
    if len(values) != 1:
        raise StanzaError("bad-request", f"the field {var!r} takes one value")
    return values[0]


def _with(text: str, occupants: bool) -> str:
    try:
        jid = parse_jid(text.strip())
    except JIDError as e:
        raise StanzaError("jid-malformed", e.text) from None
    if occupants:
        return str(jid)  # a room's archive knows senders by room/nick
    # A user's archive knows contacts by bare JID: a full JID filters by its account, as a bare one would.
    return str(jid.bare)


def _later(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else max(a, b)  # ids sort like time


def _earlier(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else min(a, b)


def _form(x: Element, occupants: bool) -> dict[str, object]:
    found: dict[str, object] = {}
    for field in x.find_all("field", NS_DATA):
        var = field.attrs.get("var", "")
        if var == "FORM_TYPE":
            if _single(var, field) != NS_MAM:
                raise StanzaError("bad-request", f"FORM_TYPE must be {NS_MAM}")
        elif var == "with":
            found["with_jid"] = _with(_single(var, field), occupants)
        elif var in ("start", "end"):
            found[var] = parse_time(_single(var, field))
        elif var in ("after-id", "before-id"):
            found[var.replace("-", "_")] = _single(var, field).strip()
        elif var == "ids":
            ids = tuple(v.strip() for v in _values(field))
            if len(ids) > MAX_IDS:
                raise StanzaError("policy-violation", f"at most {MAX_IDS} ids in one query")
            found["ids"] = ids
        elif var == FULLTEXT_FIELD:
            text = " ".join(_values(field)).strip()
            if text:  # XEP-0431 §2.2: an empty field searches nothing
                found["text"] = text
        else:
            raise StanzaError("bad-request", f"this server does not filter by {var!r}")
    return found


def parse_query(query: Element, max_results: int, occupants: bool = False) -> Query:
    """A query element (``<query xmlns='urn:xmpp:mam:2'/>``) as a Query; StanzaError when malformed.
    ``occupants``: the archive is a room's, whose 'with' is an occupant (room@service/nick)."""
    x = query.find("x", NS_DATA)
    found = _form(x, occupants) if x is not None else {}
    form_after, form_before = found.pop("after_id", None), found.pop("before_id", None)
    rsm = query.find("set", NS_RSM)
    limit, rsm_after, rsm_before, reverse = max_results, None, None, False
    if rsm is not None:
        if rsm.find("index", NS_RSM) is not None:
            raise StanzaError("feature-not-implemented", "paging by index is not supported; use after and before")
        given = rsm.child_text("max", NS_RSM)
        if given is not None:
            try:
                limit = int(given.strip())
            except ValueError:
                raise StanzaError("bad-request", "<max/> must be a number") from None
            if limit < 0:
                raise StanzaError("bad-request", "<max/> must not be negative")
        rsm_after = rsm.child_text("after", NS_RSM)
        if rsm_after is not None and not rsm_after.strip():
            raise StanzaError("bad-request", "<after/> needs an id")
        before = rsm.find("before", NS_RSM)
        if before is not None:
            reverse = True  # an empty <before/> asks for the last page
            rsm_before = before.text.strip() or None
    named = tuple(i for i in (form_after, form_before, rsm_after, rsm_before) if i)
    return Query(
        queryid=query.attrs.get("queryid"),
        after_id=_later(form_after, rsm_after),  # type: ignore[arg-type]
        before_id=_earlier(form_before, rsm_before),  # type: ignore[arg-type]
        limit=min(limit, max_results),
        reverse=reverse,
        flip=query.find("flip-page") is not None,
        named=named,
        count_only=limit == 0,
        **found,  # type: ignore[arg-type]
    )


def form_fields() -> Element:
    """The query form a client may fill in (XEP-0313 §4.1.1, answering an iq get)."""
    query = Element("query", NS_MAM)
    x = query.add("x", NS_DATA, {"type": "form"})
    x.add("field", attrs={"type": "hidden", "var": "FORM_TYPE"}).add("value", text=NS_MAM)
    for var, kind in (
        ("with", "jid-single"),
        ("start", "text-single"),
        ("end", "text-single"),
        ("before-id", "text-single"),
        ("after-id", "text-single"),
        ("ids", "list-multi"),
        (FULLTEXT_FIELD, "text-single"),
    ):
        x.add("field", attrs={"type": kind, "var": var})
    return query


def precise_stamp(timestamp: float) -> str:
    """XEP-0082 date-time to the microsecond, like archive ids: a client filtering from one finds that message."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def result_message(
    item: ArchiveItem, to: str, archive: str, queryid: str | None, shown: Callable[[Element], Element] | None = None
) -> Element:
    """One archived message as a query result (XEP-0313 §4.2), forwarded (XEP-0297) with its time;
    ``shown`` gives what of the stored stanza this querier may see (a room hides real JIDs)."""
    message = Element("message", attrs={"to": to, "from": archive})
    result = message.add("result", NS_MAM, {"id": item.id})
    if queryid is not None:
        result.attrs["queryid"] = queryid
    forwarded = result.add("forwarded", NS_FORWARD)
    forwarded.add("delay", NS_DELAY, {"stamp": precise_stamp(item.timestamp)})
    stanza = fragment.load(item.stanza)
    forwarded.append(stanza if shown is None else shown(stanza))
    return message


def fin(page: ArchivePage, query: Query) -> Element:
    """The iq result's payload: whether the page is the last one, and the XEP-0059 set."""
    done = Element("fin", NS_MAM)
    if page.complete:
        done.attrs["complete"] = "true"
    rsm = done.add("set", NS_RSM)
    items = page.items
    if items:
        ends = (items[-1], items[0]) if query.flip else (items[0], items[-1])
        rsm.add("first", text=ends[0].id)
        rsm.add("last", text=ends[1].id)
    if page.count is not None:
        rsm.add("count", text=str(page.count))
    return done
