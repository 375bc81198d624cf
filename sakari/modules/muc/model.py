"""XEP-0045 roles, affiliations and room configuration: plain data and the rules between them (sans-IO).

The privilege tables follow XEP-0045 §5.1 (roles) and §5.2 (affiliations);
where the XEP leaves a choice, Sakari does what Prosody does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sakari.jid import JID
from sakari.xml.element import Element

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = f"{NS_MUC}#user"
NS_ADMIN = f"{NS_MUC}#admin"
NS_OWNER = f"{NS_MUC}#owner"
NS_REQUEST = f"{NS_MUC}#request"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
NS_CONFERENCE = "jabber:x:conference"  # XEP-0249 direct invitations
NS_SID = "urn:xmpp:sid:0"  # XEP-0359
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"  # XEP-0421
NS_DELAY = "urn:xmpp:delay"
NS_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"  # XEP-0410
NS_STABLE_ID = "http://jabber.org/protocol/muc#stable_id"
NS_VCARD = "vcard-temp"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_RETRACT = "urn:xmpp:message-retract:1"  # XEP-0424
NS_MODERATE = "urn:xmpp:message-moderate:1"  # XEP-0425
NS_HATS = "urn:xmpp:hats:0"  # XEP-0317

ROLES = ("moderator", "participant", "visitor", "none")
AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLE_RANK = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}
AFFILIATION_RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}

# XEP-0045 §7.2 status codes Sakari sends.
SELF = "110"
NON_ANONYMOUS = "100"
LOGGED = "170"
CREATED = "201"
NICK_MODIFIED = "210"
BANNED = "301"
NEW_NICK = "303"
KICKED = "307"
REMOVED_AFFILIATION = "321"
REMOVED_MEMBERS_ONLY = "322"
REMOVED_SHUTDOWN = "332"
REMOVED_ERROR = "333"


@dataclass(slots=True)
class RoomConfig:
    """What an owner sets with the muc#roomconfig form (XEP-0045 §10.2)."""

    name: str = ""
    description: str = ""
    lang: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password: str = ""  # non-empty: password-protected
    whois: str = "moderators"  # "anyone": non-anonymous
    change_subject: bool = False  # participants may change the subject
    allow_invites: bool = False  # participants may invite (moderators always may)
    allow_pm: str = "anyone"  # "anyone", "participants", "moderators", "none"
    max_users: int = 0  # 0: the service's limit
    presence_broadcast: list[str] = field(default_factory=lambda: ["moderator", "participant", "visitor"])
    get_member_list: list[str] = field(default_factory=lambda: ["moderator", "participant", "visitor"])
    logging: bool = False  # the room keeps a public log (status 170)
    history_length: int = 20  # messages kept for newcomers' legacy history
    voice_requests: bool = True
    change_nick: bool = True
    encrypted_only: bool = False  # refuse plaintext bodies (OMEMO rooms)

    @property
    def non_anonymous(self) -> bool:
        return self.whois == "anyone"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoomConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(slots=True)
class Affiliation:
    """A bare JID's standing in a room, kept across visits (and restarts, for persistent rooms)."""

    affiliation: str
    nick: str = ""  # the reserved (registered) nick, if any
    reason: str = ""

    def dump(self) -> bytes:
        return json.dumps({"affiliation": self.affiliation, "nick": self.nick, "reason": self.reason}).encode()

    @classmethod
    def load(cls, data: bytes) -> Affiliation:
        raw = json.loads(data)
        return cls(raw["affiliation"], raw.get("nick", ""), raw.get("reason", ""))


@dataclass(slots=True, eq=False)
class Occupant:
    """Someone in the room under a nick: one bare JID, one or more of its resources (XEP-0045 §7.2.7)."""

    nick: str
    bare: JID
    role: str
    occupant_id: str
    sessions: dict[JID, Element] = field(default_factory=dict)  # real full JID → its last presence (payload only)
    last_jid: JID | None = None  # the resource that spoke last, shown as the occupant's JID

    @property
    def jid(self) -> JID:
        assert self.last_jid is not None
        return self.last_jid


def default_role(affiliation: str, moderated: bool) -> str:
    """XEP-0045 §5.1.2: the role an occupant gets on entering."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if affiliation == "member" or not moderated:
        return "participant"
    return "visitor"


def can_change_affiliation(actor: str, target_now: str, target_new: str) -> bool:
    """XEP-0045 §5.2.2: owners change anyone's; admins only below admin, and only to below admin."""
    if actor == "owner":
        return True
    if actor == "admin":
        return AFFILIATION_RANK[target_now] < 2 and AFFILIATION_RANK[target_new] < 2
    return False


def can_change_role(actor_role: str, actor_aff: str, target_aff: str, target_role: str, new_role: str) -> bool:
    """XEP-0045 §8 and §9.6-9.7: moderators kick and (de)voice those of no higher affiliation than
    themselves, never admins or owners; only admins and owners grant or take the moderator role."""
    if actor_role != "moderator":
        return False
    if AFFILIATION_RANK[target_aff] >= 2 and new_role != "moderator":
        return False  # an admin or owner is always a moderator while in the room
    if AFFILIATION_RANK[target_aff] > AFFILIATION_RANK[actor_aff]:
        return False
    if "moderator" in (new_role, target_role) and AFFILIATION_RANK[actor_aff] < 2:
        return False
    return True


def may_send_pm(allow_pm: str, role: str) -> bool:
    if allow_pm == "anyone":
        return True
    if allow_pm == "participants":
        return ROLE_RANK[role] >= ROLE_RANK["participant"]
    if allow_pm == "moderators":
        return role == "moderator"
    return False
