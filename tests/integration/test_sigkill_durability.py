"""The server killed with SIGKILL under chat load and started again on the same data: every message it had
acknowledged to its sender (a XEP-0198 ``<a h='…'/>`` covering it) reaches its recipient, live before the
kill, from offline storage after it, or from the recipient's archive (XEP-0313).

Three kinds of recipient, one per way a message is kept: one online and acknowledging, one whose session
hibernates in stream management (its connection cut, its messages in memory and in the archive), and one
with no session at all (offline storage)."""

from __future__ import annotations

import asyncio
import sqlite3
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

import pytest

from mam_helpers import NS_FORWARD, NS_MAM, mam_config
from raw_xmpp import RawStream
from sakari_process import Account, SakariServer
from sm_client import NS_SM, SmClient
from xmpp_harness import NS_CLIENT, WAIT, describe, q

pytestmark = pytest.mark.asyncio

SENDERS = 4
BURST = 25  # messages between two requests for an ack
KILL_AFTER = 600  # acknowledged messages, over all senders, before the kill
CONFIG = mam_config("\n[mam]\nmax_results = 1000\n\n[smacks]\nresume_timeout = 600.0\n", modules=["smacks"])


def body_text(el: ET.Element) -> str | None:
    return el.findtext(q(NS_CLIENT, "body")) if el.tag == q(NS_CLIENT, "message") else None


async def wait_for_log(server: SakariServer, text: str, start: int) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not any(text in line for line in server.log[start:]):
        assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in the server log"
        await asyncio.sleep(0.02)


async def online(server: SakariServer, account: Account, resume: bool) -> SmClient:
    client = await SmClient.login(server, account)
    await client.enable(resume=resume)
    await client.send("<presence/>")
    await client.next_nonza("r")  # after our own presence, which comes back
    await client.ack()
    return client


async def read_live(client: SmClient, got: set[str]) -> None:
    """A recipient that takes and acknowledges everything until the server is gone."""
    while True:
        el = await client.stream.next_element(timeout=60)
        if el is None:
            return
        if el.tag in (q(NS_CLIENT, n) for n in ("message", "presence", "iq")):
            client.handled += 1
            text = body_text(el)
            if text is not None:
                got.add(text)
        elif el.tag == q(NS_SM, "r"):
            await client.ack()


class Sender:
    """Sends bursts of numbered messages, each followed by <r/>, and keeps the highest h the server acknowledged."""

    def __init__(self, name: str, client: SmClient, recipients: list[str]) -> None:
        self.name = name
        self.client = client
        self.recipients = recipients
        self.sent: list[str] = []
        self.acked = 0  # stanzas since <enable/>: only messages are sent after it, so the first `acked` of `sent`

    async def run(self, total_acked, kill) -> None:
        stream = self.client.stream
        while True:
            burst = ""
            for _ in range(BURST):
                n = len(self.sent)
                body = f"{self.name}-{n}"
                self.sent.append(body)
                to = self.recipients[n % len(self.recipients)]
                burst += f"<message to={quoteattr(to)} type='chat' id='{body}'><body>{body}</body></message>"
            await stream.send(burst + f"<r xmlns='{NS_SM}'/>")
            while True:
                el = await stream.next_element(timeout=60)
                if el is None:
                    return  # killed
                if el.tag == q(NS_SM, "a"):
                    self.acked = int(el.get("h", "0"))
                    if total_acked() >= KILL_AFTER:
                        kill()  # at once: whatever the server is still writing is cut off
                        return
                    if self.acked == len(self.sent):
                        break


async def everything_for(server: SakariServer, account: Account) -> set[str]:
    """After the restart: the bodies that come from offline storage at login, and all of the account's archive."""
    stream = await RawStream.connect(server.c2s_port)
    got: set[str] = set()
    try:
        await stream.login_plain(account, "after")
        await stream.send("<presence/>")
        after = ""
        while True:
            rsm = f"<set xmlns='http://jabber.org/protocol/rsm'><max>1000</max>{after}</set>"
            await stream.send(f"<iq type='set' id='mam'><query xmlns='{NS_MAM}' queryid='all'>{rsm}</query></iq>")
            last_id = None
            while True:
                el = await stream.next_element()
                assert el is not None, "stream closed during the archive query"
                text = body_text(el)
                if text is not None:
                    got.add(text)
                result = el.find(q(NS_MAM, "result"))
                if result is not None:
                    last_id = result.get("id")
                    message = result.find(f"{q(NS_FORWARD, 'forwarded')}/{q(NS_CLIENT, 'message')}")
                    assert message is not None, describe(el)
                    got.add(message.findtext(q(NS_CLIENT, "body")) or "")
                if el.tag == q(NS_CLIENT, "iq") and el.get("id") == "mam":
                    assert el.get("type") == "result", describe(el)
                    fin = el.find(q(NS_MAM, "fin"))
                    assert fin is not None, describe(el)
                    break
            if fin.get("complete") == "true" or last_id is None:
                return got
            after = f"<after>{last_id}</after>"
    finally:
        stream.close()


