"""The server: puts config, storage, router, modules and listeners together, and runs them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import ssl
import types
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

from sakari import settings as S
from sakari.config import Config
from sakari.core import events as E
from sakari.errors import StartError
from sakari.core.events import AccountEvent, Events, ServerEvent
from sakari.jid import JIDError, parse_jid, prep_domain
from sakari.core.modules import load_module
from sakari.core.router import LocalRouter
from sakari.net import control, tls
from sakari.net.c2s import NONZA, C2SConnection
from sakari.storage.base import Storage
from sakari.storage.sqlite import SYNCHRONOUS, SqliteStorage
from sakari.stream.c2s import StreamSettings
from sakari.xml.errors import StreamError
from sakari.xml.element import Element

log = logging.getLogger("sakari.server")

PARSER_IDLE_RELEASE = 1.0  # seconds of silence after which a connection's parser is freed
SHUTDOWN_GRACE = 5.0  # seconds for clients to take their </stream:stream> and for last writes


def open_storage(config: Config) -> SqliteStorage:
    backend = config[S.STORAGE_BACKEND]
    if backend != "sqlite":
        raise ValueError(f"storage.backend: unknown backend {backend!r}")
    return SqliteStorage(Path(config[S.DATA_DIR]) / "sakari.sqlite", config[SYNCHRONOUS])


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Hand a coroutine that already ran its first step to a task: pass its waits and wake-ups through."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # cancellation, thrown in by the task
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration as stop:
                return stop.value


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.domain = prep_domain(config[S.DOMAIN])
        self.data_dir = Path(config[S.DATA_DIR])
        self.events = Events()
        self.events.declare(NONZA)
        self.router = LocalRouter({self.domain}, self.events)
        self.storage: Storage = open_storage(config)
        self.features: set[str] = set()
        self.account_features: set[str] = set()
        self.identities: set[tuple[str, str, str]] = {("server", "im", "Sakari")}
        self.disco_extensions: list[Callable[[], Element]] = []
        self.stream_features: list[Callable[[bool], Element | None]] = []
        self.features_cache: dict[tuple[bool, bool, tuple[str, ...]], bytes] = {}
        self.services: dict[str, Any] = {}
        self.connections: set[C2SConnection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._all_closed: asyncio.Event | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self.ports: dict[str, int] = {}
        self.auth_timeout = config[S.AUTH_TIMEOUT]
        self.rate_bytes = config[S.RATE_BYTES]
        self.rate_burst = max(config[S.RATE_BURST], config[S.MAX_STANZA_SIZE]) if self.rate_bytes else 0
        self.max_send_buffer = config[S.MAX_SEND_BUFFER]
        self.send_high_water = min(config[S.SEND_HIGH_WATER], self.max_send_buffer)
        self.send_stall_timeout = config[S.SEND_STALL_TIMEOUT]
        # The connection whose bytes are being handled right now: the one to slow down when a stanza it sent fills
        # another client's queue (see C2SConnection.write).
        self.current_origin: C2SConnection | None = None
        self.channel_bindings: dict[str, bytes] = {}
        self.ssl_context: ssl.SSLContext | None = None
        self.stream_settings = StreamSettings(
            domain=self.domain,
            tls_available=True,
            require_encryption=config[S.REQUIRE_ENCRYPTION],
            allow_plain=config[S.ALLOW_PLAIN],
            max_stanza_size=config[S.MAX_STANZA_SIZE],
            max_depth=config[S.MAX_DEPTH],
        )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task the server keeps track of (and logs if it fails)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def spawn_eager(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine now, up to its first real wait; only then does it become a task.

        Most stanzas are routed without waiting for anything, so this saves a
        task (and a turn of the event loop) per stanza batch on the hot path.
        """
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # the same as a task that failed at once
            log.error("event=task-failed error=%r", exc, exc_info=exc)
            return
        self.spawn(_resume(coro, waiting_on))  # type: ignore[arg-type]

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("event=task-failed error=%r", exc, exc_info=exc)

    def collect_stream_features(self, authenticated: bool) -> list[Element]:
        return [el for provider in self.stream_features if (el := provider(authenticated)) is not None]

    def _setup_tls(self) -> None:
        cert, key = self.config[S.TLS_CERT], self.config[S.TLS_KEY]
        if cert:
            cert_path, key_path = Path(cert), Path(key or cert)
        else:
            cert_path, key_path = tls.ensure_self_signed(self.data_dir / "certs", self.domain)
        try:
            self.ssl_context = tls.server_context(cert_path, key_path)
            self.channel_bindings = {"tls-server-end-point": tls.end_point_hash(cert_path)}
        except (OSError, ValueError, ssl.SSLError) as e:
            raise StartError(f"cannot use the certificate {cert_path} with key {key_path}: {e}") from None

    async def _decoy_secret(self) -> bytes:
        """The server's secret for decoy SCRAM salts; kept in storage so a restart does not change them."""
        documents = self.storage.documents("server-secret")
        secret = await documents.get(self.domain, "scram-decoy")
        if secret is None:
            secret = os.urandom(32)
            await documents.set(self.domain, "scram-decoy", secret)
        return secret

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._setup_tls()
        await self.storage.open()
        self.stream_settings = dataclasses.replace(
            self.stream_settings, decoy_secret=await self._decoy_secret(), decoy_iterations=self.config[S.SCRAM_ITERATIONS]
        )
        for name in self.config[S.MODULES]:
            load_module(self, name)
        self.events.check()
        # Before the first connection: what modules compute here (e.g. the caps hash) is in every stream's features.
        await self.events.fire_all(E.SERVER_STARTED, ServerEvent())
        loop = asyncio.get_running_loop()
        binds = self.config[S.BIND]
        for service, option, direct_tls in (("c2s", S.C2S_PORT, False), ("c2s-tls", S.C2S_TLS_PORT, True)):
            port = self.config[option]
            if not port:
                continue
            try:
                srv = await loop.create_server(
                    lambda d=direct_tls: C2SConnection(self, d),  # type: ignore[misc]
                    binds,
                    port,
                    ssl=self.ssl_context if direct_tls else None,
                    ssl_handshake_timeout=self.auth_timeout if direct_tls else None,
                    reuse_address=True,
                    backlog=4096,
                )
            except OSError as e:
                raise StartError(f"cannot listen for {service} on {', '.join(binds)} port {port}: {e.strerror}") from None
            self._servers.append(srv)
            self.ports[service] = srv.sockets[0].getsockname()[1]
            log.info("event=listening service=%s port=%d", service, self.ports[service])
        self._servers.append(await control.serve(self.data_dir, {"delete-account": self._delete_account}))
        self._keepalive_task = self.spawn(self._keepalive())
        self._release_task = self.spawn(self._release_idle_parsers())
        log.info("event=ready domain=%s", self.domain)

    async def delete_account(self, owner: str) -> bool:
        """Delete an account and all its data, ending its sessions first."""
        jid = parse_jid(owner)
        for session in self.router.sessions_of(jid):
            session.close(StreamError("not-authorized", "this account has been deleted"))
            self.router.unbind(session)
        existed = await self.storage.accounts.delete(owner)
        if existed:
            await self.events.fire_all(E.ACCOUNT_DELETED, AccountEvent(jid.local, jid.domain))
            log.info("event=account-deleted")
        return existed

    async def _delete_account(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"deleted": await self.delete_account(str(request["jid"]))}
        except (KeyError, JIDError) as e:
            return {"error": f"bad account address: {e}"}

    async def _keepalive(self) -> None:
        """Ping sessions that have been silent (XEP-0199) and drop those that do not answer."""
        interval = self.config[S.PING_INTERVAL]
        timeout = self.config[S.PING_TIMEOUT]
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(interval, timeout) / 2)
            now = loop.time()
            for conn in list(self.connections):
                if conn.session is not None and not conn.pinging and now - conn.last_active > interval:
                    self.spawn(self._ping(conn, timeout))

    async def _release_idle_parsers(self) -> None:
        """Most connections are idle most of the time: their XML parser (about half of what an idle
        connection costs in memory) is freed after a second of silence and made again on the next bytes."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PARSER_IDLE_RELEASE)
            now = loop.time()
            for conn in list(self.connections):
                if now - conn.last_active >= PARSER_IDLE_RELEASE:
                    conn.stream.release_parser()

    async def _ping(self, conn: C2SConnection, timeout: float) -> None:
        session = conn.session
        assert session is not None
        conn.pinging = True
        iq = Element("iq", attrs={"type": "get"})
        iq.add("ping", "urn:xmpp:ping")
        try:
            await self.router.request(session, iq, timeout)
        except TimeoutError:
            log.info("event=ping-timeout session=%s", session)
            conn.close_stream(StreamError("connection-timeout", "no answer to ping"))
        finally:
            conn.pinging = False

    async def stop(self) -> None:
        """Close every stream with system-shutdown, let the sessions' last writes finish, then storage."""
        log.info("event=stopping")
        for srv in self._servers:
            srv.close()
        await self.events.fire_all(E.SERVER_STOPPING, ServerEvent())
        for conn in list(self.connections):
            conn.close_stream(StreamError("system-shutdown", "the server is shutting down"))
        if self.connections:
            self._all_closed = asyncio.Event()
            try:
                await asyncio.wait_for(self._all_closed.wait(), SHUTDOWN_GRACE)
            except TimeoutError:
                for conn in list(self.connections):
                    conn.abort()
        for task in (self._keepalive_task, self._release_task):
            if task is not None:
                task.cancel()
        pending = {t for t in self._tasks if not t.done()}
        if pending:
            _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.storage.close()
        (self.data_dir / control.SOCKET_NAME).unlink(missing_ok=True)
        log.info("event=stopped")

    def connection_closed(self, conn: C2SConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, and stop cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
        except BaseException:
            await self.storage.close()
            raise
        await stop.wait()
        await self.stop()
