"""The one HTTP stack (aiohttp) on ``network.http_port`` and, over TLS, ``network.https_port``: modules add
routes; ``/health`` is built in.

WebSocket (RFC 7395), BOSH (XEP-0124/0206), file upload (XEP-0363) and the
web client are routes on it. The listener is one of the transport layer's,
so it starts, logs and stops like the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _no_version(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # aiohttp would name itself and Python with their versions; the server discloses no version (DESIGN.md).
    response.headers["Server"] = "Sakari"


class HttpStack:
    def __init__(self) -> None:
        self.app = web.Application()
        self.app.on_response_prepare.append(_no_version)
        self.app.router.add_get("/health", health)
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: HttpHandler) -> None:
        self.app.router.add_route(method, path, handler)

    async def setup(self) -> None:
        """Freeze the routes; after this, :meth:`protocol` makes connections."""
        self._runner = web.AppRunner(self.app, access_log=None)  # no access log: it would hold IP addresses
        await self._runner.setup()

    def protocol(self) -> asyncio.BaseProtocol:
        assert self._runner is not None and self._runner.server is not None, "HttpStack.setup() first"
        return self._runner.server()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