async def test_every_acknowledged_message_survives_sigkill_under_load(make_server):
    server = make_server(CONFIG, name="sigkill-load", accounts=SENDERS + 3)
    live_account, sleeping_account, offline_account = (server.new_account() for _ in range(3))
    recipients = [live_account.jid, sleeping_account.jid, offline_account.jid]

    sleeping = await online(server, sleeping_account, resume=True)
    mark = len(server.log)
    sleeping.close()  # its session hibernates: what comes for it waits in memory, and in the archive
    await wait_for_log(server, "event=sm-detached", mark)

    live = await online(server, live_account, resume=False)
    live_got: set[str] = set()
    senders = []
    for i in range(SENDERS):
        client = await SmClient.login(server, server.new_account(), f"s{i}")
        await client.enable(resume=False)
        senders.append(Sender(f"s{i}", client, recipients))

    killed = asyncio.Event()

    def kill() -> None:
        if not killed.is_set():
            killed.set()
            server.kill()

    reader = asyncio.create_task(read_live(live, live_got))
    await asyncio.wait_for(
        asyncio.gather(*(s.run(lambda: sum(x.acked for x in senders), kill) for s in senders)), timeout=120
    )
    assert killed.is_set(), "the load ended before the kill"
    await asyncio.wait_for(reader, WAIT)
    for c in (*(s.client for s in senders), live):
        c.close()

    server.start()
    after = {
        account.jid: await everything_for(server, account)
        for account in (live_account, sleeping_account, offline_account)
    }
    lost = []
    for s in senders:
        for n, body in enumerate(s.sent[: s.acked]):
            to = s.recipients[n % len(s.recipients)]
            if body not in after[to] and not (to == live_account.jid and body in live_got):
                lost.append((body, to.split("@")[0]))
    acked = sum(s.acked for s in senders)
    assert acked >= KILL_AFTER
    assert not lost, f"{len(lost)} of {acked} acknowledged messages lost: {lost[:20]}"


async def test_no_acknowledgement_before_the_archive_has_the_message(make_server):
    """The archive writes in batches after delivery; a message to a hibernating session is nowhere else. While
    the database cannot be written (another process holds its write lock: a slow disk), the sender's <r/> is not
    answered, though the stream goes on; once the archive has the messages it is, and they survive a kill."""
    server = make_server(CONFIG, name="ack-after-archive", accounts=2)
    sleeper_account, sender_account = server.new_account(), server.new_account()
    sleeper = await online(server, sleeper_account, resume=True)
    mark = len(server.log)
    sleeper.close()
    await wait_for_log(server, "event=sm-detached", mark)
    sender = await SmClient.login(server, sender_account, "sender")
    await sender.enable(resume=False)
    to = quoteattr(sleeper_account.jid)
    # One message acknowledged first: what routing reads (both archives' preferences) is then cached, and
    # routing does not wait for the database below, as the archive's writes do.
    await sender.send(f"<message to={to} type='chat'><body>warm-up</body></message><r xmlns='{NS_SM}'/>")
    await sender.next_nonza("a")

    blocker = sqlite3.connect(server.data_dir / "sakari.sqlite", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # Sakari's archive writes now wait for this lock
        bodies = [f"held-{n}" for n in range(20)]
        await sender.send("".join(f"<message to={to} type='chat'><body>{b}</body></message>" for b in bodies))
        await sender.send(f"<r xmlns='{NS_SM}'/><iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
        while True:
            el = await sender.next()
            assert el.tag != q(NS_SM, "a"), "acknowledged before the archive could write the messages"
            if el.tag == q(NS_CLIENT, "iq") and el.get("id") == "ping":
                break  # the stream goes on meanwhile
        blocker.execute("ROLLBACK")
        ack = await sender.next_nonza("a")
        assert ack.get("h") == str(1 + len(bodies)), describe(ack)
    finally:
        blocker.close()

    server.kill()
    sender.close()
    server.start()
    assert set(bodies) <= await everything_for(server, sleeper_account)
