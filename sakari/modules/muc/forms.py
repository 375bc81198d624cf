"""XEP-0004 data forms of a room: muc#roomconfig (XEP-0045 §10.2, §15.5.3), muc#roominfo (§15.5.4),
voice requests (§8.6) and nick registration (§7.10)."""

from __future__ import annotations

from collections.abc import Iterable

from sakari.jid import JID, JIDError, parse_jid
from sakari.modules.muc.model import NS_DATA, RoomConfig
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

FORM_CONFIG = "http://jabber.org/protocol/muc#roomconfig"
FORM_INFO = "http://jabber.org/protocol/muc#roominfo"
FORM_REQUEST = "http://jabber.org/protocol/muc#request"
FORM_REGISTER = "http://jabber.org/protocol/muc#register"
ENCRYPTED_ONLY = "x-sakari#encrypted_only"  # not in the registry: a Sakari option, named as XEP-0068 allows
ROLE_OPTIONS = ("moderator", "participant", "visitor")
PM_OPTIONS = ("anyone", "participants", "moderators", "none")
TRUE = ("1", "true")


class Form:
    """A data form being built: fields with types, labels, values and options."""

    def __init__(self, form_type: str, type_: str = "form", title: str = "") -> None:
        self.el = Element("x", NS_DATA, {"type": type_})
        if title:
            self.el.add("title", text=title)
        self.field("FORM_TYPE", "hidden", "", [form_type])

    def field(
        self, var: str, type_: str, label: str, values: Iterable[str] = (), options: Iterable[str] = ()
    ) -> Element:
        attrs = {"var": var, "type": type_}
        if label:
            attrs["label"] = label
        f = self.el.add("field", attrs=attrs)
        for option in options:
            f.add("option", attrs={"label": option}).add("value", text=option)
        for value in values:
            f.add("value", text=value)
        return f

    def boolean(self, var: str, label: str, value: bool) -> None:
        self.field(var, "boolean", label, ["1" if value else "0"])


def read_form(x: Element, form_type: str) -> dict[str, list[str]]:
    """A submitted form's values by field; its FORM_TYPE, when given, must be ours."""
    values = {f.attrs.get("var", ""): [v.text for v in f.find_all("value")] for f in x.find_all("field")}
    given = values.pop("FORM_TYPE", [form_type])
    if given and given[0] != form_type:
        raise StanzaError("bad-request", f"expected a {form_type} form")
    return values


def config_form(config: RoomConfig, owners: list[JID], admins: list[JID], max_users: int) -> Element:
    form = Form(FORM_CONFIG, title="Room configuration")
    form.field("muc#roomconfig_roomname", "text-single", "Name", [config.name])
    form.field("muc#roomconfig_roomdesc", "text-single", "Description", [config.description])
    form.field("muc#roomconfig_lang", "text-single", "Language of the conversation", [config.lang])
    form.boolean("muc#roomconfig_persistentroom", "Persistent (kept when the last occupant leaves)", config.persistent)
    form.boolean("muc#roomconfig_publicroom", "Listed in the directory of rooms", config.public)
    form.boolean("muc#roomconfig_membersonly", "Only members may enter", config.members_only)
    form.boolean("muc#roomconfig_moderatedroom", "Moderated (only participants with voice may speak)", config.moderated)
    form.boolean("muc#roomconfig_passwordprotectedroom", "A password is needed to enter", bool(config.password))
    form.field("muc#roomconfig_roomsecret", "text-private", "Password", [config.password])
    form.field("muc#roomconfig_whois", "list-single", "Who may see occupants' real addresses",
               [config.whois], ("moderators", "anyone"))
    form.boolean("muc#roomconfig_changesubject", "Participants may change the subject", config.change_subject)
    form.boolean("muc#roomconfig_allowinvites", "Participants may invite others", config.allow_invites)
    form.field("muc#roomconfig_allowpm", "list-single", "Who may send private messages",
               [config.allow_pm], PM_OPTIONS)
    form.field("muc#roomconfig_maxusers", "text-single", f"Most occupants (at most {max_users})",
               [str(config.max_users or max_users)])
    form.field("muc#roomconfig_presencebroadcast", "list-multi", "Roles whose presence is broadcast",
               config.presence_broadcast, ROLE_OPTIONS)
    form.field("muc#roomconfig_getmemberlist", "list-multi", "Roles that may see the member list",
               config.get_member_list, ROLE_OPTIONS)
    form.boolean("muc#roomconfig_enablelogging", "Conversation is logged publicly", config.logging)
    form.field("muc#maxhistoryfetch", "text-single", "Messages of history sent on entering",
               [str(config.history_length)])
    form.boolean("muc#roomconfig_allowvoicerequests", "Visitors may ask for voice", config.voice_requests)
    form.boolean("muc#roomconfig_canchangenick", "Occupants may change their nick", config.change_nick)
    form.field("muc#roomconfig_roomowners", "jid-multi", "Owners", [o.text for o in owners])
    form.field("muc#roomconfig_roomadmins", "jid-multi", "Administrators", [a.text for a in admins])
    form.boolean(ENCRYPTED_ONLY, "Only end-to-end encrypted messages", config.encrypted_only)
    return form.el


def _bool(values: list[str], var: str) -> bool:
    if not values or values[0] not in ("0", "1", "true", "false"):
        raise StanzaError("not-acceptable", f"{var} must be a boolean")
    return values[0] in TRUE


def _int(values: list[str], var: str, low: int, high: int) -> int:
    try:
        value = int(values[0]) if values else -1
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise StanzaError("not-acceptable", f"{var} must be a number from {low} to {high}")
    return value


