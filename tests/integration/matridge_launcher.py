"""Starts matridge (slidge's Matrix gateway) with the arguments given, in the bridge's own virtual environment.

Two changes to matridge 0.4.1 / slidge 0.4.2 before it starts, neither about the XMPP server:

- slidge fetches the gateway's avatar from the internet as it starts; the tests reach nothing beyond
  loopback, so the avatar is switched off (matridge has no option for it).
- slidge stores a room's JID localpart as the Matrix room id is spelt (``!jDeBhG…``) but looks rooms
  up by the localpart of the JID a client addresses, which every XMPP library and server lowercases
  (``!jdebhg…``): a room whose id has a capital letter (all of them) answers item-not-found to a
  join. JID localparts are case-insensitive, so the localpart is stored lowercased, which is what
  slidge compares it with.
"""

import sys

import matridge
import matridge.gateway
import matridge.group

matridge.gateway.Gateway.COMPONENT_AVATAR = None

_to_localpart = matridge.group.Bookmarks.legacy_id_to_jid_username


async def _lowercased_localpart(self, legacy_id: str) -> str:
    return (await _to_localpart(self, legacy_id)).lower()


matridge.group.Bookmarks.legacy_id_to_jid_username = _lowercased_localpart
sys.argv[0] = "matridge"
matridge.main()
