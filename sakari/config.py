"""Configuration: option declarations, the TOML file, validation and the annotated example.

Every option is declared once, next to the code that uses it, with its
default and a line of documentation. The same declarations validate the
file (``sakari config check``), produce ``sakari config example`` and the
configuration reference, so the docs cannot drift from the code.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from collections.abc import Callable

from sakari.jid import JIDError, prep_domain

T = TypeVar("T")

__all__ = ["Option", "Field", "declare", "declare_tables", "Config", "ConfigError", "all_options", "load_all_declarations"]


@dataclass(frozen=True)
class Field:
    """One key of the tables in a list-of-tables option (``[[components]]``)."""

    name: str
    default: Any  # also gives the type a value must have
    doc: str
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)
    required: bool = False


@dataclass(frozen=True)
class Option(Generic[T]):
    key: str
    default: T
    doc: str
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)
    # Non-empty: the value is a list of tables with these keys, written as [[key]] tables in the file.
    fields: tuple[Field, ...] = field(default=(), compare=False)

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]


_OPTIONS: dict[str, Option[Any]] = {}


def declare(key: str, default: T, doc: str, check: Callable[[Any], str | None] | None = None) -> Option[T]:
    """Declare an option; declaring the same key twice with another default is a programming error."""
    opt = Option(key, default, doc, check)
    existing = _OPTIONS.get(key)
    if existing is not None and (existing.default != default or existing.doc != doc):
        raise ValueError(f"option {key} declared twice differently")
    _OPTIONS[key] = opt
    return opt


def declare_tables(key: str, fields: tuple[Field, ...], doc: str) -> Option[list[dict[str, Any]]]:
    """Declare a list of tables (``[[key]]`` in TOML), each checked key by key; a table's value has every
    field, at its default where the file leaves it out."""
    # The tables' keys are documented with the option, so the example and the reference show them.
    keys = "\n".join(f"  {f.name}{' (required)' if f.required else ''}: {f.doc}" for f in fields)
    doc = f"{doc}\nEach [[{key}]] table has:\n{keys}"
    opt: Option[list[dict[str, Any]]] = Option(key, [], doc, None, fields)
    existing = _OPTIONS.get(key)
    if existing is not None and (existing.fields != fields or existing.doc != doc):
        raise ValueError(f"option {key} declared twice differently")
    _OPTIONS[key] = opt
    return opt


def all_options() -> list[Option[Any]]:
    load_all_declarations()
    return sorted(_OPTIONS.values(), key=lambda o: (o.section, o.name))


def load_all_declarations() -> None:
    """Import every module of the package so that all options are declared."""
    import sakari

    for info in pkgutil.walk_packages(sakari.__path__, "sakari."):
        if info.name in ("sakari.__main__",):
            continue
        importlib.import_module(info.name)


# --- validation helpers ------------------------------------------------------
def port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535 (0 disables)"


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


class ConfigError(Exception):
    """Problems found in a configuration file, each naming its key and line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}[
        type(value)
    ]


def _matches_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(default, dict):  # a table of strings by name (such as domain → address)
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, type(default))


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        option = _OPTIONS.get(full)
        if isinstance(value, dict) and not (option is not None and isinstance(option.default, dict)):
            out.update(_flatten(value, full + "."))
        else:
            out[full] = value
    return out


# Keys that belong to the whole process and cannot differ per virtual host.
PROCESS_WIDE = (
    "data_dir", "domain", "log_level", "admins", "components", "network.", "storage.", "modules.", "tls.", "limits."
)

_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
_TABLE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r'^\s*([A-Za-z0-9_\-."\' ]+?)\s*=')
_INLINE_KEY = re.compile(r'[{,]\s*([A-Za-z0-9_\-]+)\s*=')


def _key_lines(text: str) -> dict[str, int]:
    """Line number of each dotted key in a TOML text (tomllib does not report positions)."""
    lines: dict[str, int] = {}
    table = ""
    arrays: dict[str, int] = {}  # [[name]] tables seen so far: each is entry name.0, name.1, …
    for number, line in enumerate(text.splitlines(), 1):
        if m := _ARRAY_TABLE.match(line):
            name = m.group(1).replace('"', "").replace(" ", "")
            arrays[name] = arrays.get(name, -1) + 1
            table = f"{name}.{arrays[name]}"
            lines.setdefault(table, number)
        elif m := _TABLE.match(line):
            table = m.group(1).replace('"', "").replace(" ", "")
            head, _, rest = table.partition(".")
            if head in arrays and rest:  # [name.sub] after [[name]]: a table inside its last entry
                table = f"{head}.{arrays[head]}.{rest}"
            lines.setdefault(table, number)
        elif m := _KEY.match(line):
            key = m.group(1).replace('"', "").replace("'", "").replace(" ", "")
            full = f"{table}.{key}" if table else key
            lines.setdefault(full, number)
            rest = line[m.end():].lstrip()
            if rest.startswith("{"):  # an inline table: its keys are on this line too
                for inner in _INLINE_KEY.findall(rest):
                    lines.setdefault(f"{full}.{inner}", number)
    return lines


