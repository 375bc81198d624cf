"""What a module gets (ModuleAPI) and how modules are loaded: dependencies, unknown names, per-host options,
administrators, filters, pre-bind elements, services and requests. No sockets, no storage."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sakari.config import Config
from sakari.core.events import Events, StanzaEvent
from sakari.core.hosts import HostKind, Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.modules import MODULE_PACKAGE, ModuleAPI, ServerContext, load_module, parse_admins
from sakari.core.session import Session
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import parse_jid
from sakari.modules.offline import MAX_MESSAGES
from sakari.xml.element import Element
from sakari.xml.errors import StreamError

WAIT = 5.0


def context(config: Config | None = None, admins: list[str] | None = None) -> ServerContext:
    config = config or Config()
    hosts = Hosts()
    hosts.add_users("example.org")
    for name, options in config.hosts.items():
        hosts.add_users(name, options)
    events = Events()
    router = LocalRouter(hosts, events)
    tasks = Tasks()
    return ServerContext(
        config=config,
        hosts=hosts,
        events=events,
        router=router,
        sessions=SessionManager(router, events, tasks),
        storage=None,
        tasks=tasks,
        domain="example.org",
        admins=parse_admins(admins or []),
    )


@pytest.fixture
def fake_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Callable[[ModuleAPI], None]], list[str]]]:
    """``fake(name, setup)`` makes sakari.modules.<name> importable for this test; returns the list of setups run."""
    ran: list[str] = []

    def fake(name: str, setup: Callable[[ModuleAPI], None]) -> list[str]:
        module = types.ModuleType(f"{MODULE_PACKAGE}.{name}")

        def counted(mod: ModuleAPI) -> None:
            ran.append(name)
            setup(mod)

        module.setup = counted  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"{MODULE_PACKAGE}.{name}", module)
        return ran

    yield fake


# --- loading and dependencies -----------------------------------------------------------


def test_a_dependency_is_loaded_first_and_only_once(fake_modules: Any) -> None:
    ctx = context()
    fake_modules("fake_base", lambda mod: None)
    fake_modules("fake_one", lambda mod: mod.depends("fake_base"))
    ran = fake_modules("fake_two", lambda mod: mod.depends("fake_base"))
    load_module(ctx, "fake_one")
    load_module(ctx, "fake_two")
    api = load_module(ctx, "fake_base")  # already loaded: the same API, no second setup
    assert ran == ["fake_one", "fake_base", "fake_two"]
    assert api is ctx.loaded["fake_base"] and api.name == "fake_base"
    assert set(ctx.loaded) == {"fake_base", "fake_one", "fake_two"}


def test_modules_depending_on_each_other_in_a_circle_are_refused_naming_the_circle(fake_modules: Any) -> None:
    ctx = context()
    fake_modules("fake_a", lambda mod: mod.depends("fake_b"))
    fake_modules("fake_b", lambda mod: mod.depends("fake_c"))
    fake_modules("fake_c", lambda mod: mod.depends("fake_a"))
    with pytest.raises(ValueError) as caught:
        load_module(ctx, "fake_a")
    assert "fake_a → fake_b → fake_c → fake_a" in str(caught.value)
    assert ctx.loaded == {} and ctx.loading == []  # nothing half-loaded is left behind


def test_a_module_depending_on_itself_is_a_circle(fake_modules: Any) -> None:
    fake_modules("fake_self", lambda mod: mod.depends("fake_self"))
    with pytest.raises(ValueError, match="fake_self → fake_self"):
        load_module(context(), "fake_self")


def test_an_unknown_module_is_refused_listing_the_modules_there_are() -> None:
    with pytest.raises(ValueError) as caught:
        load_module(context(), "no_such_module")
    message = str(caught.value)
    assert "no such module: no_such_module" in message
    for name in ("disco", "ping", "roster", "offline"):
        assert name in message
    assert "util" not in message.split("there are:")[1]  # helpers are not modules


def test_a_module_without_setup_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, f"{MODULE_PACKAGE}.fake_nosetup", types.ModuleType("fake_nosetup"))
    with pytest.raises(ValueError, match="has no setup"):
        load_module(context(), "fake_nosetup")


def test_a_missing_import_inside_a_module_is_not_reported_as_an_unknown_module(fake_modules: Any) -> None:
    def setup(mod: ModuleAPI) -> None:
        import sakari_no_such_dependency  # noqa: F401

    fake_modules("fake_broken", setup)
    with pytest.raises(ModuleNotFoundError):
        load_module(context(), "fake_broken")


def test_require_names_the_missing_service_and_provide_shares_one() -> None:
    ctx = context()
    a, b = ModuleAPI(ctx, "a"), ModuleAPI(ctx, "b")
    with pytest.raises(RuntimeError, match="'roster' service"):
        b.require("roster")
    service = object()
    a.provide("roster", service)
    assert b.require("roster") is service


# --- options per host ---------------------------------------------------------------------


def test_option_with_a_host_gives_that_hosts_own_value_and_falls_back_to_the_global_one() -> None:
    config = Config.parse(
        '[offline]\nmax_messages = 50\n\n[host."other.example"]\noffline.max_messages = 7\n\n[host."third.example"]\n'
    )
    mod = ModuleAPI(context(config), "offline")
    assert mod.option(MAX_MESSAGES) == 50
    assert mod.option(MAX_MESSAGES, host="other.example") == 7
    assert mod.option(MAX_MESSAGES, host="third.example") == 50  # sets nothing of its own
    assert mod.option(MAX_MESSAGES, host="example.org") == 50
    assert mod.option(MAX_MESSAGES, host="unknown.example") == 50


def test_option_without_any_value_is_the_declared_default() -> None:
    mod = ModuleAPI(context(Config.parse('[host."other.example"]\n')), "offline")
    assert mod.option(MAX_MESSAGES, host="other.example") == MAX_MESSAGES.default == 1000


# --- administrators -------------------------------------------------------------------------


def test_is_admin_matches_the_bare_address_whatever_the_resource() -> None:
    mod = ModuleAPI(context(admins=["Admin@Example.org"]), "m")
    assert mod.is_admin(parse_jid("admin@example.org"))
    assert mod.is_admin(parse_jid("admin@example.org/phone"))
    assert not mod.is_admin(parse_jid("admin@other.example"))
    assert not mod.is_admin(parse_jid("mallory@example.org/admin@example.org"))
    assert not mod.is_admin(parse_jid("example.org"))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("admin@@example.org", "is not an address"),
        ("admin@example.org/phone", "must be a bare account address"),
        ("example.org", "must be a bare account address"),
    ],
)
def test_admins_must_be_bare_account_addresses(value: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_admins(["ok@example.org", value])
    assert expected in str(caught.value) and repr(value) in str(caught.value)


# --- filters, pre-bind, services, requests ----------------------------------------------------


class Conn:
    stanza_ns = "jabber:client"

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)

    async def writable(self) -> bool:
        return True

    def close_stream(self, error: StreamError | None = None) -> None:
        pass


async def test_add_filter_applies_to_sessions_bound_afterwards() -> None:
    ctx = context()
    mod = ModuleAPI(ctx, "m")
    mod.add_filter("out", lambda s, st: None if st.attrs.get("id") == "secret" else st)
    conn = Conn()
    session = ctx.sessions.bind("romeo", "example.org", "phone", conn)
    session.send(Element("message", attrs={"id": "secret"}))
    session.send(Element("message", attrs={"id": "open"}))
    assert conn.data == [b'<message id="open"/>']


async def test_a_pre_bind_element_can_be_taken_by_one_module_only() -> None:
    ctx = context()

    async def handler(pre: Any) -> tuple[Element | None, Session | None]:
        return None, None

    ModuleAPI(ctx, "sm").add_pre_bind("urn:xmpp:sm:3", "resume", handler)
    assert ctx.pre_bind[("urn:xmpp:sm:3", "resume")] is handler
    with pytest.raises(ValueError, match="already taken"):
        ModuleAPI(ctx, "other").add_pre_bind("urn:xmpp:sm:3", "resume", handler)


async def test_add_service_puts_a_service_domain_in_the_table_of_hosts() -> None:
    ctx = context()
    seen: list[StanzaEvent] = []

    async def handler(event: StanzaEvent) -> bool:
        seen.append(event)
        return True

    host = ModuleAPI(ctx, "muc").add_service("MUC.example.org", handler, name="Rooms", features={"http://jabber.org/protocol/muc"})
    assert host.kind is HostKind.SERVICE and host.domain == "muc.example.org"
    assert ctx.hosts.services() == [host]
    await ctx.router.route(Element("message"), parse_jid("romeo@example.org/phone"), parse_jid("room@muc.example.org"))
    assert [str(e.to_jid) for e in seen] == ["room@muc.example.org"]


async def test_request_through_the_module_api_reaches_the_router() -> None:
    ctx = context()
    conn = Conn()
    session = ctx.sessions.bind("romeo", "example.org", "phone", conn)
    iq = Element("iq", attrs={"type": "get"})
    iq.add("ping", "urn:xmpp:ping")
    with pytest.raises(TimeoutError):
        await ModuleAPI(ctx, "m").request(iq, session.jid, timeout=0.01)
    assert any(b"urn:xmpp:ping" in d for d in conn.data)
