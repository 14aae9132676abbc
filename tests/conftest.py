"""Fixtures every test folder may use (a folder's own conftest may override them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from modelwire.plugins import PluginManager
from modelwire.testing import FakeServer


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def manager() -> PluginManager:
    """A manager with the installed plugins (the example reverse_echo among them)."""
    return PluginManager().discover()


@pytest.fixture
def http_proxy(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point the environment's HTTP proxy (and only it) at a URL, for the test's length."""

    def point_at(url: str) -> None:
        for name in ("ALL_PROXY", "HTTPS_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("http_proxy", url)

    return point_at
