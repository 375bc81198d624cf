"""What the browser tests share, session-wide: Debian's Chromium driven by Playwright (launched once), and the
pinned Converse.js. What the browser needs is installed here when missing (Chromium from Debian, Converse.js from
npm); in CI (CI set) a missing piece fails the test instead of skipping it. conftest.py makes these fixtures
visible to every test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_asyncio

from sakari.modules import webclient
from sakari_process import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _require(what: str, present: Callable[[], bool], apt_package: str) -> None:
    """Install a missing piece from Debian when we can; fail loudly in CI, skip elsewhere."""
    if not present() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", apt_package], check=False, capture_output=True)
    if present():
        return
    message = f"{what} is needed for the browser test (apt-get install {apt_package})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def converse_dist() -> Path:
    _require("npm", lambda: shutil.which("npm") is not None, "npm")
    return webclient.install(REPO_ROOT / webclient.DEFAULT_CACHE)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """One Chromium for the whole test session; Playwright gives it a fresh profile directory of its own."""
    _require("Chromium", lambda: os.access(CHROMIUM, os.X_OK), "chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    print(f"screenshots in {tmp_path}")
    return tmp_path
