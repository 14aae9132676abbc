"""The fault matrix runs for every first-party model type.

Fault injection (429 with and without Retry-After, 5xx, resets, cut bodies and
streams, slow replies, malformed JSON, HTML pages, empty bodies), budgets under
64 threads and 256 tasks, records under threads and secret redaction all live in
``modelwire.testing.conformance.ConformanceSuite``, and so does the hostile-server
campaign, bounded in count and time: bodies that drip one byte at a time (headers
included), streams that stall, replies past ``max_response_bytes`` (gzip bombs in
``tests/core/test_transport.py``), redirects to another origin, nine hostile 200
bodies (50,000-deep nesting, ``1e400``, non-object JSON, invalid UTF-8...) and
error replies that echo the request's headers, nest 50,000 deep, carry codes of
the wrong type, are not UTF-8 or are HTML, on call, acall, stream and astream,
each checked for its typed error, its deadline, no secret in any text, the budget
released and the record written. This test makes sure no
first-party model type escapes it: each one has a conformance subclass that
pytest collects (a ``Test...`` class), and streaming types declare it.

The plugin test modules are read with ``ast``: they import their conftest
relatively, so they are pytest's to import, not ours.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from modelwire import ModelWrapper
from modelwire.plugins import FIRST_PARTY_TYPES, plugin_manager

PLUGIN_TESTS = Path(__file__).resolve().parent.parent / "plugins"


def _suites() -> dict[str, dict[str, Any]]:
    """model_type -> the class attributes of the collected conformance class declaring it."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(PLUGIN_TESTS.glob("*/test_*_conformance.py")):
        classes: dict[str, tuple[list[str], dict[str, Any]]] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                attrs = {
                    target.id: stmt.value.value
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                    for target in stmt.targets
                    if isinstance(target, ast.Name)
                }
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                classes[node.name] = (bases, attrs)

        for name, (_, attrs) in classes.items():
            chain = _lineage(name, classes)
            if name.startswith("Test") and "ConformanceSuite" in chain and "model_type" in attrs:
                merged: dict[str, Any] = {}
                for ancestor in reversed(chain[:-1]):
                    merged.update(classes[ancestor][1])
                found[attrs["model_type"]] = merged
    return found


def _lineage(name: str, classes: dict[str, tuple[list[str], dict[str, Any]]]) -> list[str]:
    """A class and its first bases, up to one defined outside the module."""
    chain = [name]
    while chain[-1] in classes and classes[chain[-1]][0]:
        chain.append(classes[chain[-1]][0][0])
    return chain


def test_every_first_party_type_runs_the_conformance_suite() -> None:
    manager = plugin_manager()
    canonical = {manager.resolve(name).model_type for name in FIRST_PARTY_TYPES}
    assert canonical - set(_suites()) == set()


def test_streaming_types_declare_it() -> None:
    manager = plugin_manager()
    for model_type, attrs in _suites().items():
        wrapper = manager.resolve(model_type).load_class()
        declared = wrapper.supports_stream  # a class attribute, or a property of the config
        if isinstance(declared, property):
            declared = wrapper._send_stream is not ModelWrapper._send_stream
        assert attrs.get("streams", False) == declared, model_type
