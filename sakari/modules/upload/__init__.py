"""XEP-0363 HTTP File Upload: a service (``upload.<domain>``) hands out slots; files go up by PUT and down by GET.

Slot requests (§4–§5) come from local accounts only and are held to a size
limit and a per-account quota. Downloads are served so that no upload can
act in a browser (§11 and the OWASP advice on user content): only media and
plain text are shown inline, everything else is an attachment of type
application/octet-stream; ``X-Content-Type-Options: nosniff`` stops type
guessing and a sandboxing ``Content-Security-Policy`` keeps an HTML or SVG
file from running script even when opened directly. CORS (with the OPTIONS
preflight) lets web clients on other origins upload and download.
Encrypted uploads (aesgcm://, XEP-0454) are opaque bytes here and need
nothing special. Files expire, and go with their owner's account.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from sakari import settings as S
from sakari.config import declare, non_negative, positive
from sakari.core import events as E
from sakari.core.events import AccountEvent, ServerEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JID
from sakari.modules.upload.store import Slot, SlotRefused, UploadStore
from sakari.net.web import HTTP_TLS, PUBLIC_URL
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

NS = "urn:xmpp:http:upload:0"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
HTTP_PATH = "/upload"
SLOT_LIFETIME = 300.0  # seconds a client has to start its PUT
SWEEP_INTERVAL = 600.0
CHUNK = 65536

MAX_SIZE = declare("upload.max_size", 52428800, "Largest file in bytes a user may upload (XEP-0363).", positive)
QUOTA = declare("upload.quota", 1073741824, "Bytes of files one account may keep at once. 0: no quota.", non_negative)
EXPIRE_AFTER = declare(
    "upload.expire_after", 2592000, "Seconds an uploaded file is kept (30 days). 0: until the account is deleted.", non_negative
)
DOMAIN = declare("upload.domain", "", "The upload service's address. Empty: upload.<domain>.")

# Shown in the browser; everything else is downloaded as an attachment of no particular type.
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "text/plain"}
)
INLINE_PREFIXES = ("audio/", "video/")
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Access-Control-Allow-Origin": "*",
}
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def served_type(declared: str) -> str | None:
    """The type to serve inline, or None to serve as an attachment."""
    base = declared.split(";", 1)[0].strip().lower()
    if base == "text/plain":
        return "text/plain; charset=utf-8"
    if base in INLINE_TYPES or (base.startswith(INLINE_PREFIXES) and "+" not in base):
        return base
    return None


def download_headers(slot: Slot) -> dict[str, str]:
    inline = served_type(slot.content_type)
    ascii_name = slot.name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = "inline" if inline else "attachment"
    return {
        **SAFE_HEADERS,
        "Content-Type": inline or "application/octet-stream",
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(slot.name)}",
        "Cache-Control": "private, max-age=86400",
    }


def _refusal(refused: SlotRefused, max_size: int) -> StanzaError:
    if refused.reason == "too-large":
        app = Element("file-too-large", NS)
        app.add("max-file-size", text=str(max_size))
        return StanzaError("not-acceptable", refused.text, app=app)
    if refused.reason == "quota":
        return StanzaError("resource-constraint", refused.text, type="wait")
    return StanzaError("bad-request", refused.text)


class UploadService:
    def __init__(self, mod: ModuleAPI, store: UploadStore, domain: str, base_url: str) -> None:
        self.mod = mod
        self.store = store
        self.domain = domain
        self.base_url = base_url
        self._uploading: set[str] = set()  # slots with a PUT in progress: a second one is refused

    # --- XMPP ---------------------------------------------------------------------------
    async def handle(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        child = stanza.first_child()
        if stanza.name != "iq" or stanza.attrs.get("type") != "get" or child is None or event.to_jid.local:
            return None
        if (child.ns, child.name) == (NS, "request"):
            self.mod.router.reply_result(event, self.slot(event, child))
            return True
        if (child.ns, child.name) == (NS_INFO, "query") and not child.attrs.get("node"):
            self.mod.router.reply_result(event, self.info())
            return True
        return None  # disco#items, ping…: answered for every service alike

    def slot(self, event: StanzaEvent, request: Element) -> Element:
        if not self.mod.hosts.has_accounts(event.from_jid.domain) or not event.from_jid.local:
            raise StanzaError("not-allowed", "only accounts of this server may upload")
        try:
            size = int(request.attrs.get("size", ""))
        except ValueError:
            raise StanzaError("bad-request", "the request needs the file's size in bytes") from None
        try:
            slot = self.store.create(
                str(event.from_jid.bare), request.attrs.get("filename", ""), size,
                request.attrs.get("content-type", "application/octet-stream"), time.time(),
            )
        except SlotRefused as refused:
            raise _refusal(refused, self.store.max_size) from None
        url = f"{self._base_url_for(event.from_jid)}{HTTP_PATH}/{slot.id}/{quote(slot.name)}"
        answer = Element("slot", NS)
        answer.add("put", attrs={"url": url})
        answer.add("get", attrs={"url": url})
        return answer

    def _base_url_for(self, requester: JID) -> str:
        """A browser's slot is at the address its page reached us at: the quick start's http://localhost:5280
        needs no certificate and is the page's own origin. Apps get the configured, https, address."""
        session = self.mod.sessions.get(requester)
        connection = session.connection if session is not None else None
        return (connection.web_origin if connection is not None else "") or self.base_url

    def info(self) -> Element:
        query = Element("query", NS_INFO)
        query.add("identity", attrs={"category": "store", "type": "file", "name": "HTTP File Upload"})
        for var in (NS, NS_INFO):
            query.add("feature", attrs={"var": var})
        form = query.add("x", NS_DATA, {"type": "result"})
        form.add("field", attrs={"var": "FORM_TYPE", "type": "hidden"}).add("value", text=NS)
        form.add("field", attrs={"var": "max-file-size"}).add("value", text=str(self.store.max_size))
        return query

    # --- HTTP ---------------------------------------------------------------------------
    def _slot_of(self, request: web.Request) -> Slot:
        slot = self.store.get(request.match_info["slot"])
        if slot is None or slot.name != request.match_info["name"]:
            raise web.HTTPNotFound(headers=SAFE_HEADERS)
        return slot

    async def put(self, request: web.Request) -> web.Response:
        slot = self._slot_of(request)
        if slot.id in self._uploading or not self.store.open_for_upload(slot, time.time()):
            raise web.HTTPConflict(text="this upload slot is used or has expired\n", headers=SAFE_HEADERS)
        length = request.content_length
        if length is None:
            raise web.HTTPLengthRequired(headers=SAFE_HEADERS)
        if length > slot.size:
            raise web.HTTPRequestEntityTooLarge(slot.size, length, headers=SAFE_HEADERS)
        if length != slot.size:
            raise web.HTTPBadRequest(text="the size differs from the slot's\n", headers=SAFE_HEADERS)
        partial = self.store.partial(slot)
        self._uploading.add(slot.id)
        try:
            await self._receive(request, partial, slot.size)
            self.store.complete(slot, time.time())
        except BaseException:
            partial.unlink(missing_ok=True)  # also when the client went away mid-upload
            raise
        finally:
            self._uploading.discard(slot.id)
        return web.Response(status=201, headers=SAFE_HEADERS)

    async def _receive(self, request: web.Request, path: Path, size: int) -> None:
        received = 0
        with path.open("wb") as out:
            async for chunk in request.content.iter_chunked(CHUNK):
                received += len(chunk)
                if received > size:  # more than Content-Length said: stop reading at once
                    raise web.HTTPRequestEntityTooLarge(size, received, headers=SAFE_HEADERS)
                out.write(chunk)
        if received != size:
            raise web.HTTPBadRequest(text="the upload ended early\n", headers=SAFE_HEADERS)

    async def get(self, request: web.Request) -> web.StreamResponse:
        slot = self._slot_of(request)
        if slot.uploaded is None:
            raise web.HTTPNotFound(headers=SAFE_HEADERS)
        return web.FileResponse(self.store.file(slot), headers=download_headers(slot))

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=PREFLIGHT)

    # --- housekeeping -------------------------------------------------------------------
    async def sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            removed = await loop.run_in_executor(None, self.store.sweep, time.time())
            if removed:
                self.mod.log.info("event=uploads-expired count=%d", removed)
            await asyncio.sleep(SWEEP_INTERVAL)

    async def account_deleted(self, event: AccountEvent) -> None:
        account = f"{event.user}@{event.host}"
        await asyncio.get_running_loop().run_in_executor(None, self.store.delete_account, account)


