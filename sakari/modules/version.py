"""XEP-0092 Software Version. Off by default: naming the software helps attackers more than users."""

from sakari import __version__
from sakari.core.events import StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.xml.element import Element

NS = "jabber:iq:version"


def version(event: StanzaEvent) -> Element:
    query = Element("query", NS)
    query.add("name", text="Sakari")
    query.add("version", text=__version__)
    return query


def setup(mod: ModuleAPI) -> None:
    mod.add_feature(NS)
    mod.hook(f"iq-get/host/{NS}:query", version)
