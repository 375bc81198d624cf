"""The frame of the invitation and account pages: plain HTML with its style inline, nothing from elsewhere.

Pages carry secrets in their address (an invitation's token) or behind a
session cookie, so no page sends a Referer, none may be framed, none is
cached, and forms post only to this server.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STYLE = """
body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1d2733}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}
.qr{text-align:center;margin:1rem 0}.qr svg{max-width:100%;height:auto}
form{display:grid;gap:.6rem;max-width:24rem}label{display:grid;gap:.2rem}
input{font-size:1rem;padding:.5rem;border:1px solid #9aa5b1;border-radius:.3rem}
button,.button{font-size:1rem;padding:.6rem 1rem;border:0;border-radius:.3rem;background:#2b6cb0;color:#fff;
text-decoration:none;display:inline-block;cursor:pointer}
.danger{background:#c53030}.error{color:#c53030;font-weight:600}.note{color:#52606d}
table{border-collapse:collapse}td,th{padding:.3rem .8rem .3rem 0;text-align:left}
"""


def page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A whole page; ``body`` is HTML whose variable parts the caller escaped."""
    text = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status, headers={**HEADERS, **(headers or {})})


def error_line(message: str) -> str:
    return f"<p class='error' role='alert'>{escape(message)}</p>" if message else ""
