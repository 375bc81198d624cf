"""Flags on a resource: set by mark, cleared by unmark (a client may turn a feature off again)."""

from __future__ import annotations

from sakari.core.events import Events
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.session import Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import parse_jid


def test_a_flag_can_be_cleared_again():
    hosts = Hosts()
    hosts.add_users("example.org")
    events = Events()
    router = LocalRouter(hosts, events)
    session = Session(parse_jid("juliet@example.org/balcony"), SessionManager(router, events, Tasks()), None)
    router.bind(session)
    router.mark(session, "carbons")
    assert router.resource_of(session).flags == {"carbons"}
    router.unmark(session, "carbons")
    router.unmark(session, "carbons")  # clearing a flag that is not set is no error
    assert router.resource_of(session).flags == set()
