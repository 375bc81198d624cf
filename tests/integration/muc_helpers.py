"""Shared by the group chat tests: a configuration with the muc module enabled, and XEP-0045 names."""

from sakari.settings import DEFAULT_MODULES

MUC = "http://jabber.org/protocol/muc"
MUC_USER = f"{MUC}#user"
MUC_ADMIN = f"{MUC}#admin"
MUC_OWNER = f"{MUC}#owner"
SERVICE = "conference.localhost"


def muc_config(extra: str = "") -> str:
    """A server configuration with group chat on (whether or not the default module list has it), plus
    ``extra`` lines of the [muc] table."""
    modules = ", ".join(f'"{m}"' for m in dict.fromkeys([*DEFAULT_MODULES, "muc"]))
    return f"[modules]\nenabled = [{modules}]\n\n[muc]\n{extra}\n"


async def with_muc(client):
    """Give a logged-in harness client slixmpp's XEP-0045 plugin (``client.muc``)."""
    client.xmpp.register_plugin("xep_0045")
    client.muc = client.xmpp.plugin["xep_0045"]
    return client


def x_user(el):
    """The muc#user payload of a stanza (ElementTree), or None."""
    return el.find(f"{{{MUC_USER}}}x")


def status_codes(el) -> set[str]:
    x = x_user(el)
    return set() if x is None else {s.get("code") for s in x.findall(f"{{{MUC_USER}}}status")}


def item_of(el):
    x = x_user(el)
    return None if x is None else x.find(f"{{{MUC_USER}}}item")


def is_room_presence(occupant: str, type: str | None = "available", code: str | None = None):
    """A presence from room/nick (type None: any), with a status code when given."""

    def pred(el) -> bool:
        return (
            el.tag == "{jabber:client}presence"
            and el.get("from") == occupant
            and (type is None or el.get("type", "available") == type)
            and (code is None or code in status_codes(el))
        )

    pred.__doc__ = f"room presence from={occupant!r} type={type!r} code={code!r}"
    return pred


def is_groupchat(sender: str, body: str | None = None):
    def pred(el) -> bool:
        b = el.find("{jabber:client}body")
        return (
            el.tag == "{jabber:client}message"
            and el.get("type") == "groupchat"
            and el.get("from") == sender
            and (body is None or (b is not None and b.text == body))
        )

    pred.__doc__ = f"groupchat from={sender!r} body={body!r}"
    return pred
