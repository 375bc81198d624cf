"""OMEMO (XEP-0384) end to end through Sakari's PEP, with slixmpp-omemo, a real OMEMO implementation.

Both protocol versions publish their device lists and bundles (legacy
eu.siacs.conversations.axolotl and urn:xmpp:omemo:2) with open access;
contacts and strangers fetch them, build sessions and exchange messages
that decrypt on the other side. The server's database never sees the text.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any

import pytest
from omemo.storage import Just, Maybe, Nothing, Storage
from slixmpp import JID
from slixmpp.plugins import register_plugin
from slixmpp_omemo import XEP_0384

from pep_helpers import NS_PUBSUB, is_event, items, pep_config
from xmpp_harness import WAIT, befriend, q

pytestmark = pytest.mark.asyncio

OLD_DEVICES = "eu.siacs.conversations.axolotl.devicelist"
NEW_DEVICES = "urn:xmpp:omemo:2:devices"
NEW_BUNDLES = "urn:xmpp:omemo:2:bundles"


class MemoryStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}

    async def _load(self, key: str) -> Maybe[Any]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: Any) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class OmemoPlugin(XEP_0384):
    """Blind trust before verification (BTBV), state in memory: a test client's OMEMO."""

    def plugin_init(self) -> None:
        self._store = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self) -> Storage:
        return self._store

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(self, blindly_trusted, identifier) -> None:
        pass

    async def _prompt_manual_trust(self, manually_trusted, identifier) -> None:
        raise AssertionError("blind trust should have decided every device")


register_plugin(OmemoPlugin)


@pytest.fixture(scope="module")
def omemo_server(spawn_server):
    with spawn_server("omemo-server", pep_config(), accounts=10) as srv:
        yield srv


async def omemo_client(session):
    """Logged in, OMEMO ready (device lists and bundles published), then online with +notify caps."""
    client = await session.login(presence=False)
    xmpp = client.xmpp
    xmpp.use_message_ids = True
    ready = asyncio.get_running_loop().create_future()
    xmpp.add_event_handler("omemo_initialized", lambda *_: ready.done() or ready.set_result(True))
    for plugin in ("xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0280", "xep_0334"):
        xmpp.register_plugin(plugin)
    xmpp.register_plugin("xep_0384", module=sys.modules[__name__])
    await xmpp.plugin["xep_0384"].get_session_manager()
    await asyncio.wait_for(ready, WAIT * 3)
    await xmpp.plugin["xep_0115"].update_caps(broadcast=False)
    xmpp.send_presence()
    return client


def decrypted_messages(client) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    plugin = client.xmpp.plugin["xep_0384"]

    async def on_message(stanza) -> None:
        if plugin.is_encrypted(stanza):
            message, _device = await plugin.decrypt_message(stanza)
            await queue.put((message["body"], stanza))

    client.xmpp.add_event_handler("message", on_message)
    return queue


async def send_encrypted(sender, recipient_bare: str, text: str) -> None:
    plugin = sender.xmpp.plugin["xep_0384"]
    message = sender.xmpp.make_message(mto=recipient_bare, mtype="chat")
    message["body"] = text
    encrypted, errors = await plugin.encrypt_message(message, JID(recipient_bare))
    assert encrypted is not None, f"nothing to send; errors: {errors}"
    assert not errors, f"encryption errors: {errors}"
    encrypted.send()


async def exchange(a, b) -> list[str]:
    inbox_a, inbox_b = decrypted_messages(a), decrypted_messages(b)
    secrets_sent = [f"omemo-secret-{secrets.token_hex(8)}" for _ in range(2)]
    await send_encrypted(a, b.bare, secrets_sent[0])
    body, stanza = await asyncio.wait_for(inbox_b.get(), WAIT * 3)
    assert body == secrets_sent[0]
    assert secrets_sent[0] not in str(stanza), "the message crossed the server in the clear"
    await send_encrypted(b, a.bare, secrets_sent[1])
    body, _ = await asyncio.wait_for(inbox_a.get(), WAIT * 3)
    assert body == secrets_sent[1]
    return secrets_sent


async def learn_devices(client, other) -> None:
    """Wait until the device list PEP delivered has reached the client's OMEMO library (it processes events in tasks)."""
    manager = await client.xmpp.plugin["xep_0384"].get_session_manager()
    await client.expect(is_event(OLD_DEVICES, sender=other.bare))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await manager.get_device_information(other.bare):
        assert loop.time() < deadline, f"{client.label} never learned {other.bare}'s devices"
        await asyncio.sleep(0.02)


def database_holds(server, needle: str) -> bool:
    return any(needle.encode() in path.read_bytes() for path in server.data_dir.rglob("*") if path.is_file())


async def test_contacts_exchange_omemo_messages_and_the_server_keeps_no_plaintext(omemo_server, session_for):
    session = session_for(omemo_server)
    a, b = await omemo_client(session), await omemo_client(session)
    await befriend(a, b)
    await learn_devices(a, b)  # from PEP notifications, as contacts with mutual subscriptions
    await learn_devices(b, a)
    sent = await exchange(a, b)
    assert database_holds(omemo_server, OLD_DEVICES), "the device lists are not in the database"
    for text in sent:
        assert not database_holds(omemo_server, text), "plaintext of an OMEMO message is in the data dir"


async def test_strangers_fetch_device_lists_and_bundles_of_both_versions(omemo_server, session_for):
    session = session_for(omemo_server)
    a, b = await omemo_client(session), await omemo_client(session)
    old = await items(b, a.bare, OLD_DEVICES)
    device_ids = [d.get("id") for d in old[0].iter("{eu.siacs.conversations.axolotl}device")]
    assert len(device_ids) == 1
    bundle = await items(b, a.bare, f"eu.siacs.conversations.axolotl.bundles:{device_ids[0]}")
    assert bundle[0].find("{eu.siacs.conversations.axolotl}bundle") is not None
    new = await items(b, a.bare, NEW_DEVICES)
    new_ids = [d.get("id") for d in new[0].iter("{urn:xmpp:omemo:2}device")]
    assert new_ids == device_ids
    by_id = await items(b, a.bare, NEW_BUNDLES, inner=f"<item id='{new_ids[0]}'/>")
    assert [i.get("id") for i in by_id] == new_ids and by_id[0].find(q("urn:xmpp:omemo:2", "bundle")) is not None
    await exchange(a, b)  # strangers too (as in a room with real JIDs)


async def test_omemo_nodes_are_published_with_open_access(omemo_server, session_for):
    session = session_for(omemo_server)
    a = await omemo_client(session)
    for node in (OLD_DEVICES, NEW_DEVICES, NEW_BUNDLES):
        config = await a.iq("get", f"<pubsub xmlns='{NS_PUBSUB}#owner'><configure node='{node}'/></pubsub>")
        values = {f.get("var"): [v.text for v in f.findall(q("jabber:x:data", "value"))]
                  for f in config.iter(q("jabber:x:data", "field"))}
        assert values["pubsub#access_model"] == ["open"], node
