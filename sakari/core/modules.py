"""The API a protocol module gets: hooks, filters, features, services, listeners, options. The core imports no module.

The composition root fills a :class:`ServerContext` in; each module sees it
only through its :class:`ModuleAPI`. Modules are found by name in
``sakari.modules`` and may depend on each other (``mod.depends``), which
loads the other one first.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sakari.config import Config, Option
from sakari.core.events import Events, Handler
from sakari.core.hosts import Host, Hosts, ServiceHandler
from sakari.core.router import REQUEST_TIMEOUT, Router
from sakari.core.session import Filter, Session
from sakari.core.sessions import PreAuthHandler, PreBindHandler, SessionManager
from sakari.core.tasks import Tasks
from sakari.jid import JID, JIDError, parse_jid, prep_domain
from sakari.storage.base import Storage
from sakari.stream.sasl2 import TokenStore
from sakari.xml.element import Element

T = TypeVar("T")
# Called now: an awaitable done once every write the module queued so far is durable, or None if none is pending.
WriteBarrier = Callable[[], Awaitable[None] | None]
# Enables a feature that a Bind 2 request (XEP-0386) names, once the session is bound; answers what goes in <bound/>.
BindInlineHandler = Callable[[Session, Element], Element | None]

MODULE_PACKAGE = "sakari.modules"


@dataclass(slots=True)
class Discovery:
    """What the server's and its accounts' disco#info list (XEP-0030), as the modules registered it."""

    features: set[str] = field(default_factory=set)
    account_features: set[str] = field(default_factory=set)
    identities: set[tuple[str, str, str]] = field(default_factory=lambda: {("server", "im", "Sakari")})
    account_identities: set[tuple[str, str, str]] = field(default_factory=lambda: {("account", "registered", "")})
    extensions: list[Callable[[], Element]] = field(default_factory=list)


@dataclass(slots=True)
class ServerContext:
    """Everything the modules may reach, put together by the composition root."""

    config: Config
    hosts: Hosts
    events: Events
    router: Router
    sessions: SessionManager
    storage: Storage
    tasks: Tasks
    domain: str  # the main domain (the first virtual host)
    admins: frozenset[JID] = frozenset()
    disco: Discovery = field(default_factory=Discovery)
    stream_features: list[Callable[[bool], Element | None]] = field(default_factory=list)
    pre_bind: dict[tuple[str, str], PreBindHandler] = field(default_factory=dict)
    pre_auth: dict[tuple[str, str], PreAuthHandler] = field(default_factory=dict)
    bind_inline: dict[str, BindInlineHandler] = field(default_factory=dict)  # by namespace
    sasl2_inline: list[tuple[str, str, str]] = field(default_factory=list)  # (namespace, feature, pre-bind element)
    token_store: TokenStore | None = None  # FAST tokens, from the module that keeps them
    granted_admins: set[JID] = field(default_factory=set)  # administrators by invitation (XEP-0401), beside ``admins``
    services: dict[str, Any] = field(default_factory=dict)
    write_barriers: list[WriteBarrier] = field(default_factory=list)
    # Set by the composition root: declare a listener (name, port option, protocol factory, direct TLS).
    add_listener: Callable[[str, Option[int], Callable[[], asyncio.BaseProtocol], bool], None] | None = None
    add_http_route: Callable[[str, str, Callable[[Any], Awaitable[Any]]], None] | None = None
    loaded: dict[str, ModuleAPI] = field(default_factory=dict)
    loading: list[str] = field(default_factory=list)


