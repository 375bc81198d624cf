"""Handing notifications to local resources: serialized once, written as they are by each session."""

from __future__ import annotations

from collections.abc import Iterable

from sakari.core.router import Resource, Router
from sakari.jid import JID
from sakari.xml.element import Element


def headline_resources(router: Router, jid: JID) -> list[Resource]:
    """Who gets a headline sent to this local address: the resource of a full JID if it is available; for a
    bare JID every available resource of non-negative priority (RFC 6121 §8.5.2.1.1)."""
    if jid.resource:
        found = router.resource(jid)
        return [found] if found is not None and found.available else []
    return [r for r in router.resources(jid) if r.available and r.priority >= 0]


def send_each(router: Router, resources: Iterable[Resource], message: Element, data: bytes) -> None:
    """The same message to each resource: a session with a connection writes the bytes serialized once."""
    for resource in resources:
        if resource.session is not None:
            resource.session.send(message, data)
        else:
            router.send_to([resource], message)
