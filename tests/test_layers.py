"""The layer contract in pyproject.toml ([tool.importlinter]) holds, and covers all of Sakari."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import sakari

ROOT = Path(__file__).resolve().parent.parent


def test_imports_keep_the_layer_contract() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_package_of_sakari_has_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = {
        name.strip()
        for contract in config["contracts"] if contract["type"] == "layers"
        for layer in contract["layers"] for name in layer.split("|")
    }
    top_level = {f"sakari.{info.name}" for info in pkgutil.iter_modules(sakari.__path__)} - {"sakari.__main__"}
    assert top_level - layered == set(), "give these a layer in pyproject.toml so the contract covers them"
