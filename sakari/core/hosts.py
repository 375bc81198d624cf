"""The table of hosts: what each domain is to this server.

A domain is one of: accounts of local users (a virtual host), a local
service that modules provide (group chat, pubsub, upload…), an external
component (XEP-0114), or, when the table does not know it, remote. The
router looks a stanza's domain up here once; disco#items of a user domain
lists the services and components with their names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sakari.jid import prep_domain

ServiceHandler = Callable[[Any], Awaitable[Any]]  # a StanzaEvent in; see Router: None means "not handled"
ComponentOutlet = Callable[[Any], None]  # an Element out, to the component's stream


class HostKind(Enum):
    USERS = "users"
    SERVICE = "service"
    COMPONENT = "component"


@dataclass(slots=True)
class Host:
    domain: str
    kind: HostKind
    name: str = ""
    identities: set[tuple[str, str, str]] = field(default_factory=set)  # (category, type, name), XEP-0030
    features: set[str] = field(default_factory=set)
    handler: ServiceHandler | None = None  # a service's receiver of stanzas
    outlet: ComponentOutlet | None = None  # a component's connected stream; None while it is not connected
    options: dict[str, Any] = field(default_factory=dict)  # per-host overrides of option keys


class Hosts:
    def __init__(self) -> None:
        self.by_domain: dict[str, Host] = {}  # read by the router once per stanza
        self._components = False

    def _add(self, host: Host) -> Host:
        if host.domain in self.by_domain:
            raise ValueError(f"the domain {host.domain} is already served here ({self.by_domain[host.domain].kind.value})")
        self.by_domain[host.domain] = host
        self._components = self._components or host.kind is HostKind.COMPONENT
        return host

    def add_users(self, domain: str, options: dict[str, Any] | None = None) -> Host:
        return self._add(Host(prep_domain(domain), HostKind.USERS, options=dict(options or {})))

    def add_service(
        self,
        domain: str,
        handler: ServiceHandler,
        name: str = "",
        identities: set[tuple[str, str, str]] | None = None,
        features: set[str] | None = None,
    ) -> Host:
        return self._add(
            Host(prep_domain(domain), HostKind.SERVICE, name, set(identities or ()), set(features or ()), handler)
        )

    def add_component(self, domain: str, name: str = "") -> Host:
        return self._add(Host(prep_domain(domain), HostKind.COMPONENT, name))

    def get(self, domain: str) -> Host | None:
        """The host for a domain: exact, or a component serving a parent domain (XEP-0114 subdomains); None: remote."""
        host = self.by_domain.get(domain)
        if host is None and self._components:
            parent = domain
            while "." in parent:
                parent = parent.split(".", 1)[1]
                up = self.by_domain.get(parent)
                if up is not None:
                    return up if up.kind is HostKind.COMPONENT else None
        return host

    def has_accounts(self, domain: str) -> bool:
        """A domain of local user accounts (a virtual host)."""
        host = self.by_domain.get(domain)
        return host is not None and host.kind is HostKind.USERS

    def is_local(self, domain: str) -> bool:
        return self.get(domain) is not None

    def user_domains(self) -> list[str]:
        return [h.domain for h in self.by_domain.values() if h.kind is HostKind.USERS]

    def services(self) -> list[Host]:
        """Services and components, for disco#items of the user domains."""
        return [h for h in self.by_domain.values() if h.kind is not HostKind.USERS]
