"""JID preparation and validation per RFC 7622 (examples from §3.5), errors as jid-malformed."""

from __future__ import annotations

import copy
import pickle

import pytest

from sakari.jid import JID, JIDError, parse_jid, prep_domain, prep_local, prep_resource
from sakari.xml.errors import StanzaError

# RFC 7622 §3.5: "examples of valid JIDs", with what preparation makes of them.
VALID = {
    "juliet@example.com": "juliet@example.com",
    "juliet@example.com/foo": "juliet@example.com/foo",
    "juliet@example.com/foo bar": "juliet@example.com/foo bar",
    "juliet@example.com/foo@bar": "juliet@example.com/foo@bar",
    "foo\\20bar@example.com": "foo\\20bar@example.com",
    "fussball@example.com": "fussball@example.com",
    "fußball@example.com": "fußball@example.com",
    "π@example.com": "π@example.com",
    "Σ@example.com/foo": "σ@example.com/foo",
    "σ@example.com/foo": "σ@example.com/foo",
    "ς@example.com/foo": "ς@example.com/foo",
    "king@example.com/♚": "king@example.com/♚",
    "example.com": "example.com",
    "example.com/foobar": "example.com/foobar",
    "a.example.com/b@example.net": "a.example.com/b@example.net",
}

# RFC 7622 §3.5: "examples of invalid JIDs".
INVALID = {
    '"juliet"@example.com': "quotation marks in localpart",
    "foo bar@example.com": "space in localpart",
    "@example.com/": "zero-length localpart and resourcepart",
    "henriⅣ@example.com": "ROMAN NUMERAL FOUR in localpart",
    "♚@example.com": "BLACK CHESS KING as localpart",
    "juliet@": "zero-length domainpart",
    "/foobar": "zero-length domainpart",
}


@pytest.mark.parametrize("text, prepared", VALID.items(), ids=VALID.keys())
def test_rfc7622_valid_examples_are_accepted(text: str, prepared: str) -> None:
    assert str(parse_jid(text)) == prepared


@pytest.mark.parametrize("text", INVALID, ids=INVALID.values())
def test_rfc7622_invalid_examples_are_jid_malformed(text: str) -> None:
    with pytest.raises(JIDError) as caught:
        parse_jid(text)
    assert caught.value.condition == "jid-malformed"


def test_jid_error_is_a_stanza_error_answered_as_jid_malformed_modify() -> None:
    error = JIDError("bad")
    assert isinstance(error, StanzaError)
    assert (error.condition, error.type) == ("jid-malformed", "modify")


# --- case -------------------------------------------------------------------------


def test_localpart_and_domainpart_are_case_folded_and_resource_case_is_preserved() -> None:
    jid = parse_jid("Juliet@Example.COM/Balcony")
    assert (jid.local, jid.domain, jid.resource) == ("juliet", "example.com", "Balcony")
    assert str(jid) == "juliet@example.com/Balcony"
    assert jid == parse_jid("juliet@example.com/Balcony")
    assert jid != parse_jid("juliet@example.com/balcony")


def test_non_ascii_localpart_is_case_mapped() -> None:
    assert parse_jid("ÅNGSTRÖM@example.com").local == "ångström"
    assert parse_jid("Σ@example.com") == parse_jid("σ@example.com")


def test_resource_is_normalized_but_not_case_mapped() -> None:
    assert parse_jid("juliet@example.com/\u212b").resource == "\u00c5"  # ANGSTROM SIGN → NFC Å
    assert parse_jid("juliet@example.com/\u00a0x").resource == " x"  # non-ASCII space → SPACE (OpaqueString)


def test_bare_jid_drops_only_the_resource() -> None:
    full = parse_jid("Juliet@example.com/balcony")
    assert full.bare == parse_jid("juliet@example.com")
    assert full.bare.bare is full.bare
    assert parse_jid("juliet@example.com").bare == JID("juliet", "example.com")


# --- domainpart -------------------------------------------------------------------


def test_idn_domain_is_prepared_to_lower_case_u_labels() -> None:
    assert parse_jid("juliet@BÜCHER.example").domain == "bücher.example"


def test_idn_domain_given_as_a_label_is_the_same_jid_as_its_u_label() -> None:
    """RFC 7622 §3.2.1: each A-label MUST be converted to a U-label during preparation."""
    assert parse_jid("juliet@xn--bcher-kva.example") == parse_jid("juliet@bücher.example")
    assert prep_domain("XN--BCHER-KVA.example") == "bücher.example"


def test_trailing_dot_of_the_domain_is_removed() -> None:
    assert parse_jid("juliet@example.com./r") == parse_jid("juliet@example.com/r")


def test_an_ideographic_full_stop_at_the_end_of_the_domain_is_removed_as_a_dot() -> None:
    assert parse_jid("juliet@b\u00fccher\u3002") == parse_jid("juliet@b\u00fccher")


@pytest.mark.parametrize("text", ["\u00c4..", "juliet@\u00c4.\u3002", "\u00c4\u3002\u3002/r"])
def test_an_internationalized_domain_with_an_empty_last_label_is_jid_malformed(text: str) -> None:
    # Found by fuzzing (tests/fuzz/test_fuzz_jid.py): "Ä.." was prepared to "ä.", which parses to another JID.
    with pytest.raises(JIDError):
        parse_jid(text)


