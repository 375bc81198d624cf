"""XEP-0363 HTTP File Upload against a real server: slots, limits, safe downloads, CORS, deletion with the account."""

from __future__ import annotations

import ssl
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

import aiohttp
import pytest

from sakari.settings import DEFAULT_MODULES
from sakari_process import DOMAIN, HOST, run_cli
from web_clients import BoshClient, WebSocketClient
from xmpp_harness import NS_CLIENT, q

NS = "urn:xmpp:http:upload:0"
SERVICE = f"upload.{DOMAIN}"
MAX_SIZE = 1000
QUOTA = 2500
CONFIG = f"""
[modules]
enabled = {list(DEFAULT_MODULES) + ["upload"]!r}

[upload]
max_size = {MAX_SIZE}
quota = {QUOTA}
"""


@pytest.fixture(scope="module")
def upload_server(spawn_server):
    with spawn_server("upload", CONFIG, accounts=12) as srv:
        yield srv


@pytest.fixture
async def client(upload_server, session_for):
    return await session_for(upload_server).login()


@pytest.fixture
async def http(upload_server):
    # Sakari's own CA trusted, and names checked, as on a device that installed the CA (operator guide).
    trusting = ssl.create_default_context(cafile=str(upload_server.data_dir / "certs" / "ca.crt"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
        yield session


async def request_slot(client, name: str, size: int, content_type: str = "application/octet-stream") -> tuple[str, str]:
    result = await client.iq(
        "get",
        f"<request xmlns='{NS}' filename={quoteattr(name)} size='{size}' content-type={quoteattr(content_type)}/>",
        to=SERVICE,
    )
    slot = result.find(q(NS, "slot"))
    assert slot is not None, ET.tostring(result)
    return slot.find(q(NS, "put")).get("url"), slot.find(q(NS, "get")).get("url")


async def upload(http, client, name: str, data: bytes, content_type: str) -> str:
    put, get = await request_slot(client, name, len(data), content_type)
    async with http.put(put, data=data, headers={"Content-Type": content_type}) as resp:
        assert resp.status == 201, await resp.text()
    return get


async def test_service_is_discoverable_with_its_size_limit(client):
    items = await client.iq("get", "<query xmlns='http://jabber.org/protocol/disco#items'/>", to=DOMAIN)
    assert SERVICE in [i.get("jid") for i in items.iter(q("http://jabber.org/protocol/disco#items", "item"))]
    info = await client.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=SERVICE)
    assert NS in [f.get("var") for f in info.iter(q("http://jabber.org/protocol/disco#info", "feature"))]
    fields = {f.get("var"): f.findtext(q("jabber:x:data", "value")) for f in info.iter(q("jabber:x:data", "field"))}
    assert fields["FORM_TYPE"] == NS and fields["max-file-size"] == str(MAX_SIZE)


async def test_slots_are_https_on_the_https_port_while_the_http_port_stays_plain(client, http, upload_server):
    put, get = await request_slot(client, "note.txt", 5, "text/plain")
    # Dino and Conversations upload only to https:// slots; the quick start has no proxy and no public_url.
    assert put == get and put.startswith(f"https://{DOMAIN}:{upload_server.https_port}/upload/")
    async with http.put(put, data=b"hello", headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 201
    async with http.get(get) as resp:
        assert resp.status == 200 and await resp.read() == b"hello"
    # The browser quick start at http://localhost:<http_port>/ is unchanged: that port does not speak TLS.
    async with http.get(f"http://{DOMAIN}:{upload_server.http_port}/health") as resp:
        assert resp.status == 200


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_a_browsers_slot_is_on_the_address_its_page_came_from(upload_server, http, transport):
    # The quick start's browser at http://<host>:<http_port>/ trusts no local CA and its page may reach only its
    # own origin: its links stay there, while apps on TCP get the HTTPS port (above).
    web = await WebSocketClient.connect(upload_server) if transport == "websocket" else BoshClient.to(upload_server)
    try:
        await web.login(upload_server.new_account())
        request = f"<request xmlns='{NS}' filename='page.txt' size='4' content-type='text/plain'/>"
        iq = f"<iq xmlns='{NS_CLIENT}' type='get' id='slot' to='{SERVICE}'>{request}</iq>"
        await (web.send(iq) if transport == "websocket" else web.post(iq))
        result = await web.inbox.wait_for(lambda el: el.get("id") == "slot", "the slot")
        put = result.find(f"{q(NS, 'slot')}/{q(NS, 'put')}").get("url")
        assert put.startswith(f"http://{HOST}:{upload_server.http_port}/upload/"), put
        async with http.put(put, data=b"page") as resp:
            assert resp.status == 201
    finally:
        await web.close()


async def test_uploaded_image_downloads_inline_with_safe_headers(client, http):
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    get = await upload(http, client, "holiday photo.png", data, "image/png")
    assert get.endswith("/holiday%20photo.png")
    async with http.get(get, headers={"Origin": "https://web.example"}) as resp:
        assert resp.status == 200 and await resp.read() == data
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert resp.headers["Content-Disposition"].startswith("inline;")
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "name, content_type, data",
    [
        ("page.html", "text/html", b"<html><script>alert(document.cookie)</script></html>"),
        ("logo.svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
        ("page.xhtml", "application/xhtml+xml", b"<html xmlns='http://www.w3.org/1999/xhtml'><script>alert(1)</script></html>"),
    ],
)
async def test_active_content_is_served_as_an_inert_attachment(client, http, name, content_type, data):
    get = await upload(http, client, name, data, content_type)
    async with http.get(get) as resp:
        assert await resp.read() == data
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_path_tricks_in_the_file_name_stay_inside_the_slot(client, http, upload_server):
    get = await upload(http, client, "../../../etc/passwd", b"not a password file", "text/plain")
    assert get.rsplit("/", 1)[1] == "passwd" and "/../" not in get
    async with http.get(get.rsplit("/", 2)[0] + "/..%2F..%2Fmeta.json") as resp:
        assert resp.status == 404
    assert not (upload_server.data_dir.parent / "etc").exists()


async def test_oversized_request_is_refused_with_the_limit(client):
    condition, error = await client.iq_error("get", f"<request xmlns='{NS}' filename='big.bin' size='{MAX_SIZE + 1}'/>", to=SERVICE)
    assert condition == "not-acceptable"
    assert error.findtext(f".//{q(NS, 'file-too-large')}/{q(NS, 'max-file-size')}") == str(MAX_SIZE)


async def test_upload_bigger_than_its_slot_is_refused_and_not_kept(client, http):
    put, get = await request_slot(client, "small.bin", 10)
    async with http.put(put, data=b"x" * 500) as resp:
        assert resp.status == 413
    async with http.get(get) as resp:
        assert resp.status == 404


async def test_slot_takes_one_upload_only(client, http):
    put, get = await request_slot(client, "once.txt", 4, "text/plain")
    async with http.put(put, data=b"once") as resp:
        assert resp.status == 201
    async with http.put(put, data=b"twice") as resp:
        assert resp.status == 409
    async with http.get(get) as resp:
        assert await resp.read() == b"once"


async def test_quota_counts_every_file_of_the_account(upload_server, session_for, http):
    client = await session_for(upload_server).login()
    for n in range(2):
        await upload(http, client, f"part{n}.bin", b"y" * MAX_SIZE, "application/octet-stream")
    condition, _ = await client.iq_error("get", f"<request xmlns='{NS}' filename='third.bin' size='{MAX_SIZE}'/>", to=SERVICE)
    assert condition == "resource-constraint"
    await request_slot(client, "fits.bin", QUOTA - 2 * MAX_SIZE)


async def test_cors_preflight_allows_put_from_other_origins(client, http):
    put, _ = await request_slot(client, "cors.bin", 3)
    headers = {"Origin": "https://web.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    async with http.options(put, headers=headers) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "PUT" in resp.headers["Access-Control-Allow-Methods"]
        assert "content-type" in resp.headers["Access-Control-Allow-Headers"].lower()


async def test_files_are_deleted_with_the_account(upload_server, session_for, http):
    client = await session_for(upload_server).login()
    get = await upload(http, client, "mine.txt", b"private", "text/plain")
    result = run_cli("user", "delete", client.bare, "--data-dir", str(upload_server.data_dir), "--config", str(upload_server.config_path))
    assert result.returncode == 0, result.stderr
    await client.disconnected
    async with http.get(get) as resp:
        assert resp.status == 404
