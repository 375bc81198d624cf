"""A server that carries only end-to-end encrypted chats between its own users (``e2ee.required``).

With the option on, a 1:1 message (type chat or normal) from a local user to a local user that has a
``<body/>`` but no end-to-end encrypted payload is bounced to its sender with ``policy-violation`` and a
text that says what to do: the plaintext never reaches the recipient, the offline store or the archive.
Encrypted payloads are OMEMO's ``<encrypted/>`` of either namespace (XEP-0384 0.3 as Conversations and Dino
speak it, and ``urn:xmpp:omemo:2``) and OpenPGP for XMPP's ``<openpgp/>`` (XEP-0373); their fallback
body passes with them. Messages without a body (chat states, receipts, markers) pass; so do group chat
messages, messages to other servers (the policy is about what this server stores and relays between its
own users) and error bounces.

The check runs on the sender's side (``pre-message``), before any delivery, offline storage or archiving.
"""

from __future__ import annotations

from sakari.config import declare
from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.xml import ns as NS
from sakari.xml.errors import StanzaError

REQUIRED = declare(
    "e2ee.required",
    False,
    "Bounce plaintext 1:1 messages between local users (a body without OMEMO or OpenPGP encryption) with an "
    "explanation; the e2ee_policy module must be enabled (it is by default). May be set per host.",
)
ENCRYPTED = frozenset({
    ("eu.siacs.conversations.axolotl", "encrypted"),  # OMEMO as deployed (XEP-0384 0.3)
    ("urn:xmpp:omemo:2", "encrypted"),  # OMEMO 0.8 and later
    ("urn:xmpp:openpgp:0", "openpgp"),  # XEP-0373
})
ONE_TO_ONE = frozenset({"chat", "normal"})
REFUSAL = (
    "This server carries only end-to-end encrypted chats between its users: turn on OMEMO encryption for this "
    "chat and send the message again."
)


def is_plaintext(event: StanzaEvent) -> bool:
    """A 1:1 message with a body and no end-to-end encrypted payload."""
    stanza = event.stanza
    if stanza.attrs.get("type", "normal") not in ONE_TO_ONE:
        return False
    has_body = False
    for child in stanza.elements():
        key = (child.ns, child.name)
        if key in ENCRYPTED:
            return False
        if key == (NS.CLIENT, "body"):
            has_body = True
    return has_body


def setup(mod: ModuleAPI) -> None:
    # The domains whose users must encrypt: hooks only where some do, so the option off costs nothing.
    strict = frozenset(d for d in mod.hosts.user_domains() if mod.option(REQUIRED, host=d))
    if not strict:
        return
    hosts = mod.hosts

    def bounce_plaintext(event: StanzaEvent) -> bool | None:
        to = event.to_jid
        if event.from_jid.domain not in strict or not to.local or not hosts.has_accounts(to.domain):
            return None
        if not is_plaintext(event):
            return None
        mod.router.reply_error(event, StanzaError("policy-violation", REFUSAL))
        return True

    mod.hook("pre-message/bare", bounce_plaintext, priority=100)
    mod.hook("pre-message/full", bounce_plaintext, priority=100)
