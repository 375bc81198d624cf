"""Virtual hosts in the configuration: [host."name"] tables with per-host values; keys that are the same for the
whole process are refused there. Every problem names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sakari.config import Config, ConfigError

WHERE = Path("/etc/sakari/sakari.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Config.parse(text, WHERE)
    return caught.value.problems


def test_host_tables_become_virtual_hosts_with_their_own_values() -> None:
    config = Config.parse(
        'domain = "example.org"\n'
        "\n"
        '[host."other.example"]\n'
        "offline.max_messages = 10\n"
        "\n"
        '[host."other.example".c2s]\n'
        "auth_timeout = 5.0\n"
        "\n"
        '[host."third.example"]\n',
        WHERE,
    )
    assert config.hosts == {
        "other.example": {"offline.max_messages": 10, "c2s.auth_timeout": 5.0},
        "third.example": {},
    }


def test_a_file_without_host_tables_has_no_virtual_hosts() -> None:
    assert Config.parse('domain = "example.org"\n').hosts == {}


def test_an_unknown_key_in_a_host_table_is_named_with_its_host_and_line() -> None:
    text = 'domain = "example.org"\n\n[host."other.example"]\noffline.max_mesages = 3\n'
    assert problems(text) == [f"{WHERE}:4: unknown key 'host.other.example.offline.max_mesages'"]


def test_a_wrongly_typed_value_in_a_host_table_is_named_with_its_line() -> None:
    text = '[host."other.example"]\n# the limit\noffline.max_messages = "ten"\n'
    assert problems(text) == [f"{WHERE}:3: 'host.other.example.offline.max_messages' must be an integer, not 'ten'"]


@pytest.mark.parametrize(
    "key, value",
    [("domain", '"x.example"'), ("data_dir", '"/tmp"'), ("admins", '["a@x.example"]'), ("network.c2s_port", "5222"),
     ("storage.backend", '"sqlite"'), ("modules.enabled", "[]"), ("tls.certificate", '"a.pem"'), ("limits.max_depth", "5")],
)
def test_process_wide_keys_in_a_host_table_are_refused_with_their_line(key: str, value: str) -> None:
    text = f'domain = "example.org"\n\n[host."other.example"]\n{key} = {value}\n'
    assert problems(text) == [f"{WHERE}:4: '{key}' is the same for every host; it cannot be set for other.example"]


def test_process_wide_key_in_a_sub_table_of_a_host_is_refused_with_its_line() -> None:
    text = '[host."other.example"]\noffline.max_messages = 3\n\n[host."other.example".network]\nc2s_port = 5222\n'
    assert problems(text) == [f"{WHERE}:5: 'network.c2s_port' is the same for every host; it cannot be set for other.example"]


def test_host_must_hold_one_table_per_host() -> None:
    assert problems('host = "other.example"\n') == [
        f"{WHERE}: 'host' holds one table per virtual host, as in [host.\"example.net\"]"
    ]
    assert problems('[host]\nname = "other.example"\n') == [
        f"{WHERE}: 'host' holds one table per virtual host, as in [host.\"example.net\"]"
    ]


def test_problems_in_several_hosts_and_at_top_level_are_all_named() -> None:
    text = (
        "domian = 1\n"
        '[host."a.example"]\n'
        "nope = 1\n"
        '[host."b.example"]\n'
        "log_level = \"debug\"\n"
    )
    assert problems(text) == [
        f"{WHERE}:1: unknown key 'domian'",
        f"{WHERE}:3: unknown key 'host.a.example.nope'",
        f"{WHERE}:5: 'log_level' is the same for every host; it cannot be set for b.example",
    ]