class Config:
    """Validated settings: file values over declared defaults, command-line overrides over both."""

    def __init__(
        self, values: dict[str, Any] | None = None, path: Path | None = None, hosts: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self._values = dict(values or {})
        self.path = path
        # Virtual hosts besides ``domain``: each ``[host."example.net"]`` table, with that host's own option values.
        self.hosts = {name: dict(values) for name, values in (hosts or {}).items()}

    @classmethod
    def parse(cls, text: str, path: Path | None = None) -> Config:
        where = str(path) if path else "config"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([f"{where}: not valid TOML: {e}"]) from None
        load_all_declarations()
        lines = _key_lines(text)
        problems: list[str] = []
        host_tables = data.pop("host", {})
        values = _flatten(data)
        _check(values, lines, "", where, problems)
        hosts: dict[str, dict[str, Any]] = {}
        if not isinstance(host_tables, dict) or not all(isinstance(t, dict) for t in host_tables.values()):
            problems.append(f"{where}: 'host' holds one table per virtual host, as in [host.\"example.net\"]")
        else:
            for name, table in host_tables.items():
                try:
                    prep_domain(name)
                except JIDError as e:
                    problems.append(f"{where}:{lines.get(f'host.{name}', '?')}: [host.\"{name}\"] is not a domain: {e.text}")
                host_values = _flatten(table)
                _check(host_values, lines, f"host.{name}.", where, problems)
                for key in host_values:
                    if key.startswith(PROCESS_WIDE):
                        line = lines.get(f"host.{name}.{key}")
                        at = f"{where}:{line}" if line else where
                        problems.append(f"{at}: '{key}' is the same for every host; it cannot be set for {name}")
                hosts[name] = host_values
        if problems:
            raise ConfigError(problems)
        return cls(values, path, hosts)

    @classmethod
    def load(cls, path: Path | None) -> Config:
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
        return cls.parse(text, path)

    def override(self, option: Option[Any], value: Any) -> None:
        if value is None:
            return
        if option.check and (msg := option.check(value)):
            raise ConfigError([f"command line: '{option.key}' {msg} (got {value!r})"])
        self._values[option.key] = value

    def __getitem__(self, option: Option[T]) -> T:
        return self._values.get(option.key, option.default)  # type: ignore[no-any-return]



def _check(values: dict[str, Any], lines: dict[str, int], prefix: str, where: str, problems: list[str]) -> None:
    for key, value in values.items():
        line = lines.get(prefix + key)
        at = f"{where}:{line}" if line else where
        opt = _OPTIONS.get(key)
        if opt is None:
            problems.append(f"{at}: unknown key '{prefix}{key}'")
            continue
        if opt.fields:
            values[key] = _check_tables(opt, value, lines, where, problems)
            continue
        if not _matches_type(opt.default, value):
            problems.append(f"{at}: '{prefix}{key}' must be {_type_name(opt.default)}, not {value!r}")
            continue
        if opt.check and (msg := opt.check(value)):
            problems.append(f"{at}: '{prefix}{key}' {msg} (got {value!r})")


def _check_tables(opt: Option[Any], value: Any, lines: dict[str, int], where: str, problems: list[str]) -> list[dict[str, Any]]:
    """A list-of-tables option: each table's keys checked like options; the tables with defaults filled in."""
    at = f"{where}:{lines[opt.key + '.0']}" if opt.key + ".0" in lines else where
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        problems.append(f"{at}: '{opt.key}' holds tables, written as [[{opt.key}]]")
        return []
    fields = {f.name: f for f in opt.fields}
    out = []
    for index, entry in enumerate(value):
        base = f"{opt.key}.{index}"
        entry_at = f"{where}:{lines[base]}" if base in lines else where
        label = f"[[{opt.key}]] number {index + 1}"
        for name, item in entry.items():
            line = lines.get(f"{base}.{name}")
            item_at = f"{where}:{line}" if line else entry_at
            f = fields.get(name)
            if f is None:
                problems.append(f"{item_at}: {label}: unknown key '{name}' (there are: {', '.join(fields)})")
            elif not _field_type_matches(f.default, item):
                problems.append(f"{item_at}: {label}: '{name}' must be {_type_name(f.default)}, not {item!r}")
            elif f.check and (msg := f.check(item)):
                problems.append(f"{item_at}: {label}: '{name}' {msg} (got {item!r})")
        for f in opt.fields:
            if f.required and f.name not in entry:
                problems.append(f"{entry_at}: {label}: '{f.name}' is required")
        out.append({f.name: entry.get(f.name, f.default) for f in opt.fields})
    return out


def _field_type_matches(default: Any, value: Any) -> bool:
    return isinstance(value, dict) if isinstance(default, dict) else _matches_type(default, value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def example() -> str:
    """An annotated configuration file with every key at its default."""
    out = [
        "# Sakari configuration: every key with its default and what it does.",
        "# Keys left out keep their default; `sakari config check` validates a file.",
        "",
    ]
    section = None
    for opt in all_options():
        if opt.section != section:
            section = opt.section
            if section:
                out.append(f"\n[{section}]")
        for line in opt.doc.splitlines():
            out.append(f"# {line}")
        out.append(f"{opt.name} = {_toml_value(opt.default)}")
    return "\n".join(out) + "\n"


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md) from the same declarations."""
    out = [
        "# Configuration reference",
        "",
        "Sakari reads one TOML file (`sakari serve --config PATH`). Every key is optional;",
        "this page lists each with its default. It is generated from the option declarations",
        "in the code (`python -m sakari config reference > docs/configuration.md`), so it",
        "cannot drift from what the server accepts. `sakari config check` names every invalid",
        "key or value with its line.",
    ]
    section = None
    for opt in all_options():
        if opt.section != section:
            section = opt.section
            heading = f"## `[{section}]`" if section else "## Top level"
            out += ["", heading, "", "| key | default | meaning |", "|---|---|---|"]
        doc = opt.doc.replace("\n", " ").replace("|", "\\|")
        out.append(f"| `{opt.name}` | `{_toml_value(opt.default)}` | {doc} |")
    return "\n".join(out) + "\n"