class ModuleAPI:
    def __init__(self, ctx: ServerContext, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.log = logging.getLogger(f"sakari.{name}")
        self.router = ctx.router
        self.sessions = ctx.sessions
        self.events = ctx.events
        self.storage = ctx.storage
        self.hosts = ctx.hosts
        self.domain = ctx.domain
        self.admins = ctx.admins

    # --- events and filters ---------------------------------------------------
    def hook(self, event: str, handler: Handler, priority: int = 0) -> None:
        self.events.hook(event, handler, priority)

    def add_filter(self, direction: str, fn: Filter, priority: int = 0) -> None:
        """A stanza filter on every session, "in" (from the client) or "out" (to it): returns the stanza to
        pass on, or None to take it out of the stream."""
        self.sessions.add_filter(direction, fn, priority)

    # --- options and administrators -------------------------------------------
    def option(self, option: Option[T], host: str | None = None) -> T:
        """An option's value; with ``host``, that virtual host's own value where it sets one."""
        if host is not None:
            try:
                found = self.hosts.get(prep_domain(host))
            except JIDError:
                found = None
            if found is not None and option.key in found.options:
                return found.options[option.key]  # type: ignore[no-any-return]
        return self.ctx.config[option]

    def is_admin(self, jid: JID) -> bool:
        """Whether this address (any resource) belongs to an administrator (the ``admins`` key, or an account
        made with an administrator's invitation)."""
        bare = jid.bare
        return bare in self.admins or bare in self.ctx.granted_admins

    def grant_admin(self, jid: JID, granted: bool = True) -> None:
        """Make an account an administrator beside ``admins`` (or no longer, with ``granted=False``); the module
        that grants keeps the grant across restarts."""
        (self.ctx.granted_admins.add if granted else self.ctx.granted_admins.discard)(jid.bare)

    # --- discovery and stream features ----------------------------------------
    def add_feature(self, var: str) -> None:
        """A feature in the server's disco#info."""
        self.ctx.disco.features.add(var)

    def add_account_feature(self, var: str) -> None:
        """A feature in disco#info of each account (bare JID)."""
        self.ctx.disco.account_features.add(var)

    def add_identity(self, category: str, type_: str, name: str | None = None) -> None:
        self.ctx.disco.identities.add((category, type_, name or ""))

    def add_account_identity(self, category: str, type_: str, name: str | None = None) -> None:
        """An identity in disco#info of each account (e.g. pubsub/pep, XEP-0163 §6)."""
        self.ctx.disco.account_identities.add((category, type_, name or ""))

    def add_extension(self, form: Callable[[], Element]) -> None:
        """A data form (XEP-0128) appended to the server's disco#info."""
        self.ctx.disco.extensions.append(form)

    def add_stream_feature(self, provider: Callable[[bool], Element | None]) -> None:
        """Offer an element in c2s stream features; the argument says if the client authenticated."""
        self.ctx.stream_features.append(provider)

    def add_pre_bind(self, ns: str, name: str, handler: PreBindHandler, sasl2_feature: str | None = None) -> None:
        """Take an element that a client sends after authenticating and before binding (XEP-0198 ``<resume/>``).
        With ``sasl2_feature``, it may also come inside SASL2's ``<authenticate/>`` (XEP-0388 §2.1), announced as
        ``<sasl2_feature xmlns=ns/>`` in its ``<inline/>``; the handler then gets ``PreBind.inline``."""
        if (ns, name) in self.ctx.pre_bind:
            raise ValueError(f"<{name} xmlns='{ns}'/> before bind is already taken")
        self.ctx.pre_bind[ns, name] = handler
        if sasl2_feature is not None:
            self.ctx.sasl2_inline.append((ns, sasl2_feature, name))

    def add_bind_inline(self, ns: str, handler: BindInlineHandler) -> None:
        """Let clients enable this feature inside their Bind 2 request (XEP-0386), as ``<feature var=ns/>``: the
        handler gets the bound session and the request's element in ``ns``, and answers what goes in
        ``<bound/>`` (or None). It must not send anything itself: ``<success/>`` is not written yet."""
        if ns in self.ctx.bind_inline:
            raise ValueError(f"{ns} is already enabled inline in Bind 2")
        self.ctx.bind_inline[ns] = handler

    def set_token_store(self, store: TokenStore) -> None:
        """Take FAST token logins (XEP-0484) with this store."""
        self.ctx.token_store = store

    def add_pre_auth(self, ns: str, name: str, handler: PreAuthHandler) -> None:
        """Take an iq get/set with this payload from a client that has not authenticated (XEP-0077 in-band
        registration), on a stream where SASL would be offered; the handler answers with the iq's reply."""
        if (ns, name) in self.ctx.pre_auth:
            raise ValueError(f"<{name} xmlns='{ns}'/> before authentication is already taken")
        self.ctx.pre_auth[ns, name] = handler

    # --- hosts, listeners, HTTP -------------------------------------------------
    def add_service(
        self,
        domain: str,
        handler: ServiceHandler,
        name: str = "",
        identities: set[tuple[str, str, str]] | None = None,
        features: set[str] | None = None,
    ) -> Host:
        """A local service on its own domain (e.g. conference.example.org): every stanza to the domain, or to an
        address at it, goes to ``handler``; it is listed in disco#items of the user domains."""
        return self.hosts.add_service(domain, handler, name, identities, features)

    def add_listener(
        self, name: str, port: Option[int], factory: Callable[[], asyncio.BaseProtocol], direct_tls: bool = False
    ) -> None:
        assert self.ctx.add_listener is not None
        self.ctx.add_listener(name, port, factory, direct_tls)

    def add_http_route(self, method: str, path: str, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """A route on the HTTP port (aiohttp handler: request in, response out)."""
        assert self.ctx.add_http_route is not None
        self.ctx.add_http_route(method, path, handler)

    # --- requests, services between modules, tasks ------------------------------
    async def request(self, iq: Element, to: JID, from_jid: JID | None = None, timeout: float = REQUEST_TIMEOUT) -> Element:
        """Send an iq get/set to any address and wait for the answer (TimeoutError if none comes)."""
        return await self.router.request(iq, to, from_jid, timeout)

    def depends(self, name: str) -> None:
        """Load another module first (if the configuration did not already)."""
        load_module(self.ctx, name)

    def provide(self, name: str, service: object) -> None:
        self.ctx.services[name] = service

    def require(self, name: str) -> Any:
        try:
            return self.ctx.services[name]
        except KeyError:
            raise RuntimeError(f"module {self.name} needs the '{name}' service; enable the module providing it") from None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self.ctx.tasks.spawn(coro)

    # --- durability ---------------------------------------------------------------
    def add_write_barrier(self, barrier: WriteBarrier) -> None:
        """A module that writes off the delivery path (the archive, in batches) says how to wait for what it
        queued: what acknowledges receipt to a client (stream management) waits for it first."""
        self.ctx.write_barriers.append(barrier)

    def pending_writes(self) -> list[Awaitable[None]]:
        """For each module with writes queued now: what to await until they are durable (empty: nothing to wait for)."""
        pending = []
        for barrier in self.ctx.write_barriers:
            waiting = barrier()
            if waiting is not None:
                pending.append(waiting)
        return pending


def available_modules() -> list[str]:
    import pkgutil

    package = importlib.import_module(MODULE_PACKAGE)
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__) if info.name != "util")


