"""The local control socket: lets ``sakari user delete`` act through a running server.

Deleting an account from outside must also end its live sessions, or a
session still open could write data that a new account of the same name
would inherit. The socket lives in the data directory with mode 0600, so
only the user running Sakari can use it. One JSON request per connection,
one JSON answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sakari.errors import StartError

log = logging.getLogger("sakari.control")

SOCKET_NAME = "control.sock"
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve(directory: Path, handlers: dict[str, Handler]) -> asyncio.AbstractServer:
    path = directory / SOCKET_NAME
    if path.exists():
        if _answering(path):
            raise StartError(f"another Sakari is running on the data directory {directory}")
        path.unlink()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            handler = handlers.get(request.get("op"))
            answer = await handler(request) if handler else {"error": f"unknown operation {request.get('op')!r}"}
        except (ValueError, AttributeError) as e:
            answer = {"error": f"bad request: {e}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(client, path=str(path))
    finally:
        os.umask(old_umask)
    return server


def _answering(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def request(directory: Path, op: str, **args: Any) -> dict[str, Any] | None:
    """Ask the running server; None when no server runs on this data directory."""
    path = directory / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data) if data else {"error": "the server closed the control connection"}
