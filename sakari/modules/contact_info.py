"""XEP-0157 Contact Addresses: who to write to about abuse, security or support of this server."""

from __future__ import annotations

from sakari.config import Option, declare
from sakari.core.modules import ModuleAPI
from sakari.xml.element import Element

NS_DATA = "jabber:x:data"
FORM_TYPE = "http://jabber.org/network/serverinfo"

ADDRESSES: dict[str, Option[list[str]]] = {
    field: declare(f"contact_info.{field}", [], f"URIs (mailto:, xmpp:, https:) for {what}.")
    for field, what in (
        ("abuse", "reporting abuse"),
        ("admin", "the administrators"),
        ("feedback", "feedback"),
        ("sales", "sales"),
        ("security", "reporting security issues"),
        ("status", "service status"),
        ("support", "user support"),
    )
}


def setup(mod: ModuleAPI) -> None:
    addresses = {f"{field}-addresses": mod.option(opt) for field, opt in ADDRESSES.items()}
    if not any(addresses.values()):
        return

    def form() -> Element:
        x = Element("x", NS_DATA, {"type": "result"})
        x.add("field", attrs={"var": "FORM_TYPE", "type": "hidden"}).add("value", text=FORM_TYPE)
        for var, uris in sorted(addresses.items()):
            if uris:
                field = x.add("field", attrs={"var": var, "type": "list-multi"})
                for uri in uris:
                    field.add("value", text=uri)
        return x

    mod.add_extension(form)
