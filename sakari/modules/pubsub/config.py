"""Node configuration (XEP-0060 §8.2), its data form, and publish-options preconditions (§7.1.5).

Only the options clients rely on are kept; a form naming another option is
accepted where the XEP lets a service ignore it, and refused where a client
asked for it as a precondition it cannot be sure of.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sakari.modules.pubsub.protocol import NS_DATA, PubsubError, form_fields
from sakari.xml.element import Element
from sakari.xml.errors import StanzaError

FORM_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
FORM_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("authorize", "open", "presence", "roster", "whitelist")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
MAX = "max"  # pubsub#max_items: as many as the service allows (XEP-0060 §7.1.5, XEP-0402)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    access_model: str = "presence"  # XEP-0163 §4.3: PEP nodes default to presence
    max_items: int | str = 1  # an int, or MAX
    persist_items: bool = True
    send_last_published_item: str = "on_sub_and_presence"
    notify_retract: bool = True
    notify_delete: bool = True
    deliver_payloads: bool = True
    publish_model: str = "publishers"  # who besides owners may publish: publishers, subscribers too, anyone
    title: str = ""
    roster_groups_allowed: tuple[str, ...] = field(default=())

    def item_limit(self, server_max: int) -> int:
        """How many items the node keeps: its max_items, never beyond the server's limit."""
        if self.max_items == MAX:
            return server_max
        return min(int(self.max_items), server_max)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "roster_groups_allowed" in known:
            known["roster_groups_allowed"] = tuple(known["roster_groups_allowed"])
        return cls(**known)


# pubsub#var → (attribute, parser from the form's values); the parser raises ValueError on bad input.
def _bool(values: list[str]) -> bool:
    text = values[0] if values else ""
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


def _one_of(choices: tuple[str, ...]) -> Any:
    def parse(values: list[str]) -> str:
        if not values or values[0] not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return values[0]

    return parse


def _max_items(values: list[str]) -> int | str:
    text = values[0] if values else ""
    if text == MAX:
        return MAX
    number = int(text)
    if number < 0:
        raise ValueError("max_items cannot be negative")
    return number


_FIELDS: dict[str, tuple[str, Any]] = {
    "pubsub#access_model": ("access_model", _one_of(ACCESS_MODELS)),
    "pubsub#max_items": ("max_items", _max_items),
    "pubsub#persist_items": ("persist_items", _bool),
    "pubsub#send_last_published_item": ("send_last_published_item", _one_of(SEND_LAST)),
    "pubsub#notify_retract": ("notify_retract", _bool),
    "pubsub#notify_delete": ("notify_delete", _bool),
    "pubsub#deliver_payloads": ("deliver_payloads", _bool),
    "pubsub#publish_model": ("publish_model", _one_of(PUBLISH_MODELS)),
    "pubsub#title": ("title", lambda values: values[0] if values else ""),
    "pubsub#roster_groups_allowed": ("roster_groups_allowed", tuple),
}
# Options a service may ignore in a configuration form without betraying the client (XEP-0060 §8.2.4).
_IGNORED = {
    "pubsub#deliver_notifications", "pubsub#notification_type", "pubsub#type",
    "pubsub#max_payload_size", "pubsub#presence_based_delivery", "pubsub#notify_config", "pubsub#notify_sub",
    "pubsub#itemreply", "pubsub#description", "pubsub#item_expire", "pubsub#purge_offline",
}


def _parsed(form: Element, form_type: str) -> dict[str, Any]:
    """The known options a form sets, parsed; bad values and foreign form types are bad requests."""
    fields = form_fields(form)
    if fields.pop("FORM_TYPE", [form_type]) != [form_type]:
        raise StanzaError("bad-request", f"the form's FORM_TYPE is not {form_type}")
    out: dict[str, Any] = {}
    for var, values in fields.items():
        if var in _FIELDS:
            attr, parse = _FIELDS[var]
            try:
                out[attr] = parse(values)
            except ValueError as e:
                raise StanzaError("not-acceptable", f"{var}: {e}") from None
        elif var not in _IGNORED:
            raise StanzaError("not-acceptable", f"{var} is not supported")
    return out


