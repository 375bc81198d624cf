"""The configuration reference in docs/ is generated from the option declarations and must be current."""

from pathlib import Path

from sakari.config import all_options, reference_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_configuration_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text() == reference_markdown(), (
        "docs/configuration.md is stale: run ./run config reference > docs/configuration.md"
    )


def test_configuration_reference_lists_every_key_with_its_default() -> None:
    text = (DOCS / "configuration.md").read_text()
    for option in all_options():
        assert f"| `{option.name}` |" in text
