"""The [[components]] list of tables: each table checked key by key, with its line; defaults filled in."""

from __future__ import annotations

from pathlib import Path

import pytest

from sakari import settings as S
from sakari.config import Config, ConfigError

WHERE = Path("sakari.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.parse(text, WHERE)
    return info.value.problems


def test_components_are_tables_with_their_defaults_filled_in() -> None:
    config = Config.parse(
        '[[components]]\ndomain = "irc.example.org"\nsecret = "s1"\n'
        '[[components]]\ndomain = "matrix.example.org"\nsecret = "s2"\nname = "Matrix"\n'
        '[components.privileges]\nroster = "both"\nmessage = "outgoing"\n'
        '[components.privileges.iq]\n"http://jabber.org/protocol/pubsub" = "both"\n',
        WHERE,
    )
    assert config[S.COMPONENTS] == [
        {"domain": "irc.example.org", "secret": "s1", "name": "", "privileges": {}},
        {
            "domain": "matrix.example.org",
            "secret": "s2",
            "name": "Matrix",
            "privileges": {"roster": "both", "message": "outgoing", "iq": {"http://jabber.org/protocol/pubsub": "both"}},
        },
    ]


def test_no_components_by_default() -> None:
    assert Config.parse('domain = "example.org"\n', WHERE)[S.COMPONENTS] == []


def test_each_bad_key_of_a_component_is_named_with_its_table_and_line() -> None:
    text = (
        'domain = "example.org"\n'  # 1
        "[[components]]\n"  # 2
        'domain = "irc.example.org"\n'  # 3
        'secret = "s"\n'  # 4
        "[[components]]\n"  # 5
        'domain = "bad domain!"\n'  # 6
        "secret = 4\n"  # 7
        'sercet = "typo"\n'  # 8
        'privileges = { roster = "all" }\n'  # 9
        "[[components]]\n"  # 10
        'domain = "x.example.org"\n'  # 11
    )
    found = problems(text)
    assert found[0].startswith("sakari.toml:6: [[components]] number 2: 'domain' is not a domain")
    assert found[1:] == [
        "sakari.toml:7: [[components]] number 2: 'secret' must be a string, not 4",
        "sakari.toml:8: [[components]] number 2: unknown key 'sercet' (there are: domain, secret, name, privileges)",
        (
            "sakari.toml:9: [[components]] number 2: 'privileges' roster must be one of none, get, set, both "
            "(got {'roster': 'all'})"
        ),
        "sakari.toml:10: [[components]] number 3: 'secret' is required",
    ]


def test_iq_privileges_name_an_access_per_namespace() -> None:
    (problem,) = problems(
        '[[components]]\ndomain = "a.example.org"\nsecret = "s"\n'
        'privileges = { iq = { "urn:xmpp:http:upload:0" = "read" } }\n'
    )
    assert problem.startswith("sakari.toml:4: [[components]] number 1: 'privileges' iq must be a table of namespaces")


def test_roster_push_is_a_boolean() -> None:
    (problem,) = problems(
        '[[components]]\ndomain = "a.example.org"\nsecret = "s"\nprivileges = { roster = "get", roster_push = "no" }\n'
    )
    assert problem.startswith("sakari.toml:4: [[components]] number 1: 'privileges' roster_push must be true or false")


def test_components_cannot_be_a_plain_list_nor_be_set_per_host() -> None:
    assert problems('components = ["irc.example.org"]\n') == [
        "sakari.toml: 'components' holds tables, written as [[components]]"
    ]
    (problem,) = problems('[host."example.net"]\ncomponents = []\n')
    assert "'components' is the same for every host" in problem
