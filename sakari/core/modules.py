"""The API a protocol module gets: hooks, features, options, services. The core imports no module."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from sakari.config import Option
from sakari.core.events import Handler
from sakari.xml.element import Element

if TYPE_CHECKING:
    from sakari.server import Server

T = TypeVar("T")


class ModuleAPI:
    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.name = name
        self.log = logging.getLogger(f"sakari.{name}")
        self.router = server.router
        self.events = server.events
        self.storage = server.storage
        self.domain = server.domain

    def hook(self, event: str, handler: Handler, priority: int = 0) -> None:
        self.events.hook(event, handler, priority)

    def option(self, option: Option[T]) -> T:
        return self.server.config[option]

    def add_feature(self, var: str) -> None:
        """A feature in the server's disco#info."""
        self.server.features.add(var)

    def add_account_feature(self, var: str) -> None:
        """A feature in disco#info of each account (bare JID)."""
        self.server.account_features.add(var)

    def add_identity(self, category: str, type_: str, name: str | None = None) -> None:
        self.server.identities.add((category, type_, name or ""))

    def add_extension(self, form: Callable[[], Element]) -> None:
        """A data form (XEP-0128) appended to the server's disco#info."""
        self.server.disco_extensions.append(form)

    def add_stream_feature(self, provider: Callable[[bool], Element | None]) -> None:
        """Offer an element in c2s stream features; the argument says if the client authenticated."""
        self.server.stream_features.append(provider)

    def provide(self, name: str, service: object) -> None:
        self.server.services[name] = service

    def require(self, name: str) -> Any:
        try:
            return self.server.services[name]
        except KeyError:
            raise RuntimeError(f"module {self.name} needs the '{name}' service; enable the module providing it") from None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self.server.spawn(coro)


def load_module(server: Server, name: str) -> None:
    try:
        module = importlib.import_module(f"sakari.modules.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"sakari.modules.{name}":
            raise ValueError(f"no such module: {name}") from None
        raise
    setup = getattr(module, "setup", None)
    if setup is None:
        raise ValueError(f"module {name} has no setup()")
    setup(ModuleAPI(server, name))