def test_ip_literals_are_domainparts() -> None:
    assert parse_jid("juliet@192.0.2.1").domain == "192.0.2.1"
    assert parse_jid("juliet@[2001:db8::1]/r").domain == "[2001:db8::1]"


@pytest.mark.parametrize("domain", ["[not an address]", "[]", "[2001:db8::1<>]", "[fe80::1%eth0]", "[fe80::1%25eth0]"])
def test_bracketed_domain_that_is_not_an_ipv6_address_is_jid_malformed(domain: str) -> None:
    with pytest.raises(JIDError):
        parse_jid(f"juliet@{domain}")


@pytest.mark.parametrize(
    "domain",
    ["example..com", ".example.com", "exa mple.com", "ex_ample.com", "exa<mple.com", "a" * 64 + ".example",
     "-example.com", "example-.com"],
    ids=["empty-label", "leading-dot", "space", "underscore", "angle-bracket", "label-over-63", "leading-hyphen",
         "trailing-hyphen"],
)
def test_domain_that_is_not_a_valid_host_name_is_jid_malformed(domain: str) -> None:
    with pytest.raises(JIDError):
        parse_jid(f"juliet@{domain}")


# --- forbidden characters ----------------------------------------------------------


@pytest.mark.parametrize("char", ['"', "&", "'", ":", "<", ">"])
def test_localpart_forbidden_characters_of_rfc7622_are_jid_malformed(char: str) -> None:
    with pytest.raises(JIDError):
        parse_jid(f"jul{char}iet@example.com")
    with pytest.raises(JIDError):
        prep_local(f"Jul{char}iet")  # also on the slow (non-ASCII-lowercase) path


@pytest.mark.parametrize("local", ["jul\u0000iet", "jul\u0007iet", "jul\tiet", "jul\u200biet", "ﬀ"],
                         ids=["nul", "bell", "tab", "zero-width-space", "compat-ligature"])
def test_localpart_with_control_or_disallowed_characters_is_jid_malformed(local: str) -> None:
    with pytest.raises(JIDError):
        parse_jid(f"{local}@example.com")


@pytest.mark.parametrize("resource", ["a\u0000b", "a\u0007b", "a\u007fb", "a\u0085b"], ids=["nul", "bell", "del", "nel"])
def test_resource_with_control_characters_is_jid_malformed(resource: str) -> None:
    with pytest.raises(JIDError):
        parse_jid(f"juliet@example.com/{resource}")


# --- empty parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "@example.com", "juliet@", "juliet@example.com/", "example.com/", "@", "/", "@/r", "juliet@/r"]
)
def test_empty_parts_are_jid_malformed(text: str) -> None:
    with pytest.raises(JIDError) as caught:
        parse_jid(text)
    assert caught.value.condition == "jid-malformed"


@pytest.mark.parametrize("prep", [prep_local, prep_domain, prep_resource])
def test_preparing_an_empty_part_is_jid_malformed(prep) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(JIDError):
        prep("")


# --- length limits (RFC 7622 §3.1: each part 1 to 1023 octets) ---------------------------


def test_localpart_of_1023_octets_is_accepted_and_1024_is_not() -> None:
    assert len(parse_jid("a" * 1023 + "@example.com").local) == 1023
    with pytest.raises(JIDError):
        parse_jid("a" * 1024 + "@example.com")


def test_localpart_limit_counts_octets_not_characters() -> None:
    assert parse_jid("é" * 511 + "a@example.com").local == "é" * 511 + "a"  # 1023 octets
    with pytest.raises(JIDError):
        parse_jid("é" * 512 + "@example.com")  # 512 characters, 1024 octets


def test_resource_of_1023_octets_is_accepted_and_1024_is_not() -> None:
    assert len(parse_jid("juliet@example.com/" + "R" * 1023).resource) == 1023
    with pytest.raises(JIDError):
        parse_jid("juliet@example.com/" + "R" * 1024)
    with pytest.raises(JIDError):
        parse_jid("juliet@example.com/" + "☃" * 342)  # 1026 octets


def test_domain_over_1023_octets_is_jid_malformed() -> None:
    # A DNS name is far shorter (253 octets) than the JID limit, so only the upper bound is checked here.
    long_domain = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 octets: the longest DNS name
    assert parse_jid(f"juliet@{long_domain}").domain == long_domain
    with pytest.raises(JIDError):
        parse_jid("juliet@" + ".".join(["a" * 63] * 16) + "a")  # 1024 octets


def test_a_jid_cannot_be_changed_and_copies_equal_it() -> None:
    jid = parse_jid("juliet@example.com/balcony")
    with pytest.raises(AttributeError):
        jid.resource = "garden"  # type: ignore[misc]
    for twin in (copy.copy(jid), copy.deepcopy(jid), pickle.loads(pickle.dumps(jid))):
        assert twin == jid and hash(twin) == hash(jid) and twin.bare == jid.bare
