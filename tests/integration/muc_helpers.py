"""Shared by the group chat tests: a configuration with the muc module enabled, and XEP-0045 names."""

from sakari.settings import DEFAULT_MODULES

MUC = "http://jabber.org/protocol/muc"
MUC_USER = f"{MUC}#user"
MUC_ADMIN = f"{MUC}#admin"
MUC_OWNER = f"{MUC}#owner"
SERVICE = "conference.localhost"


def muc_config(extra: str = "") -> str:
    """A server configuration with group chat on (it is not in the default module list yet), plus ``extra``
    lines of the [muc] table."""
    modules = ", ".join(f'"{m}"' for m in [*DEFAULT_MODULES, "muc"] if m != "muc" or "muc" not in DEFAULT_MODULES)
    return f"[modules]\nenabled = [{modules}]\n\n[muc]\n{extra}\n"
