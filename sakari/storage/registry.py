"""Storage backends by name: ``storage.backend`` picks one, ``open_storage`` opens it.

A backend registers itself when its module is imported; the built-in ones
are imported on first use, so a server on SQLite never loads the
PostgreSQL driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sakari.config import Config, declare
from sakari.errors import StartError
from sakari.settings import STORAGE_BACKEND
from sakari.storage.base import Storage

URL = declare(
    "storage.url",
    "",
    "Where the database server is, for backend \"postgresql\": postgresql://user:password@host:port/database "
    "(unused by \"sqlite\").",
)


@dataclass(frozen=True)
class Backend:
    name: str  # the value of storage.backend, and the scheme of its URLs
    from_config: Callable[[Config], Storage]
    from_url: Callable[[str, Config], Storage]  # for `sakari storage copy --to URL`


_BACKENDS: dict[str, Backend] = {}
_BUILT_IN = {"sqlite": "sakari.storage.sqlite", "postgresql": "sakari.storage.postgres"}


def register(backend: Backend) -> None:
    _BACKENDS[backend.name] = backend


def backend(name: str) -> Backend:
    if name not in _BACKENDS and name in _BUILT_IN:
        importlib.import_module(_BUILT_IN[name])
    found = _BACKENDS.get(name)
    if found is None:
        known = ", ".join(repr(n) for n in sorted({*_BUILT_IN, *_BACKENDS}))
        raise StartError(f"storage.backend: unknown backend {name!r} (known: {known})")
    return found


def open_storage(config: Config) -> Storage:
    """The configured backend's storage, not yet opened (``await storage.open()``)."""
    return backend(config[STORAGE_BACKEND]).from_config(config)


def open_url(url: str, config: Config) -> Storage:
    """Storage at a URL (``postgresql://…``, ``sqlite:///path``), not yet opened; other settings from ``config``."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql"
    if not scheme:
        raise StartError(f"storage: {url!r} is not a URL such as postgresql://user:password@host:port/database")
    return backend(scheme).from_url(url, config)
