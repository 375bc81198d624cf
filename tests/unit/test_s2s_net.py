"""Federation's network helpers without a network: SRV order, the host map, certificate names and self-checks."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from sakari.net import s2s_tls
from sakari.net.s2s import Policy
from sakari.net.s2s_dns import Resolver, SrvRecord, Target, order, parse_host_map

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from federation_helpers import TestCA  # noqa: E402


def test_srv_records_go_by_priority_then_direct_tls_first_among_equals() -> None:
    records = [
        SrvRecord(20, 0, Target("backup.example", 5269)),
        SrvRecord(10, 0, Target("xmpp.example", 5269)),
        SrvRecord(10, 0, Target("xmpp.example", 5270, direct_tls=True)),
    ]
    assert order(records, random.Random(1)) == [
        Target("xmpp.example", 5270, True), Target("xmpp.example", 5269), Target("backup.example", 5269)
    ]


def test_srv_weights_share_the_first_place_in_proportion() -> None:
    records = [SrvRecord(0, 90, Target("heavy", 1)), SrvRecord(0, 10, Target("light", 1))]
    rng = random.Random(7)
    firsts = [order(records, rng)[0].host for _ in range(2000)]
    assert 0.85 < firsts.count("heavy") / len(firsts) < 0.95


def test_host_map_gives_addresses_and_names_a_bad_entry() -> None:
    assert parse_host_map({"Example.org": "192.0.2.1:5269", "v6.example": "[2001:db8::1]:5270"}) == {
        "example.org": Target("192.0.2.1", 5269), "v6.example": Target("2001:db8::1", 5270)
    }
    with pytest.raises(ValueError, match="example.org"):
        parse_host_map({"example.org": "192.0.2.1"})
    with pytest.raises(ValueError, match="example.org"):
        parse_host_map({"example.org": "tls:"})


def test_a_host_map_entry_with_tls_prefix_is_reached_with_direct_tls() -> None:
    assert parse_host_map({"a.example": "tls:192.0.2.1:5270", "b.example": "tls:[2001:db8::1]:5270"}) == {
        "a.example": Target("192.0.2.1", 5270, direct_tls=True), "b.example": Target("2001:db8::1", 5270, direct_tls=True)
    }


async def test_a_mapped_domain_is_not_looked_up_and_a_literal_address_is_itself() -> None:
    resolver = Resolver({"example.org": Target("127.0.0.2", 15269)}, timeout=0.5, nameservers=["127.0.0.1"])
    assert await resolver.targets("example.org") == [Target("127.0.0.2", 15269)]
    assert await resolver.addresses("127.0.0.2") == ["127.0.0.2"]


def test_allow_and_deny_lists() -> None:
    assert Policy().permits("any.example")
    assert not Policy(deny=frozenset({"spam.example"})).permits("spam.example")
    allow = Policy(allow=frozenset({"friend.example"}))
    assert allow.permits("friend.example") and not allow.permits("other.example")


@pytest.mark.parametrize(
    "names, domain, ok",
    [
        ([("DNS", "example.org")], "example.org", True),
        ([("DNS", "Example.ORG")], "example.org", True),
        ([("DNS", "*.example.org")], "xmpp.example.org", True),
        ([("DNS", "*.example.org")], "example.org", False),  # a wildcard stands for exactly one label
        ([("DNS", "*.example.org")], "a.b.example.org", False),
        ([("DNS", "other.org")], "example.org", False),
    ],
)
def test_certificate_names_match_by_rfc_6125(names, domain: str, ok: bool) -> None:
    assert s2s_tls.matches({"subjectAltName": tuple(names)}, domain) is ok


def test_the_common_name_counts_only_without_dns_names() -> None:
    subject = ((("commonName", "example.org"),),)
    assert s2s_tls.matches({"subject": subject}, "example.org")
    assert not s2s_tls.matches({"subject": subject, "subjectAltName": (("DNS", "other.org"),)}, "example.org")
    assert not s2s_tls.matches({}, "example.org") and not s2s_tls.matches(None, "example.org")


def test_our_certificate_is_presented_only_when_our_trust_store_verifies_it(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    cert, key = ca.issue("example.org")
    assert s2s_tls.verifies_as_client(cert, key, str(ca.path))
    assert not s2s_tls.verifies_as_client(cert, key, "")  # the test CA is in no system store
    other = TestCA(tmp_path / "other", "another CA")
    assert not s2s_tls.verifies_as_client(cert, key, str(other.path))
