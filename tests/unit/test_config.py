"""Configuration: every problem in a file is named with its line; the example is complete and valid."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sakari import settings as S
from sakari.config import Config, ConfigError, all_options, example

REPO = Path(__file__).resolve().parents[2]
WHERE = Path("/etc/sakari/sakari.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Config.parse(text, WHERE)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    table_options = {o.key for o in all_options() if isinstance(o.default, dict)}  # options whose value is a table
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in table_options:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --- Config.parse -----------------------------------------------------------------


def test_unknown_top_level_key_is_named_with_its_line() -> None:
    assert problems('domain = "example.org"\n\ndomian = "typo.example"\n') == [
        f"{WHERE}:3: unknown key 'domian'"
    ]


def test_unknown_key_in_a_table_is_named_with_its_dotted_name_and_line() -> None:
    text = '# comment\n[network]\nc2s_port = 5222\nc2s_prot = 5223\n'
    assert problems(text) == [f"{WHERE}:4: unknown key 'network.c2s_prot'"]


def test_unknown_table_names_each_of_its_keys() -> None:
    text = '[netwrok]\nc2s_port = 5222\n\nbind = ["::1"]\n'
    assert problems(text) == [
        f"{WHERE}:2: unknown key 'netwrok.c2s_port'",
        f"{WHERE}:4: unknown key 'netwrok.bind'",
    ]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('[network]\nc2s_port = "5222"\n', 2, "'network.c2s_port' must be an integer, not '5222'"),
        ('[c2s]\n\nrequire_encryption = "yes"\n', 3, "'c2s.require_encryption' must be a boolean, not 'yes'"),
        ("domain = 42\n", 1, "'domain' must be a string, not 42"),
        ('[network]\nbind = "0.0.0.0"\n', 2, "'network.bind' must be a list, not '0.0.0.0'"),
        ('[network]\nbind = ["::1", 1]\n', 2, "'network.bind' must be a list, not ['::1', 1]"),
        ("[limits]\nmax_depth = 1.5\n", 2, "'limits.max_depth' must be an integer, not 1.5"),
        ("[limits]\nmax_depth = true\n", 2, "'limits.max_depth' must be an integer, not True"),
    ],
    ids=["int-as-string", "bool-as-string", "string-as-int", "list-as-string", "list-of-mixed", "int-as-float",
         "int-as-bool"],
)
def test_wrong_type_is_named_with_its_line_and_expected_type(text: str, line: int, message: str) -> None:
    assert problems(text) == [f"{WHERE}:{line}: {message}"]


def test_value_out_of_range_is_named_with_its_line() -> None:
    assert problems("[network]\nc2s_port = 70000\n") == [
        f"{WHERE}:2: 'network.c2s_port' must be a port number from 0 to 65535 (0 disables) (got 70000)"
    ]


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = 'domian = "x"\n[network]\nc2s_port = "a"\n[c2s]\nrequire_encryption = 1\n'
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == [f"{WHERE}:1", f"{WHERE}:3", f"{WHERE}:5"]


def test_dotted_key_at_top_level_is_named_with_its_line() -> None:
    assert problems('domain = "example.org"\nnetwork.c2s_port = "x"\n') == [
        f"{WHERE}:2: 'network.c2s_port' must be an integer, not 'x'"
    ]


def test_key_in_an_inline_table_is_named_with_its_line() -> None:
    assert problems('domain = "example.org"\nnetwork = { c2s_port = "x" }\n') == [
        f"{WHERE}:2: 'network.c2s_port' must be an integer, not 'x'"
    ]


def test_toml_syntax_error_names_the_file_and_line() -> None:
    (problem,) = problems('domain = "example.org"\n[network]\nc2s_port = \n')
    assert problem.startswith(f"{WHERE}: not valid TOML")
    assert "line 3" in problem


def test_valid_file_gives_its_values_and_defaults_for_the_rest() -> None:
    config = Config.parse('domain = "example.org"\n[network]\nc2s_port = 15222\nbind = ["::1"]\n', WHERE)
    assert config[S.DOMAIN] == "example.org"
    assert config[S.C2S_PORT] == 15222
    assert config[S.BIND] == ["::1"]
    assert config[S.C2S_TLS_PORT] == S.C2S_TLS_PORT.default
    assert config.path == WHERE


def test_integer_is_accepted_where_a_number_is_expected() -> None:
    assert Config.parse("[c2s]\nauth_timeout = 10\n")[S.AUTH_TIMEOUT] == 10


def test_a_table_valued_option_takes_a_table_of_strings_with_its_keys_as_written() -> None:
    from sakari.net.s2s import HOST_MAP

    config = Config.parse('[s2s.host_map]\n"example.org" = "192.0.2.1:5269"\n', WHERE)
    assert config[HOST_MAP] == {"example.org": "192.0.2.1:5269"}
    assert Config.parse('[s2s]\nhost_map = { "a.example" = "[::1]:5269" }\n', WHERE)[HOST_MAP] == {"a.example": "[::1]:5269"}


def test_a_table_valued_option_names_a_bad_value_with_its_line() -> None:
    assert problems('[s2s]\nhost_map = { "example.org" = 5269 }\n') == [
        f"{WHERE}:2: 's2s.host_map' must be a table, not {{'example.org': 5269}}"
    ]
    assert problems('\n[s2s.host_map]\n"example.org" = "no port"\n') == [
        f"{WHERE}:2: 's2s.host_map' example.org = 'no port': give \"address:port\" or \"tls:address:port\" (got {{'example.org': 'no port'}})"
    ]


# --- the example --------------------------------------------------------------------


def test_example_parses_back_with_every_option_at_its_default() -> None:
    text = example()
    config = Config.parse(text, Path("example.toml"))
    options = all_options()
    assert options, "no option declared"
    for option in options:
        assert config[option] == option.default, option.key


def test_example_contains_every_declared_option_and_nothing_else() -> None:
    keys = set(flatten(tomllib.loads(example())))
    assert keys == {option.key for option in all_options()}


def test_example_documents_every_option_next_to_it() -> None:
    lines = example().splitlines()
    for option in all_options():
        # Names repeat across sections (domain, upload.domain): look from the option's own section on.
        start = lines.index(f"[{option.section}]") if option.section else 0
        index = next(i for i, line in enumerate(lines) if i >= start and line.startswith(f"{option.name} = "))
        doc_lines = option.doc.splitlines()
        assert lines[index - len(doc_lines) : index] == [f"# {d}" for d in doc_lines], option.key


# --- the command ------------------------------------------------------------------


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "sakari", "config", "check", "--config", str(path)],
        capture_output=True, text=True, env=env, cwd=path.parent, timeout=60,
    )


def test_config_check_command_exits_2_with_line_numbered_problems_for_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "sakari.toml"
    path.write_text('domain = "example.org"\n\n[network]\nc2s_port = "abc"\nbogus = 1\n')
    result = run_check(path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:4: 'network.c2s_port' must be an integer, not 'abc'",
        f"{path}:5: unknown key 'network.bogus'",
    ]


def test_config_check_command_exits_0_for_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "sakari.toml"
    path.write_text(example())
    result = run_check(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