def configure(config: NodeConfig, form: Element) -> NodeConfig:
    """The configuration after a node_config form is submitted (§8.2.5)."""
    return replace(config, **_parsed(form, FORM_NODE_CONFIG))


def publish_options(form: Element | None) -> dict[str, Any]:
    """The preconditions of a publish (§7.1.5): option attribute → required value."""
    if form is None:
        return {}
    fields = form_fields(form)
    if fields.get("FORM_TYPE") != [FORM_PUBLISH_OPTIONS]:
        raise StanzaError("bad-request", f"publish-options need FORM_TYPE {FORM_PUBLISH_OPTIONS}")
    try:
        return _parsed(form, FORM_PUBLISH_OPTIONS)
    except StanzaError as e:
        # An option the service does not know cannot be met (§7.1.5: precondition-not-met).
        raise PubsubError("conflict", "precondition-not-met", e.text) from None


def check_preconditions(config: NodeConfig, wanted: dict[str, Any]) -> None:
    """An existing node must already have every option the publisher requires (§7.1.5)."""
    for attr, value in wanted.items():
        if getattr(config, attr) != value:
            raise PubsubError("conflict", "precondition-not-met", f"the node's {attr} is not {value}")


def check_access_model(config: NodeConfig, supported: tuple[str, ...]) -> NodeConfig:
    """A service offers the access models that make sense for it (PEP has rosters, a pubsub service has not)."""
    if config.access_model not in supported:
        raise PubsubError("not-acceptable", "unsupported-access-model", f"access models here: {', '.join(supported)}")
    return config


def config_form(config: NodeConfig, form_type: str = FORM_NODE_CONFIG) -> Element:
    """The node's configuration as a form (§8.2.1), or as the result of a defaults request."""
    form = Element("x", NS_DATA, {"type": "form"})
    _field(form, "FORM_TYPE", "hidden", [form_type])
    _field(form, "pubsub#access_model", "list-single", [config.access_model], ACCESS_MODELS)
    _field(form, "pubsub#max_items", "text-single", [str(config.max_items)])
    _field(form, "pubsub#persist_items", "boolean", [_flag(config.persist_items)])
    _field(form, "pubsub#send_last_published_item", "list-single", [config.send_last_published_item], SEND_LAST)
    _field(form, "pubsub#notify_retract", "boolean", [_flag(config.notify_retract)])
    _field(form, "pubsub#notify_delete", "boolean", [_flag(config.notify_delete)])
    _field(form, "pubsub#deliver_payloads", "boolean", [_flag(config.deliver_payloads)])
    _field(form, "pubsub#publish_model", "list-single", [config.publish_model], PUBLISH_MODELS)
    _field(form, "pubsub#title", "text-single", [config.title])
    _field(form, "pubsub#roster_groups_allowed", "list-multi", list(config.roster_groups_allowed))
    return form


def meta_data_form(config: NodeConfig, owners: list[str]) -> Element:
    """disco#info of a node carries its meta-data (§5.4)."""
    form = Element("x", NS_DATA, {"type": "result"})
    _field(form, "FORM_TYPE", "hidden", ["http://jabber.org/protocol/pubsub#meta-data"])
    _field(form, "pubsub#access_model", "list-single", [config.access_model])
    _field(form, "pubsub#owner", "jid-multi", owners)
    if config.title:
        _field(form, "pubsub#title", "text-single", [config.title])
    return form


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _field(form: Element, var: str, type_: str, values: list[str], options: tuple[str, ...] = ()) -> None:
    field_el = form.add("field", attrs={"var": var, "type": type_})
    for option in options:
        field_el.add("option").add("value", text=option)
    for value in values:
        field_el.add("value", text=value)
