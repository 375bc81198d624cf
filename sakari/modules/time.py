"""XEP-0202 Entity Time: the server's clock, in UTC."""

from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.modules.util import utc_stamp
from sakari.xml.element import Element

NS = "urn:xmpp:time"


def entity_time(event: StanzaEvent) -> Element:
    el = Element("time", NS)
    el.add("tzo", text="+00:00")
    el.add("utc", text=utc_stamp())
    return el


def setup(mod: ModuleAPI) -> None:
    mod.add_feature(NS)
    mod.hook(f"iq-get/host/{NS}:time", entity_time)
