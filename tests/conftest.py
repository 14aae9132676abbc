"""Fixtures every test folder may use (a folder's own conftest may override them)."""

from __future__ import annotations

from collections.abc import Iterator

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
