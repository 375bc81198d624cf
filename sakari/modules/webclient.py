"""The web client at ``/`` of the HTTP port: Converse.js, configured for this server, over WebSocket (RFC 7395).

Converse.js is not part of Sakari's source: the pinned release comes from
the npm registry (``python -m sakari.modules.webclient``, which ``./run``
calls) into a cache directory that this module serves under ``/converse/``.
The page at ``/`` starts it with this server's domain and its WebSocket
address, taken from the page's own location so that it also works behind a
proxy. OMEMO (XEP-0384) is built into Converse.js and available in every chat.

Files shared from apps (XEP-0363) are at the address apps are given, the
HTTPS port's https://localhost:5281/upload/... in the quick start. The page
shows them from its own address instead: the HTTP port serves the same
files, its policy lets it load only its own origin, and a browser at
http://localhost:5280/ trusts no local CA.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from aiohttp import web

from sakari import settings as S
from sakari.config import declare
from sakari.core.modules import ModuleAPI
from sakari.modules.upload import HTTP_PATH as UPLOAD_PATH
from sakari.net.web import HTTP_TLS, PUBLIC_URL, WEBSOCKET_PATH

CONVERSE_PACKAGE = "converse.js"
CONVERSE_VERSION = "14.0.0"
DEFAULT_CACHE = Path(".cache") / CONVERSE_PACKAGE / CONVERSE_VERSION
ASSETS = "/converse/"

PATH = declare(
    "webclient.path",
    "",
    f"A directory with Converse.js's dist files to serve. Empty: the pinned release that ./run fetches into {DEFAULT_CACHE}.",
)

# The page loads nothing from elsewhere: Converse's fullscreen footer would fetch sponsors' logos from a third
# party, telling it who opens the page. Scripts come only from this server (no inline script to inject into).
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self' https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}converse.min.css">
<script type="module" src="/webclient.js"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript.</noscript>
</body>
</html>
"""
STARTER = """import converse from "{assets}converse.min.js";
const settings = {settings};
settings.websocket_url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "{websocket}";
// This server's uploaded files, at whichever of its addresses a client was given, are shown from this page's origin.
const ownFiles = {own_files};
const here = location.origin + "{upload}/";
function atThisPage(text) {{
  if (typeof text !== "string") return text;
  for (const prefix of ownFiles) text = text.split(prefix).join(here);
  return text;
}}
converse.plugins.add("sakari-own-files", {{
  initialize() {{
    const rewrite = (stanza, attrs) => {{
      for (const key of ["body", "message", "oob_url", "plaintext"]) {{
        if (key in attrs) attrs[key] = atThisPage(attrs[key]);
      }}
      return attrs;
    }};
    this._converse.api.listen.on("parseMessage", rewrite);
    this._converse.api.listen.on("parseMUCMessage", rewrite);
  }},
}});
settings.whitelisted_plugins = ["sakari-own-files"];
converse.initialize(settings);
"""
# Converse's OMEMO library fetches its WebAssembly next to the page, not from assets_path.
WASM = "curve25519_compiled.wasm"
MISSING = "The web client is not installed on this server: run ./run serve (it fetches it) or set webclient.path.\n"


def converse_settings(domain: str) -> dict[str, object]:
    return {
        "assets_path": ASSETS,
        "authentication": "login",
        "default_domain": domain,
        "discover_connection_methods": False,
        "view_mode": "fullscreen",
        "allow_registration": False,
        "allow_non_roster_messaging": True,  # a first message from someone not yet a contact still shows
        "omemo_default": False,
        "loglevel": "warn",
        # Converse would fetch lists of public servers from data.xmpp.net (for the address field of "Add a
        # contact", and for registration), telling that site who opens the page.
        "autocomplete_providers_url": None,
        "xmpp_providers_url": None,
    }


def own_file_prefixes(domain: str, public_url: str, http_tls: bool, http_port: int, https_port: int) -> list[str]:
    """Where this server's uploads are, as any client may have been given them (upload's choose_base_url and the
    page addresses of web sessions): the web client shows each from its own origin, which serves the same files."""
    bases = []
    public = public_url.rstrip("/")
    if public and public.count("/") == 2:  # an origin: a public_url with a path has its files under that path
        bases.append(public)
    if http_port:
        bases.append(f"{'https' if http_tls else 'http'}://{domain}:{http_port}")
    if https_port:
        bases.append(f"https://{domain}:{https_port}")
    return [base + UPLOAD_PATH + "/" for base in bases]


class WebClient:
    def __init__(self, root: Path, domain: str, own_files: list[str] | None = None) -> None:
        self.root = root.resolve()
        self.page = PAGE.format(title=html.escape(f"Chat on {domain}"), assets=ASSETS)
        self.starter = STARTER.format(
            assets=ASSETS, settings=json.dumps(converse_settings(domain)), websocket=WEBSOCKET_PATH,
            own_files=json.dumps(own_files or []), upload=UPLOAD_PATH,
        )

    def installed(self) -> bool:
        return (self.root / "converse.min.js").is_file()

    async def index(self, request: web.Request) -> web.Response:
        if not self.installed():
            return web.Response(status=503, text=MISSING, headers=PAGE_HEADERS)
        return web.Response(text=self.page, content_type="text/html", headers=PAGE_HEADERS)

    async def start_script(self, request: web.Request) -> web.Response:
        return web.Response(text=self.starter, content_type="text/javascript", headers=PAGE_HEADERS)

    async def wasm(self, request: web.Request) -> web.StreamResponse:
        return self._file(self.root / WASM)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        return self._file(self.root / request.match_info["path"])

    def _file(self, path: Path) -> web.StreamResponse:
        path = path.resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"})


def install(target: Path = DEFAULT_CACHE) -> Path:
    """Fetch the pinned Converse.js from the npm registry (``npm pack``) and put its dist files in ``target``."""
    if (target / "converse.min.js").is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch the web client (apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", "--silent", f"{CONVERSE_PACKAGE}@{CONVERSE_VERSION}", "--pack-destination", tmp],
            check=True, stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
            archive.extractall(tmp, members=members, filter="data")  # "data": no links or paths out of tmp
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(tmp) / "package" / "dist", staging)
        staging.rename(target)  # whole or not at all: a half-fetched client is never served
    return target


def setup(mod: ModuleAPI) -> None:
    own_files = own_file_prefixes(
        mod.domain, mod.option(PUBLIC_URL), mod.option(HTTP_TLS), mod.option(S.HTTP_PORT), mod.option(S.HTTPS_PORT)
    )
    client = WebClient(Path(mod.option(PATH) or DEFAULT_CACHE), mod.domain, own_files)
    if not client.installed():
        mod.log.warning("event=webclient-missing path=%s", client.root)
    mod.add_http_route("GET", "/", client.index)
    mod.add_http_route("GET", "/webclient.js", client.start_script)
    mod.add_http_route("GET", "/" + WASM, client.wasm)
    mod.add_http_route("GET", ASSETS + "{path:.+}", client.asset)


if __name__ == "__main__":
    print(install(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE))
