"""The table of hosts: what each domain is to the server (virtual host, service, component or remote)."""

from __future__ import annotations

import pytest

from sakari.core.hosts import HostKind, Hosts
from sakari.jid import JIDError


async def _nothing(event: object) -> None:
    return None


@pytest.fixture
def hosts() -> Hosts:
    h = Hosts()
    h.add_users("example.org")
    h.add_users("Other.Example", {"offline.max_messages": 5})
    h.add_service("muc.example.org", _nothing, name="Chatrooms", identities={("conference", "text", "Chatrooms")})
    h.add_component("gateway.example.org", name="Gateway")
    return h


def test_domains_are_prepared_when_added(hosts: Hosts) -> None:
    host = hosts.get("other.example")
    assert host is not None and host.domain == "other.example" and host.kind is HostKind.USERS
    assert host.options == {"offline.max_messages": 5}


def test_a_domain_can_be_served_only_once_whatever_its_kind(hosts: Hosts) -> None:
    with pytest.raises(ValueError, match="already served"):
        hosts.add_users("EXAMPLE.org")
    with pytest.raises(ValueError, match="already served"):
        hosts.add_service("gateway.example.org", _nothing)


def test_an_invalid_domain_is_refused() -> None:
    with pytest.raises(JIDError):
        Hosts().add_users("bad domain")


def test_user_domains_have_accounts_and_services_do_not(hosts: Hosts) -> None:
    assert hosts.has_accounts("example.org") and hosts.has_accounts("other.example")
    assert not hosts.has_accounts("muc.example.org") and not hosts.has_accounts("gateway.example.org")
    assert not hosts.has_accounts("remote.example")
    assert hosts.user_domains() == ["example.org", "other.example"]


def test_services_lists_services_and_components_but_not_user_domains(hosts: Hosts) -> None:
    assert [(h.domain, h.kind, h.name) for h in hosts.services()] == [
        ("muc.example.org", HostKind.SERVICE, "Chatrooms"),
        ("gateway.example.org", HostKind.COMPONENT, "Gateway"),
    ]


def test_a_subdomain_of_a_component_is_served_by_that_component(hosts: Hosts) -> None:
    component = hosts.get("gateway.example.org")
    assert hosts.get("irc.gateway.example.org") is component
    assert hosts.get("a.b.gateway.example.org") is component
    assert hosts.is_local("irc.gateway.example.org")


def test_a_subdomain_of_a_user_domain_or_a_service_is_remote(hosts: Hosts) -> None:
    assert hosts.get("sub.example.org") is None
    assert hosts.get("room.muc.example.org") is None
    assert not hosts.is_local("sub.example.org")
    assert not hosts.is_local("example.net")


def test_without_components_subdomains_are_never_looked_up() -> None:
    h = Hosts()
    h.add_users("example.org")
    assert h.get("x.example.org") is None and h.is_local("example.org")