def load_module(ctx: ServerContext, name: str) -> ModuleAPI:
    if name in ctx.loaded:
        return ctx.loaded[name]
    if name in ctx.loading:
        raise ValueError(f"modules depend on each other in a circle: {' → '.join(ctx.loading + [name])}")
    try:
        module = importlib.import_module(f"{MODULE_PACKAGE}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{MODULE_PACKAGE}.{name}":
            raise ValueError(f"no such module: {name} (there are: {', '.join(available_modules())})") from None
        raise
    setup = getattr(module, "setup", None)
    if setup is None:
        raise ValueError(f"module {name} has no setup()")
    api = ModuleAPI(ctx, name)
    ctx.loading.append(name)
    try:
        setup(api)
    finally:
        ctx.loading.pop()
    ctx.loaded[name] = api
    return api


def parse_admins(values: list[str]) -> frozenset[JID]:
    """The ``admins`` key: bare JIDs, each checked."""
    admins = set()
    for text in values:
        try:
            jid = parse_jid(text)
        except JIDError as e:
            raise ValueError(f"admins: {text!r} is not an address: {e.text}") from None
        if jid.resource or not jid.local:
            raise ValueError(f"admins: {text!r} must be a bare account address such as admin@example.org")
        admins.add(jid)
    return frozenset(admins)