def choose_base_url(domain: str, public_url: str, http_tls: bool, http_port: int, https_port: int) -> str:
    """Where slots point. The operator's own address first (a proxy in front, or ``--public``); otherwise https,
    since Dino and Conversations refuse to upload to an http:// slot: the HTTP port when it speaks TLS itself, else
    the HTTPS port. Plain HTTP only when neither is there."""
    if public_url:
        return public_url.rstrip("/")
    if http_tls and http_port:
        return f"https://{domain}:{http_port}"
    if https_port:
        return f"https://{domain}:{https_port}"
    return f"http://{domain}:{http_port}"


def slot_base_url(mod: ModuleAPI) -> str:
    return choose_base_url(
        mod.domain, mod.option(PUBLIC_URL), mod.option(HTTP_TLS), mod.option(S.HTTP_PORT), mod.option(S.HTTPS_PORT)
    )


def base_url(mod: ModuleAPI) -> str:
    """Where a browser reaches the HTTP port, for pages (invitation links): http.public_url, or the domain and port
    as configured. Not the slots' address: a browser that opens an invitation on this machine needs no
    certificate at http://localhost:5280/, and elsewhere the page says to use https or an app."""
    public = mod.option(PUBLIC_URL).rstrip("/")
    if public:
        return public
    scheme = "https" if mod.option(HTTP_TLS) else "http"
    return f"{scheme}://{mod.domain}:{mod.option(S.HTTP_PORT)}"


def setup(mod: ModuleAPI) -> None:
    store = UploadStore(
        Path(mod.option(S.DATA_DIR)) / "uploads", mod.option(MAX_SIZE), mod.option(QUOTA), SLOT_LIFETIME,
        mod.option(EXPIRE_AFTER),
    )
    domain = mod.option(DOMAIN) or f"upload.{mod.domain}"
    service = UploadService(mod, store, domain, slot_base_url(mod))
    mod.add_service(domain, service.handle, "HTTP File Upload", {("store", "file", "HTTP File Upload")}, {NS})
    route = f"{HTTP_PATH}/{{slot}}/{{name}}"
    mod.add_http_route("PUT", route, service.put)
    mod.add_http_route("GET", route, service.get)
    mod.add_http_route("HEAD", route, service.get)
    mod.add_http_route("OPTIONS", route, service.preflight)
    mod.hook(E.ACCOUNT_DELETED, service.account_deleted)
    sweeper: list[asyncio.Task[None]] = []

    def start(event: ServerEvent) -> None:
        sweeper.append(mod.spawn(service.sweep_forever()))

    def stop(event: ServerEvent) -> None:
        for task in sweeper:
            task.cancel()

    mod.hook(E.SERVER_STARTED, start)
    mod.hook(E.SERVER_STOPPING, stop)
