"""XEP-0199 XMPP Ping: answer pings to the server and to one's own account.

The server's own pings to idle clients live in the server core (keepalive).
"""

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI

NS = "urn:xmpp:ping"


def pong(event: StanzaEvent) -> bool:
    return True


def setup(mod: ModuleAPI) -> None:
    mod.add_feature(NS)
    mod.hook(f"iq-get/host/{NS}:ping", pong)
    mod.hook(f"iq-get/self/{NS}:ping", pong)
