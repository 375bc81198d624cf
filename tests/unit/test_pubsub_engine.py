"""The pubsub node engine, sans-IO: items and max_items, access models, configuration forms, publish-options
preconditions, the wire format; and PEP's fan-out, which serializes a notification once for every recipient."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sakari.core.events import Events
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.session import Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import parse_jid
from sakari.modules.pep import Pep
from sakari.modules.pubsub.config import (
    FORM_NODE_CONFIG,
    FORM_PUBLISH_OPTIONS,
    MAX,
    NodeConfig,
    check_preconditions,
    config_form,
    configure,
    publish_options,
)
from sakari.modules.pubsub.node import Node
from sakari.modules.pubsub.protocol import (
    NS_ERRORS,
    NS_EVENT,
    NS_PUBSUB,
    Notification,
    PubsubError,
    items_event,
    parse_request,
)
from sakari.storage.base import RosterItem
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError, error_reply


def payload(n: int) -> Element:
    return Element("n", "urn:example", children=[str(n)])


def submitted(form_type: str, **fields: str) -> Element:
    form = Element("x", "jabber:x:data", {"type": "submit"})
    form.add("field", attrs={"var": "FORM_TYPE"}).add("value", text=form_type)
    for key, value in fields.items():
        form.add("field", attrs={"var": f"pubsub#{key}"}).add("value", text=value)
    return form


# --- items -------------------------------------------------------------------------------
def test_max_items_keeps_the_newest_and_reports_what_went():
    node = Node("n", NodeConfig(max_items=2))
    node.publish("a", payload(1), server_max=10)
    node.publish("b", payload(2), server_max=10)
    _, evicted = node.publish("c", payload(3), server_max=10)
    assert evicted == ["a"] and list(node.items) == ["b", "c"]


def test_max_means_the_server_limit():
    node = Node("n", NodeConfig(max_items=MAX))
    for i in range(5):
        node.publish(str(i), payload(i), server_max=3)
    assert list(node.items) == ["2", "3", "4"]


def test_republished_id_replaces_and_becomes_newest():
    node = Node("n", NodeConfig(max_items=5))
    for i in "abc":
        node.publish(i, payload(0), server_max=10)
    item, _ = node.publish("a", payload(9), server_max=10)
    assert list(node.items) == ["b", "c", "a"] and node.last() is item and item.ns == NS_EVENT


def test_without_persistence_only_the_last_item_stays():
    node = Node("n", NodeConfig(max_items=10, persist_items=False))
    node.publish("a", payload(1), server_max=10)
    node.publish("b", payload(2), server_max=10)
    assert list(node.items) == ["b"]


def test_publish_without_id_gets_a_fresh_one():
    node = Node("n")
    first, _ = node.publish(None, payload(1), server_max=10)
    assert first.attrs["id"]


def test_select_by_ids_and_newest():
    node = Node("n", NodeConfig(max_items=10))
    for i in "abcd":
        node.publish(i, payload(0), server_max=10)
    assert [i.attrs["id"] for i in node.select(2)] == ["c", "d"]
    assert [i.attrs["id"] for i in node.select(ids=["b", "zz"])] == ["b"]


def test_retract_of_a_missing_item_is_item_not_found():
    with pytest.raises(StanzaError) as e:
        Node("n").retract("x")
    assert e.value.condition == "item-not-found"


# --- access -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, subscription, groups, affiliation, subscribed, allowed",
    [
        ("presence", "from", (), None, None, True),
        ("presence", "both", (), None, None, True),
        ("presence", "to", (), None, None, False),
        ("presence", None, (), None, None, False),
        ("open", None, (), None, None, True),
        ("open", None, (), "outcast", None, False),
        ("roster", "none", ("friends",), None, None, True),
        ("roster", None, (), None, None, False),
        ("whitelist", "both", (), None, None, False),
        ("whitelist", None, (), "member", None, True),
        ("whitelist", None, (), "publisher", None, True),
        ("authorize", None, (), None, "pending", False),
        ("authorize", None, (), None, "subscribed", True),
    ],
)
def test_access_models(model, subscription, groups, affiliation, subscribed, allowed):
    node = Node("n", NodeConfig(access_model=model, roster_groups_allowed=("friends",) if model == "roster" else ()))
    if affiliation:
        node.affiliations["b@x"] = affiliation
    if subscribed:
        node.subscriptions["b@x"] = subscribed
    assert node.may_see("b@x", "a@x", subscription, groups) is allowed
    assert node.may_see("a@x", "a@x", None)  # the owner always


# --- configuration and preconditions ---------------------------------------------------------
def test_configure_form_round_trip():
    config = configure(NodeConfig(), submitted(FORM_NODE_CONFIG, access_model="open", max_items="max", persist_items="0"))
    assert (config.access_model, config.max_items, config.persist_items) == ("open", MAX, False)
    fields = {f.attrs["var"]: [v.text for v in f.find_all("value")] for f in config_form(config).find_all("field")}
    assert fields["pubsub#access_model"] == ["open"] and fields["pubsub#max_items"] == ["max"]
    assert NodeConfig.from_dict(config.to_dict()) == config


def test_bad_config_value_is_not_acceptable():
    with pytest.raises(StanzaError) as e:
        configure(NodeConfig(), submitted(FORM_NODE_CONFIG, access_model="everyone"))
    assert e.value.condition == "not-acceptable"


def test_preconditions_met_and_not_met():
    wanted = publish_options(submitted(FORM_PUBLISH_OPTIONS, access_model="open", persist_items="true"))
    check_preconditions(NodeConfig(access_model="open"), wanted)
    with pytest.raises(PubsubError) as e:
        check_preconditions(NodeConfig(), wanted)
    assert (e.value.condition, e.value.pubsub_condition) == ("conflict", "precondition-not-met")


def test_an_unknown_publish_option_cannot_be_met():
    with pytest.raises(PubsubError) as e:
        publish_options(submitted(FORM_PUBLISH_OPTIONS, frobnicate="1"))
    assert e.value.pubsub_condition == "precondition-not-met"


def test_pubsub_error_carries_both_conditions():
    iq = Element("iq", attrs={"type": "set", "id": "1", "from": "a@x/r"})
    reply = error_reply(iq, PubsubError("conflict", "precondition-not-met"))
    error = reply.find("error")
    assert error.find("conflict", "urn:ietf:params:xml:ns:xmpp-stanzas") is not None
    assert error.find("precondition-not-met", NS_ERRORS) is not None


def test_parse_request_takes_the_action_beside_its_options():
    query = Element("pubsub", NS_PUBSUB)
    query.add("publish", attrs={"node": "n"})
    query.add("publish-options")
    request = parse_request(query)
    assert request.verb == "publish" and request.node == "n" and request.options.name == "publish-options"
    alone = Element("pubsub", "http://jabber.org/protocol/pubsub#owner")
    alone.add("configure", attrs={"node": "n"})
    assert parse_request(alone).verb == "configure"


def test_notification_bytes_are_the_message_serialized():
    event = items_event("n", [Element("item", NS_EVENT, {"id": "1"}, [Element("x", "urn:x", {"a": '"&'})])])
    message, data = Notification(event, "a@x").to("b@x/r<")
    assert message.serialize().encode() == data


# --- fan-out --------------------------------------------------------------------------------
class Wire:
    stanza_ns = "jabber:client"

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


async def test_a_notification_to_many_contacts_is_serialized_once(monkeypatch):
    hosts = Hosts()
    hosts.add_users("x")
    events = Events()
    router = LocalRouter(hosts, events)
    manager = SessionManager(router, events, Tasks())
    owner = parse_jid("owner@x")
    contacts = [f"c{i}@x" for i in range(200)]  # the contact list
    wires = []
    for jid in contacts:
        wire = Wire()
        session = Session(parse_jid(f"{jid}/r"), manager, wire)
        router.bind(session)
        router.set_presence(session, Element("presence"))
        wires.append(wire)
    roster = SimpleNamespace(items={jid: RosterItem(jid, subscription="both") for jid in contacts})

    async def get_roster(owner: str) -> Any:
        return roster

    services = {"roster": SimpleNamespace(get=get_roster), "caps": SimpleNamespace(features=lambda r: frozenset({"n+notify"}))}
    mod = SimpleNamespace(router=router, require=services.__getitem__, storage=SimpleNamespace(map=lambda name: None))
    pep = Pep(mod)  # type: ignore[arg-type]
    serializations = 0
    original = Element.serialize

    def counting(self: Element, parent_ns: str = "jabber:client") -> str:
        nonlocal serializations
        serializations += 1
        return original(self, parent_ns)

    monkeypatch.setattr(Element, "serialize", counting)
    await pep.notify(owner, Node("n"), items_event("n", [Element("item", NS_EVENT, {"id": "1"}, [payload(1)])]))
    assert serializations == 1
    assert all(len(w.written) == 1 for w in wires)
    assert wires[7].written[0].startswith(b'<message to="c7@x/r" from="owner@x" type="headline"><event')
