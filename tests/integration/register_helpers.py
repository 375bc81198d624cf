"""Helpers for the registration tests: invitations from the CLI, and in-band registration with slixmpp (XEP-0077)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId

from sakari_process import SakariServer, run_cli
from xmpp_harness import WAIT, error_condition, insecure_tls_context

NS_PARS = "urn:xmpp:pars:0"


def invite(server: SakariServer, *options: str) -> tuple[str, str]:
    """``sakari invite create``: the link and the xmpp: URI it printed."""
    result = run_cli("invite", "create", "--data-dir", str(server.data_dir), "--domain", server.domain, *options)
    assert result.returncode == 0, result.stderr
    page, uri = result.stdout.split()
    return page, uri


def token_of(uri: str) -> str:
    return uri.split("preauth=", 1)[1].split(";", 1)[0]


async def register_in_band(server: SakariServer, username: str, password: str, token: str | None) -> str | None:
    """Register with slixmpp's XEP-0077 plugin, sending the XEP-0401 token first; None on success, else the error
    condition of the step that failed."""
    xmpp = slixmpp.ClientXMPP(f"{username}@{server.domain}", password)
    xmpp.register_plugin("xep_0077")
    xmpp.ssl_context = insecure_tls_context()
    xmpp.enable_direct_tls, xmpp.enable_starttls, xmpp.enable_plaintext = False, True, False
    outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    async def on_register(form) -> None:
        try:
            if token is not None:
                # slixmpp holds back any iq but registration's before login: the token goes raw, its reply by id.
                reply: asyncio.Future[ET.Element] = asyncio.get_running_loop().create_future()
                xmpp.register_handler(Callback("preauth", MatcherId("preauth"), lambda iq: reply.set_result(iq.xml)))
                xmpp.send_raw(f"<iq type='set' id='preauth'><preauth xmlns='{NS_PARS}' token='{token}'/></iq>")
                answer = await asyncio.wait_for(reply, WAIT)
                if answer.get("type") != "result":
                    outcome.set_result(error_condition(answer))
                    xmpp.disconnect()
                    return
            iq = xmpp.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = username
            iq["register"]["password"] = password
            await iq.send(timeout=WAIT)
            outcome.set_result(None)
        except IqError as e:
            outcome.set_result(error_condition(e.iq.xml))
        xmpp.disconnect()

    xmpp.add_event_handler("register", on_register)
    xmpp.connect(server.host, server.c2s_port)
    try:
        return await asyncio.wait_for(outcome, WAIT)
    finally:
        xmpp.cancel_connection_attempt()
        if xmpp.transport is not None:
            xmpp.transport.abort()