def _choice(values: list[str], var: str, choices: tuple[str, ...]) -> str:
    if len(values) != 1 or values[0] not in choices:
        raise StanzaError("not-acceptable", f"{var} must be one of {', '.join(choices)}")
    return values[0]


def _roles(values: list[str], var: str) -> list[str]:
    if any(v not in ROLE_OPTIONS for v in values):
        raise StanzaError("not-acceptable", f"{var} takes roles: {', '.join(ROLE_OPTIONS)}")
    return sorted(set(values), key=ROLE_OPTIONS.index)


def _jids(values: list[str], var: str) -> list[JID]:
    try:
        return [parse_jid(v).bare for v in values if v]
    except JIDError:
        raise StanzaError("not-acceptable", f"{var} takes addresses") from None


_BOOLEANS = {
    "muc#roomconfig_persistentroom": "persistent",
    "muc#roomconfig_publicroom": "public",
    "muc#roomconfig_membersonly": "members_only",
    "muc#roomconfig_moderatedroom": "moderated",
    "muc#roomconfig_changesubject": "change_subject",
    "muc#roomconfig_allowinvites": "allow_invites",
    "muc#roomconfig_enablelogging": "logging",
    "muc#roomconfig_allowvoicerequests": "voice_requests",
    "muc#roomconfig_canchangenick": "change_nick",
    ENCRYPTED_ONLY: "encrypted_only",
}
_TEXTS = {"muc#roomconfig_roomname": "name", "muc#roomconfig_roomdesc": "description", "muc#roomconfig_lang": "lang"}


def apply_config(
    current: RoomConfig, submitted: dict[str, list[str]], max_users: int, max_history: int
) -> tuple[RoomConfig, list[JID] | None, list[JID] | None]:
    """The configuration a submitted form asks for, fields left out unchanged; with the owner and admin
    lists when the form sets them. Raises not-acceptable for a value out of range."""
    new = RoomConfig.from_json(current.to_json())
    for var, values in submitted.items():
        if var in _BOOLEANS:
            setattr(new, _BOOLEANS[var], _bool(values, var))
        elif var in _TEXTS:
            setattr(new, _TEXTS[var], values[0] if values else "")
        elif var == "muc#roomconfig_roomsecret":
            new.password = values[0] if values else ""
        elif var == "muc#roomconfig_whois":
            new.whois = _choice(values, var, ("moderators", "anyone"))
        elif var == "muc#roomconfig_allowpm":
            new.allow_pm = _choice(values, var, PM_OPTIONS)
        elif var == "muc#roomconfig_maxusers":
            new.max_users = _int(values, var, 1, max_users) if values and values[0] not in ("", "none") else 0
        elif var == "muc#roomconfig_presencebroadcast":
            new.presence_broadcast = _roles(values, var)
        elif var == "muc#roomconfig_getmemberlist":
            new.get_member_list = _roles(values, var)
        elif var in ("muc#maxhistoryfetch", "muc#roomconfig_historylength"):
            new.history_length = _int(values, var, 0, max_history)
    if "muc#roomconfig_passwordprotectedroom" in submitted:
        if not _bool(submitted["muc#roomconfig_passwordprotectedroom"], "muc#roomconfig_passwordprotectedroom"):
            new.password = ""
        elif not new.password:
            raise StanzaError("not-acceptable", "a password-protected room needs muc#roomconfig_roomsecret")
    owners = _jids(submitted["muc#roomconfig_roomowners"], "roomowners") if "muc#roomconfig_roomowners" in submitted else None
    admins = _jids(submitted["muc#roomconfig_roomadmins"], "roomadmins") if "muc#roomconfig_roomadmins" in submitted else None
    return new, owners, admins


def info_form(config: RoomConfig, occupants: int, subject: str, avatar_hash: str = "") -> Element:
    """muc#roominfo, appended to a room's disco#info (XEP-0128); with the avatar's hash when it has one."""
    form = Form(FORM_INFO, type_="result")
    form.field("muc#roomconfig_roomname", "text-single", "Name", [config.name])
    form.field("muc#roominfo_description", "text-single", "Description", [config.description])
    form.field("muc#roominfo_lang", "text-single", "Language", [config.lang])
    form.field("muc#roominfo_subject", "text-single", "Subject", [subject])
    form.field("muc#roominfo_occupants", "text-single", "Occupants", [str(occupants)])
    form.boolean("muc#roomconfig_changesubject", "Participants may change the subject", config.change_subject)
    form.boolean("muc#roomconfig_allowinvites", "Participants may invite others", config.allow_invites)
    form.field("muc#roomconfig_allowpm", "list-single", "Who may send private messages", [config.allow_pm])
    form.field("muc#maxhistoryfetch", "text-single", "Messages of history sent on entering",
               [str(config.history_length)])
    if avatar_hash:
        form.field("muc#roominfo_avatarhash", "text-multi", "Avatar hash", [avatar_hash])
    return form.el


def voice_request_form(nick: str, jid: JID | None) -> Element:
    """XEP-0045 §8.6: what moderators get when a visitor asks for voice."""
    form = Form(FORM_REQUEST, title="Voice request")
    form.field("muc#role", "list-single", "Requested role", ["participant"])
    if jid is not None:
        form.field("muc#jid", "jid-single", "User ID", [jid.text])
    form.field("muc#roomnick", "text-single", "Room nickname", [nick])
    form.boolean("muc#request_allow", "Grant voice to this person?", False)
    return form.el


def register_form(nick: str) -> Element:
    """XEP-0045 §7.10: the form to reserve a nick in a room."""
    form = Form(FORM_REGISTER, title="Reserve a nick in this room")
    f = form.field("muc#register_roomnick", "text-single", "Nick", [nick] if nick else [])
    f.add("required")
    return form.el
