"""A long fuzz run (HYPOTHESIS_PROFILE=fuzz) takes as long as its example count asks: no per-test timeout then."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_settings import LONG

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if LONG:
        for item in items:
            if HERE in item.path.parents:
                item.add_marker(pytest.mark.timeout(0))
