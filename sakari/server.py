"""The server: puts config, storage, router, modules and listeners together, and runs them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import signal
import ssl
from pathlib import Path
from typing import Any

from sakari import settings as S
from sakari.config import Config
from sakari.core import events as E
from sakari.core.events import AccountEvent, Events, ServerEvent, StanzaEvent
from sakari.core.hosts import Hosts
from sakari.core.local_router import LocalRouter
from sakari.core.modules import ServerContext, load_module, parse_admins
from sakari.core.router import ROUTE_REMOTE
from sakari.core.sessions import SessionManager
from sakari.core.tasks import Tasks
from sakari.credentials import Credentials
from sakari.errors import StartError
from sakari.jid import JIDError, parse_jid, prep_domain
from sakari.net import acme, certificates, control, local_ca, s2s, s2s_tls, tls
from sakari.net.bosh import BoshEndpoint
from sakari.net.c2s import C2SConnection, release_idle_parsers
from sakari.net.component import ComponentConnection, ComponentPort
from sakari.net.http import HttpStack
from sakari.net.port import ClientPort, ConnectionLimits
from sakari.net.throttle import Abuse
from sakari.net.transport import Listener, Listeners, raise_open_file_limit
from sakari.net.web import BOSH_PATH, HTTP_TLS, PUBLIC_URL, TRUSTED_PROXIES, WEBSOCKET_PATH, HostMeta, WebOrigin
from sakari.net.websocket import WebSocketEndpoint
from sakari.storage import open_storage
from sakari.storage.base import Storage
from sakari.stream.c2s import StreamSettings
from sakari.xml.element import Element
from sakari.xml.errors import StreamError

log = logging.getLogger("sakari.server")

CERTIFICATE_CHECK = 12 * 3600.0  # seconds between renewals of the local CA's certificate and expiry warnings
SHUTDOWN_GRACE = 5.0  # seconds for clients to take their </stream:stream> and for last writes
OWN_FILES = 64  # open files the server keeps for itself: database, listeners, certificates, worker threads
DISABLED_STORE = "disabled"  # accounts an administrator disabled (XEP-0133): their logins fail as a wrong password's


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.domain = prep_domain(config[S.DOMAIN])
        self.data_dir = Path(config[S.DATA_DIR])
        self.hosts = Hosts()
        self.hosts.add_users(self.domain)
        for name, options in config.hosts.items():
            self.hosts.add_users(name, options)
        components = config[S.COMPONENTS]
        for component in components:
            try:
                self.hosts.add_component(component["domain"], component["name"])
            except ValueError as e:
                raise StartError(f"components: {e}") from None
        self.events = Events()
        self.tasks = Tasks()
        self.router = LocalRouter(self.hosts, self.events)
        self.sessions = SessionManager(self.router, self.events, self.tasks)
        self.storage: Storage = open_storage(config)
        self.listeners = Listeners()
        self.http = HttpStack()
        self.ctx = ServerContext(
            config=config,
            hosts=self.hosts,
            events=self.events,
            router=self.router,
            sessions=self.sessions,
            storage=self.storage,
            tasks=self.tasks,
            domain=self.domain,
            admins=parse_admins(config[S.ADMINS]),
            add_listener=lambda name, port, factory, direct_tls: self.listeners.declare(
                Listener(name, port, factory, direct_tls)
            ),
            add_http_route=self.http.add_route,
        )
        rate_bytes = config[S.RATE_BYTES]
        max_send_buffer = config[S.MAX_SEND_BUFFER]
        self.port = ClientPort(
            settings=StreamSettings(
                domain=self.domain,
                tls_available=True,
                require_encryption=config[S.REQUIRE_ENCRYPTION],
                allow_plain=config[S.ALLOW_PLAIN],
                max_stanza_size=config[S.MAX_STANZA_SIZE],
                max_depth=config[S.MAX_DEPTH],
                domains=frozenset(self.hosts.user_domains()),
            ),
            sessions=self.sessions,
            tasks=self.tasks,
            credentials=self._credentials,
            features=self.collect_stream_features,
            limits=ConnectionLimits(
                auth_timeout=config[S.AUTH_TIMEOUT],
                rate_bytes=rate_bytes,
                rate_burst=max(config[S.RATE_BURST], config[S.MAX_STANZA_SIZE]) if rate_bytes else 0,
                max_send_buffer=max_send_buffer,
                send_high_water=min(config[S.SEND_HIGH_WATER], max_send_buffer),
                send_stall_timeout=config[S.SEND_STALL_TIMEOUT],
            ),
            pre_bind=self.ctx.pre_bind,
            pre_auth=self.ctx.pre_auth,
            bind_inline=self.ctx.bind_inline,
            abuse=Abuse.from_config(config),
        )
        self.listeners.declare(Listener("c2s", S.C2S_PORT, lambda: C2SConnection(self.port, False)))
        self.listeners.declare(Listener("c2s-tls", S.C2S_TLS_PORT, lambda: C2SConnection(self.port, True), direct_tls=True))
        self.listeners.declare(Listener("http", S.HTTP_PORT, self.http.protocol, direct_tls=config[HTTP_TLS]))
        # The same routes over TLS beside the plain port (Prosody's https_ports): the quick start's browser stays on
        # http://localhost:5280/ while apps that take only https upload links (Dino, Conversations) get them here.
        # It shares the c2s context, so a SIGHUP reload reaches it too.
        self.listeners.declare(Listener("https", S.HTTPS_PORT, self.http.protocol, direct_tls=True))
        self.component_port = ComponentPort(
            router=self.router,
            hosts=self.hosts,
            events=self.events,
            tasks=self.tasks,
            secrets={prep_domain(c["domain"]): c["secret"] for c in components},
            max_stanza_size=config[S.MAX_STANZA_SIZE],
            max_depth=config[S.MAX_DEPTH],
            auth_timeout=config[S.AUTH_TIMEOUT],
            max_send_buffer=max_send_buffer,
        )
        if components:  # no port open for components nobody configured
            self.listeners.declare(Listener("component", S.COMPONENT_PORT, lambda: ComponentConnection(self.component_port)))
        self.federation: s2s.Federation | None = None  # made at start, with the stored dialback secret
        self._certificate = (Path(), Path())  # the certificate and key in use, once _setup_tls found them
        self._chosen: certificates.ServerCertificate | None = None
        self.ca_download = local_ca.Download(self.domain)
        self.http.add_route("GET", local_ca.DOWNLOAD_PATH, self.ca_download.handle)
        self.acme_challenges = acme.Challenges()
        if config[acme.ENABLED] and not config[S.TLS_CERT]:
            if not config[S.HTTP_PORT] or config[HTTP_TLS]:
                raise StartError(
                    "tls.acme answers the CA's HTTP-01 challenge on network.http_port, in plain HTTP: "
                    "open that port (and leave http.tls off), or turn tls.acme off"
                )
            # HTTP-01 (RFC 8555 §8.3): the CA fetches the answer from port 80 of the domain, which the operator
            # points at the HTTP port (operator guide).
            self.http.add_route("GET", acme.CHALLENGE_PATH, self.acme_challenges.handle)
        self._acme_task: asyncio.Task[None] | None = None
        if config[s2s.ENABLED]:
            self.listeners.declare(Listener("s2s", S.S2S_PORT, self._s2s_connection))
            self.listeners.declare(Listener(
                "s2s-tls", S.S2S_TLS_PORT, lambda: self._s2s_connection(direct_tls=True), direct_tls=True,
                ssl_context=lambda: self._federation().server_ssl,
            ))
            self.events.hook(ROUTE_REMOTE, self._route_remote)
        # For the admin commands (XEP-0133), which must not import the server.
        self.ctx.services["account-deletion"] = self.delete_account
        self.disabled = self.storage.cached_keyvalue(DISABLED_STORE)  # read on every login: cached
        self._add_web_transports()
        self._all_closed: asyncio.Event | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._certificate_task: asyncio.Task[None] | None = None

    @property
    def ports(self) -> dict[str, int]:
        return self.listeners.ports

    def _add_web_transports(self) -> None:
        """XMPP over WebSocket and BOSH, and their discovery (XEP-0156), on the HTTP port."""
        origin = WebOrigin.from_lists(self.config[TRUSTED_PROXIES], self.config[PUBLIC_URL])
        self.http.add_route("GET", WEBSOCKET_PATH, WebSocketEndpoint(self.port, origin).handle)
        bosh = BoshEndpoint(self.port, origin)
        self.http.add_route("POST", BOSH_PATH, bosh.handle)
        self.http.add_route("OPTIONS", BOSH_PATH, bosh.preflight)
        host_meta = HostMeta(origin)
        self.http.add_route("GET", "/.well-known/host-meta", host_meta.xrd)
        self.http.add_route("GET", "/.well-known/host-meta.json", host_meta.json)

    def collect_stream_features(self, authenticated: bool) -> list[Element]:
        return [el for provider in self.ctx.stream_features if (el := provider(authenticated)) is not None]

    def _find_certificate(self) -> certificates.ServerCertificate:
        now = datetime.datetime.now(datetime.UTC)
        domains = self.hosts.user_domains()
        directory = self.data_dir / certificates.DIRECTORY
        if self.config[acme.ENABLED] and not self.config[S.TLS_CERT] and (directory / acme.CERT).exists():
            return certificates.ServerCertificate(directory / acme.CERT, directory / acme.KEY, certificates.ACME)
        return certificates.find(self.config[S.TLS_CERT], self.config[S.TLS_KEY], directory, domains, now)

    def _setup_tls(self) -> None:
        try:
            chosen = self._find_certificate()
        except (OSError, ValueError) as e:
            raise StartError(f"cannot make or read the certificate in {self.data_dir / certificates.DIRECTORY}: {e}") from None
        try:
            self.port.ssl_context = tls.server_context(chosen.cert_path, chosen.key_path)
            self.port.channel_bindings = {"tls-server-end-point": tls.end_point_hash(chosen.cert_path)}
        except (OSError, ValueError, ssl.SSLError) as e:
            raise StartError(f"cannot use the certificate {chosen.cert_path} with key {chosen.key_path}: {e}") from None
        self._use_certificate(chosen)

    def _use_certificate(self, chosen: certificates.ServerCertificate) -> None:
        self._chosen = chosen
        self._certificate = (chosen.cert_path, chosen.key_path)
        self.ca_download.ca = chosen.ca

    def _server_contexts(self) -> list[ssl.SSLContext]:
        """Every context that presents our certificate: clients', and federation's both ways."""
        contexts = [self.port.ssl_context] if self.port.ssl_context is not None else []
        if self.federation is not None:
            contexts.append(self.federation.server_ssl)
            if self.federation.present_certificate:
                contexts.append(self.federation.client_ssl)
        return contexts

    def _report_certificate(self) -> None:
        assert self._chosen is not None  # found by _setup_tls
        # Plain HTTP where there is some: a device that does not trust the CA yet cannot fetch it over TLS without a
        # warning (the fingerprint in the log is what makes the download safe).
        http_port, https_port = self.ports.get("http"), self.ports.get("https")
        if self.config[PUBLIC_URL]:
            url = self.config[PUBLIC_URL].rstrip("/") + local_ca.DOWNLOAD_PATH
        elif http_port:
            url = f"{'https' if self.config[HTTP_TLS] else 'http'}://{self.domain}:{http_port}{local_ca.DOWNLOAD_PATH}"
        elif https_port:
            url = f"https://{self.domain}:{https_port}{local_ca.DOWNLOAD_PATH}"
        else:
            url = ""
        now = datetime.datetime.now(datetime.UTC)
        certificates.report(self._chosen, self.hosts.user_domains(), now, url)

    def reload_certificate(self, order: bool = True) -> None:
        """SIGHUP: connections from now on get the certificate found now. Open ones keep theirs: each holds its
        own copy, taken from the context when its handshake began. With ACME on, a certificate that is due is
        ordered too (``order``; not after an order, which would loop when the new one is due at once)."""
        if order:
            self._order_certificate_if_due()
        try:
            chosen = self._find_certificate()
            tls.server_context(chosen.cert_path, chosen.key_path)  # whole and matching before anything changes
            bindings = {"tls-server-end-point": tls.end_point_hash(chosen.cert_path)}
            for ctx in self._server_contexts():
                ctx.load_cert_chain(chosen.cert_path, chosen.key_path)
        except (OSError, ValueError, ssl.SSLError) as e:
            log.error("event=certificate-reload-failed error=%s hint=\"the certificate in use stays\"", e)
            return
        changed = (chosen.cert_path, chosen.key_path) != self._certificate or bindings != self.port.channel_bindings
        # A new dict, not an update: open streams keep the binding data of the certificate they were given.
        self.port.channel_bindings = bindings
        self._use_certificate(chosen)
        self._present_to_servers(chosen)
        log.info("event=certificate-reloaded changed=%s", "yes" if changed else "no")
        self._report_certificate()

    def _present_to_servers(self, chosen: certificates.ServerCertificate) -> None:
        """A certificate that verifies now (ACME's, which comes after the local CA's served at start) is shown to
        other servers from now on, so that they can take SASL EXTERNAL instead of dialback."""
        fed = self.federation
        if fed is None or fed.present_certificate:
            return
        if s2s_tls.verifies_as_client(chosen.cert_path, chosen.key_path, self.config[s2s.CA_FILE]):
            fed.client_ssl.load_cert_chain(chosen.cert_path, chosen.key_path)
            fed.present_certificate = True
            log.info("event=s2s-configured certificate=presented dialback=%s", fed.settings.dialback)

    def _order_certificate_if_due(self) -> None:
        """With ACME on: order a certificate in the background when there is none, when it does not name every
        served domain or ends within tls.acme_renew_before days. Until it comes, the certificate in hand serves."""
        if not self.config[acme.ENABLED] or self.config[S.TLS_CERT]:
            return
        if self._acme_task is not None and not self._acme_task.done():
            return  # one order at a time
        domains = self.hosts.user_domains()
        renew_before = datetime.timedelta(days=self.config[acme.RENEW_BEFORE])
        why = acme.due(self.data_dir / certificates.DIRECTORY / acme.CERT, domains, datetime.datetime.now(datetime.UTC), renew_before)
        if why is not None:
            self._acme_task = self.tasks.spawn(self._order_certificate(domains, why))

    async def _order_certificate(self, domains: list[str], why: str) -> None:
        url = self.config[acme.DIRECTORY_URL]
        log.info("event=acme-order domains=%s reason=\"%s\" directory=%s", ",".join(domains), why, url)
        try:
            path = await acme.obtain_in_thread(
                self.data_dir / certificates.DIRECTORY, domains, url, self.config[acme.EMAIL],
                self.config[acme.CA_FILE], self.acme_challenges,
            )
        except Exception as e:  # noqa: BLE001 - the library's, requests' and our own errors alike must not stop the server
            log.error(
                "event=acme-failed error=\"%s\" hint=\"the certificate in use stays; tried again on SIGHUP and every 12 hours\"",
                str(e).replace('"', "'")[:500],
            )
            return
        log.info("event=acme-certificate path=%s", path)
        self.reload_certificate(order=False)

    async def _stored_secret(self, name: str) -> bytes:
        """A secret of the server's (decoy SCRAM salts, dialback keys); kept in storage so a restart does not
        change it."""
        documents = self.storage.documents("server-secret")
        secret = await documents.get(self.domain, name)
        if secret is None:
            secret = os.urandom(32)
            await documents.set(self.domain, name, secret)
        return secret

    def _federation(self) -> s2s.Federation:
        assert self.federation is not None  # listeners start after it is made
        return self.federation

    def _s2s_connection(self, direct_tls: bool = False) -> s2s.InboundConnection:
        return s2s.InboundConnection(self._federation(), direct_tls)

    async def _route_remote(self, event: StanzaEvent) -> bool | None:
        return await self.federation.route(event) if self.federation is not None else None

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        soft, hard = raise_open_file_limit()
        # Some files are the server's own (database, listeners, logs): the rest can be connections.
        log.info("event=open-files limit=%d hard=%d connections=%d", soft, hard, max(0, soft - OWN_FILES))
        self._setup_tls()
        await self.storage.open()
        self.port.settings = dataclasses.replace(
            self.port.settings, decoy_secret=await self._stored_secret("scram-decoy"), decoy_iterations=self.config[S.SCRAM_ITERATIONS]
        )
        for name in self.config[S.MODULES]:
            load_module(self.ctx, name)
        if any(c["privileges"] for c in self.config[S.COMPONENTS]):
            load_module(self.ctx, "privilege")  # granted in the configuration, so wanted without a second line
        self.port.token_store = self.ctx.token_store
        self.port.settings = dataclasses.replace(
            self.port.settings, pre_bind=frozenset(self.ctx.pre_bind), pre_auth=frozenset(self.ctx.pre_auth),
            bind_inline=tuple(sorted(self.ctx.bind_inline)), fast=self.ctx.token_store is not None,
            sasl2_inline=tuple(self.ctx.sasl2_inline),
        )
        if self.config[s2s.ENABLED]:
            self.federation = s2s.build(
                self.config, self.router, self.tasks, await self._stored_secret("dialback"), *self._certificate
            )
        self.events.check()
        # Before the first connection: what modules compute here (e.g. the caps hash) is in every stream's features.
        await self.events.fire_all(E.SERVER_STARTED, ServerEvent())
        await self.http.setup()
        await self.listeners.start(self.config, self.config[S.BIND], self.port.ssl_context, self.config[S.AUTH_TIMEOUT])
        self.listeners.add_server(await control.serve(
            self.data_dir, {"delete-account": self._delete_account, "account-changed": self._account_changed}
        ))
        self._release_task = self.tasks.spawn(release_idle_parsers(self.port))
        self._report_certificate()
        self._certificate_task = self.tasks.spawn(self._check_certificate_periodically())
        self._order_certificate_if_due()  # now that the HTTP port is there to answer the challenge
        log.info("event=ready domains=%s", ",".join(self.hosts.user_domains()))

    async def _credentials(self, owner: str) -> Credentials | None:
        """A login's credentials; none for a disabled account, which then fails like any wrong password."""
        if await self.disabled.get(owner) is not None:
            return None
        return await self.storage.accounts.get(owner)

    async def delete_account(self, owner: str) -> bool:
        """Delete an account and all its data, ending its sessions first."""
        jid = parse_jid(owner)
        for session in self.sessions.sessions_of(jid):
            session.close(StreamError("not-authorized", "this account has been deleted"))
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

    async def _account_changed(self, request: dict[str, Any]) -> dict[str, Any]:
        """Another process wrote an account's data (a new password): what the caches hold of it is stale."""
        try:
            owner = str(parse_jid(str(request["jid"])).bare)
        except (KeyError, JIDError) as e:
            return {"error": f"bad account address: {e}"}
        self.storage.invalidate(owner)
        return {"forgotten": owner}

    async def stop(self) -> None:
        """Close every stream with system-shutdown, let the sessions' last writes finish, then storage."""
        log.info("event=stopping")
        self.listeners.stop()
        if self.federation is not None:
            self.federation.close_all()
        await self.events.fire_all(E.SERVER_STOPPING, ServerEvent())
        for session in list(self.sessions):
            session.close(StreamError("system-shutdown", "the server is shutting down"))
        for component in list(self.component_port.connections):
            component.close_stream(StreamError("system-shutdown", "the server is shutting down"))  # type: ignore[attr-defined]
        connections = self.port.connections
        for conn in list(connections):
            conn.close_stream(StreamError("system-shutdown", "the server is shutting down"))  # type: ignore[attr-defined]
        if connections:
            self.port.all_closed = asyncio.Event()
            try:
                await asyncio.wait_for(self.port.all_closed.wait(), SHUTDOWN_GRACE)
            except TimeoutError:
                for conn in list(connections):
                    conn.abort()  # type: ignore[attr-defined]
        for task in (self._release_task, self._certificate_task, self._acme_task):
            if task is not None:
                task.cancel()
        await self.tasks.finish(SHUTDOWN_GRACE)
        await self.http.close()
        await self.storage.close()
        (self.data_dir / control.SOCKET_NAME).unlink(missing_ok=True)
        log.info("event=stopped")

    async def _check_certificate_periodically(self) -> None:
        """Renews the local CA's certificate (and with ACME on, the ACME one) before it expires, and repeats the
        warnings of a server that runs for months."""
        while True:
            await asyncio.sleep(CERTIFICATE_CHECK)
            self.reload_certificate()

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, reload the certificate on SIGHUP, and stop cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_certificate)
        try:
            await self.start()
        except BaseException:
            await self.storage.close()
            raise
        await stop.wait()
        await self.stop()
