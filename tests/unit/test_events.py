"""The hook registry: priority order, stop semantics, sync/async handlers, and loud misspellings."""

from __future__ import annotations

import asyncio

import pytest

from sakari.core import events as E
from sakari.core.events import Events


def recorder(log: list[str], name: str, result: object = None):  # type: ignore[no-untyped-def]
    def handler(event: object) -> object:
        log.append(name)
        return result

    return handler


def async_recorder(log: list[str], name: str, result: object = None):  # type: ignore[no-untyped-def]
    async def handler(event: object) -> object:
        log.append(name)
        return result

    return handler


async def test_handlers_run_by_descending_priority_then_in_hook_order() -> None:
    events, log = Events(), []
    events.hook("message/bare", recorder(log, "zero-first"))
    events.hook("message/bare", recorder(log, "ten"), priority=10)
    events.hook("message/bare", recorder(log, "minus-one"), priority=-1)
    events.hook("message/bare", recorder(log, "five"), priority=5)
    events.hook("message/bare", recorder(log, "zero-second"))
    assert await events.fire("message/bare", object()) is None
    assert log == ["ten", "five", "zero-first", "zero-second", "minus-one"]


async def test_first_handler_returning_something_stops_the_dispatch_and_gives_the_result() -> None:
    events, log = Events(), []
    events.hook("message/bare", recorder(log, "observer"), priority=20)
    events.hook("message/bare", recorder(log, "handler", "handled"), priority=10)
    events.hook("message/bare", recorder(log, "never"), priority=0)
    assert await events.fire("message/bare", object()) == "handled"
    assert log == ["observer", "handler"]


@pytest.mark.parametrize("result", [False, 0, "", [], True], ids=repr)
async def test_any_value_other_than_none_stops_the_dispatch(result: object) -> None:
    events, log = Events(), []
    events.hook("message/bare", recorder(log, "first", result), priority=1)
    events.hook("message/bare", recorder(log, "second"))
    assert await events.fire("message/bare", object()) == result
    assert log == ["first"]


async def test_async_and_sync_handlers_mix_in_priority_order() -> None:
    events, log = Events(), []
    events.hook("message/bare", async_recorder(log, "async-high"), priority=3)
    events.hook("message/bare", recorder(log, "sync-mid"), priority=2)
    events.hook("message/bare", async_recorder(log, "async-low", "done"), priority=1)
    events.hook("message/bare", recorder(log, "never"))
    assert await events.fire("message/bare", object()) == "done"
    assert log == ["async-high", "sync-mid", "async-low"]


async def test_sync_handler_may_return_a_coroutine_that_is_awaited() -> None:
    events, log = Events(), []

    async def slow_path() -> str:
        log.append("awaited")
        return "from-coroutine"

    events.hook("message/bare", lambda ev: slow_path(), priority=1)
    events.hook("message/bare", recorder(log, "never"))
    assert await events.fire("message/bare", object()) == "from-coroutine"
    assert log == ["awaited"]


async def test_handler_receives_the_event_object() -> None:
    events, seen = Events(), []
    payload = object()
    events.hook("message/bare", seen.append)
    await events.fire("message/bare", payload)
    assert seen == [payload]


async def test_firing_an_event_nobody_hooked_returns_none() -> None:
    assert await Events().fire("message/bare", object()) is None
    assert Events().dispatch("message/bare", object()) is None


async def test_dispatch_answers_without_a_coroutine_while_handlers_are_synchronous() -> None:
    events, log = Events(), []
    events.hook("inbound/user", recorder(log, "a"), priority=1)
    events.hook("inbound/user", recorder(log, "b", "stop"))
    events.hook("inbound/user", recorder(log, "never"), priority=-1)
    assert events.dispatch("inbound/user", object()) == "stop"
    assert log == ["a", "b"]


async def test_dispatch_continues_asynchronously_in_the_same_order_when_a_handler_waits() -> None:
    events, log = Events(), []
    events.hook("inbound/user", recorder(log, "sync"), priority=2)
    events.hook("inbound/user", async_recorder(log, "async"), priority=1)
    events.hook("inbound/user", recorder(log, "after", "stop"))
    events.hook("inbound/user", recorder(log, "never"), priority=-1)
    pending = events.dispatch("inbound/user", object())
    assert asyncio.iscoroutine(pending)
    assert "after" not in log
    assert await pending == "stop"
    assert log == ["sync", "async", "after"]


async def test_fire_all_runs_every_handler_whatever_they_return() -> None:
    events, log = Events(), []
    events.hook("session/closed", recorder(log, "a", "value"), priority=1)
    events.hook("session/closed", async_recorder(log, "b", True))
    events.hook("session/closed", recorder(log, "c"), priority=-1)
    assert await events.fire_all("session/closed", object()) is None
    assert log == ["a", "b", "c"]


async def test_handler_hooked_while_others_exist_takes_its_priority_place() -> None:
    events, log = Events(), []
    events.hook("message/bare", recorder(log, "low"), priority=-10)
    await events.fire("message/bare", object())
    events.hook("message/bare", recorder(log, "high"), priority=10)
    await events.fire("message/bare", object())
    assert log == ["low", "high", "low"]


# --- Events.check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "message/bare", "message/full", "message/host", "message/self", "presence/bare", "pre-message/bare",
        "pre-presence/full", "iq-get/host/urn:xmpp:ping:ping", "iq-set/self/jabber:iq:roster:query",
        "iq-get/bare/vcard-temp:vCard", "iq-get/host/http://jabber.org/protocol/disco#info:query",
        E.iq_event("set", "self", "urn:xmpp:carbons:2", "enable"),
        *sorted(E.CORE_EVENTS),
    ],
)
def test_check_accepts_events_that_are_fired(name: str) -> None:
    events = Events()
    events.hook(name, lambda ev: None)
    events.check()


@pytest.mark.parametrize(
    "name",
    [
        "mesage/bare", "message/baer", "message", "message/bare/", "presense/full", "pre-iq/bare", "iq/host",
        "iq-get/host", "iq-get/full/urn:xmpp:ping:ping", "iq-result/host/urn:xmpp:ping:ping",
        "iq-get/host/urn:xmpp:ping:ping extra", "session/bond", "server/start", "message/offline ",
        "stream/nonza-typo",
    ],
)
def test_check_rejects_a_hook_on_a_misspelled_or_never_fired_event_naming_it(name: str) -> None:
    events = Events()
    events.hook("message/bare", lambda ev: None)
    events.hook(name, lambda ev: None)
    with pytest.raises(ValueError) as caught:
        events.check()
    assert name in str(caught.value)


def test_check_accepts_an_event_a_module_declared() -> None:
    events = Events()
    events.hook("presence/initial", lambda ev: None)
    with pytest.raises(ValueError):
        events.check()
    events.declare("presence/initial")
    events.check()


def test_check_names_every_misspelled_event_at_once() -> None:
    events = Events()
    events.hook("mesage/bare", lambda ev: None)
    events.hook("sesion/bound", lambda ev: None)
    with pytest.raises(ValueError) as caught:
        events.check()
    assert "mesage/bare" in str(caught.value) and "sesion/bound" in str(caught.value)


def test_event_name_builders_give_the_names_the_router_fires() -> None:
    assert E.stanza_event("message", "bare") == "message/bare"
    assert E.pre_event("presence", "full") == "pre-presence/full"
    assert E.iq_event("get", "host", "urn:xmpp:ping", "ping") == "iq-get/host/urn:xmpp:ping:ping"
