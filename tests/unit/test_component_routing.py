"""Stanzas from a component enter the router with its domain and subdomains, and may leave this server."""

from __future__ import annotations

import asyncio

import pytest

from sakari.core.events import Events
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.router import ROUTE_REMOTE
from sakari.jid import parse_jid
from sakari.xml.element import Element
from sakari.xml.errors import StreamError
from sakari.xml.parser import StreamParser

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def stanza(xml: str) -> Element:
    parser = StreamParser()
    parser.feed(HEADER)
    (el,) = parser.feed(xml.encode())
    return el  # type: ignore[return-value]


async def test_a_components_stanza_to_a_domain_not_served_here_gets_remote_server_not_found() -> None:
    hosts = Hosts()
    hosts.add_users("example.org")
    component = hosts.add_component("gateway.example.org")
    out: list[Element] = []
    component.outlet = out.append
    router = LocalRouter(hosts, Events())
    await router.from_external(
        stanza("<message from='u@gateway.example.org' to='a@elsewhere.example' id='m'/>"),
        "gateway.example.org", subdomains=True, outbound=True,
    )
    for _ in range(3):  # the error travels to the component like any stanza: a task of its own
        await asyncio.sleep(0)
    (error,) = out
    assert error.attrs["type"] == "error" and error.attrs["to"] == "u@gateway.example.org"
    assert error.find("error").first_child().name == "remote-server-not-found"


async def test_a_components_stanza_to_another_domain_goes_to_route_remote_when_federation_takes_it() -> None:
    hosts = Hosts()
    hosts.add_users("example.org")
    hosts.add_component("gateway.example.org")
    events = Events()
    taken = []
    events.hook(ROUTE_REMOTE, lambda event: taken.append(event) or True)
    router = LocalRouter(hosts, events)
    await router.from_external(
        stanza("<message from='u@gateway.example.org' to='a@elsewhere.example'/>"),
        "gateway.example.org", subdomains=True, outbound=True,
    )
    assert [str(e.to_jid) for e in taken] == ["a@elsewhere.example"]


async def test_without_outbound_another_domain_is_still_host_unknown() -> None:
    hosts = Hosts()
    hosts.add_users("example.org")
    router = LocalRouter(hosts, Events())
    with pytest.raises(StreamError) as caught:
        await router.from_external(stanza("<message from='a@remote.example' to='b@elsewhere.example'/>"), "remote.example")
    assert caught.value.condition == "host-unknown"


async def test_a_request_on_an_accounts_behalf_gets_the_answer_of_a_local_handler() -> None:
    # request() with a user's bare JID as sender (XEP-0356 privileged iq): the answer must come back to it.
    hosts = Hosts()
    hosts.add_users("example.org")
    events = Events()
    events.hook("iq-get/self/urn:example:q:query", lambda event: Element("query", "urn:example:q"))
    router = LocalRouter(hosts, events)
    iq = Element("iq", attrs={"type": "get"})
    iq.add("query", "urn:example:q")
    user = parse_jid("juliet@example.org")
    answer = await asyncio.wait_for(router.request(iq, user, from_jid=user), 5)
    assert answer.attrs["type"] == "result" and answer.find("query", "urn:example:q") is not None
