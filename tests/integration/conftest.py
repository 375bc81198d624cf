"""Fixtures for the integration suite: real ``sakari serve`` processes, slixmpp clients.

- ``server``: one default-config server shared by the whole session. Tests on
  it must not interfere: each takes fresh accounts (``xmpp.account()``).
- ``xmpp``: per test; logs clients in to ``server`` and closes them afterwards.
- ``make_server``: per test; servers of its own (custom config, restarts).

On a failing test, the tail of every server log is printed with the report.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
import pytest_asyncio

sys.path.insert(0, os.path.dirname(__file__))

from browser_fixtures import browser, converse_dist, screenshots  # noqa: E402,F401  (one Chromium for every browser test)
from sakari_process import Account, SakariServer  # noqa: E402
from xmpp_harness import Client, login  # noqa: E402

_servers: list[SakariServer] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for srv in _servers:
            start = item.stash.get(_log_marks, {}).get(id(srv), 0)
            lines = srv.log[start:] if call.when != "setup" else srv.log[-80:]
            if lines:
                report.sections.append((f"{srv.name} log", "\n".join(lines[-150:])))
    return report


_log_marks = pytest.StashKey[dict]()


@pytest.fixture(autouse=True)
def _mark_server_logs(request):
    request.node.stash[_log_marks] = {id(s): len(s.log) for s in _servers}
    yield


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> SakariServer:
    srv = SakariServer(tmp_path_factory.mktemp("shared") / "data", name="shared-server")
    _servers.append(srv)
    # Accounts are made before start, so a broken 'user add while running'
    # fails its own CLI test instead of every test.
    srv.fill_pool(160)
    srv.start()
    yield srv
    srv.ensure_stopped()
    _servers.remove(srv)


@pytest.fixture(scope="session")
def federation(tmp_path_factory):
    """Sakari servers and real peers (Prosody, ejabberd) federating on loopback, one world per session; each peer
    starts when a test first asks for it (see federation_world.py)."""
    from federation_world import FederationWorld

    world = FederationWorld(tmp_path_factory.mktemp("federation"))
    try:
        world.start()
        yield world
    finally:
        world.close()


@pytest.fixture(scope="module", params=["prosody", "ejabberd"])
def federation_peer(request, federation):
    """Each real federation peer in turn (a test using it runs once against each)."""
    return getattr(federation, request.param)()


@pytest_asyncio.fixture
async def clients():
    """``await clients(server)``: a fresh account of ``server`` (a Sakari or a federation peer) logged in with
    slixmpp; every client is closed after the test."""
    made: list[Client] = []

    async def factory(srv) -> Client:
        client = await login(srv, srv.new_account())
        made.append(client)
        return client

    yield factory
    for client in made:
        client.abort()


@pytest.fixture(scope="session")
def spawn_server(tmp_path_factory):
    """Session-scoped factory for module-scoped servers with their own config:
    ``with spawn_server(name, config) as srv: ...`` (stopped on leaving)."""

    @contextlib.contextmanager
    def spawn(name: str, config: str | None = None, accounts: int = 40):
        srv = SakariServer(tmp_path_factory.mktemp(name) / "data", config=config, name=name)
        _servers.append(srv)
        try:
            if accounts:
                srv.fill_pool(accounts)
            srv.start()
            yield srv
        finally:
            srv.ensure_stopped()
            _servers.remove(srv)

    return spawn


@pytest.fixture
def make_server(tmp_path):
    """Factory: ``make_server(config=None, name=...)`` → a started server of the test's own."""
    made: list[SakariServer] = []

    def factory(config: str | None = None, name: str = "own-server", start: bool = True, accounts: int = 0) -> SakariServer:
        srv = SakariServer(tmp_path / f"{name}-{len(made)}" / "data", config=config, name=name)
        made.append(srv)
        _servers.append(srv)
        if accounts:
            srv.fill_pool(accounts)
        if start:
            srv.start()
        return srv

    yield factory
    for srv in made:
        srv.ensure_stopped()
        _servers.remove(srv)


class Session:
    """Logs clients in to one server for one test and tidies up after it."""

    def __init__(self, server: SakariServer):
        self.server = server
        self.clients: list[Client] = []

    def account(self) -> Account:
        return self.server.new_account()

    async def login(self, account: Account | None = None, **kwargs) -> Client:
        client = await login(self.server, account or self.account(), **kwargs)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            client.abort()


@pytest_asyncio.fixture
async def xmpp(server):
    session = Session(server)
    yield session
    await session.close()


@pytest_asyncio.fixture
async def session_for():
    """``session_for(server)``: a Session on a server of the test's own.

    Async so that its teardown runs while the test's event loop is still open.
    """
    sessions: list[Session] = []

    def factory(srv: SakariServer) -> Session:
        s = Session(srv)
        sessions.append(s)
        return s

    yield factory
    for s in sessions:
        await s.close()
