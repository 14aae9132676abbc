"""modelwire's hook manager against pluggy itself: same markers, same order, same rules.

Discovery reads hook implementations without importing pluggy; these tests build
the same plugins with pluggy's own ``PluginManager`` and compare what it does.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import pluggy
import pytest

from modelwire import hookspecs
from modelwire.plugins import PluginManager, hookimpl
from modelwire.schema import _REQUIRED, _named_parameters
from modelwire.testing.distributions import last_json, run_python

pluggy_hookimpl = pluggy.HookimplMarker("modelwire")


def _bare_manager() -> PluginManager:
    return PluginManager(load_entry_points=False).discover()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tryfirst": True},
        {"trylast": True},
        {"optionalhook": True, "specname": "on_call_end"},
        {"wrapper": True},
        {"hookwrapper": True},
    ],
)
def test_markers_write_what_pluggys_write(options: dict[str, Any]) -> None:
    def ours() -> None: ...

    def theirs() -> None: ...

    if options:
        hookimpl(**options)(ours)
        pluggy_hookimpl(**options)(theirs)
    else:
        hookimpl(ours)
        pluggy_hookimpl(theirs)
    assert ours.modelwire_impl == theirs.modelwire_impl  # type: ignore[attr-defined]


def test_spec_markers_and_argument_names_match_pluggy() -> None:
    def spec() -> None: ...

    pluggy.HookspecMarker("modelwire")(spec)
    assert hookspecs.on_call_end.modelwire_spec == spec.modelwire_spec  # type: ignore[attr-defined]
    reference = pluggy.PluginManager("modelwire")
    reference.add_hookspecs(hookspecs)
    assert hookspecs.specs() == {
        name: getattr(reference.hook, name).spec.argnames for name in hookspecs.specs()
    }
    assert set(hookspecs.specs()) == {
        "register_model_types",
        "register_commands",
        "on_call_start",
        "on_call_end",
        "on_call_error",
    }


def _observer(label: str, seen: list[str], marker: Any, **options: Any) -> object:
    class Observer:
        def __repr__(self) -> str:
            return label

    def on_call_start(call: Any) -> None:
        seen.append(label)

    function = marker(**options)(on_call_start) if options else marker(on_call_start)
    plugin = Observer()
    plugin.on_call_start = function  # type: ignore[attr-defined]
    return plugin


def test_call_order_is_pluggys() -> None:
    layout = [
        ("a", {}),
        ("b", {"tryfirst": True}),
        ("c", {"trylast": True}),
        ("d", {}),
        ("e", {"tryfirst": True}),
        ("f", {"trylast": True}),
        ("g", {}),
    ]
    ours: list[str] = []
    manager = _bare_manager()
    for label, options in layout:
        manager.register(_observer(label, ours, hookimpl, **options), name=label)
    manager.dispatch("on_call_start", call=None)

    theirs: list[str] = []
    reference = pluggy.PluginManager("modelwire")
    reference.add_hookspecs(hookspecs)
    for label, options in layout:
        reference.register(_observer(label, theirs, pluggy_hookimpl, **options), name=label)
    reference.hook.on_call_start(call=None)

    assert ours == theirs
    assert ours == ["e", "b", "g", "d", "a", "c", "f"]  # not the registration order


def test_implementation_may_take_fewer_arguments_than_the_hook() -> None:
    seen: list[Any] = []
    plugin = ModuleType("partial_observer")

    @hookimpl
    def on_call_end(response):  # type: ignore[no-untyped-def]
        seen.append(response)

    plugin.on_call_end = on_call_end  # type: ignore[attr-defined]
    manager = _bare_manager()
    info = manager.register(plugin)
    assert info.ok
    manager.dispatch("on_call_end", call="the call", response="the response")
    assert seen == ["the response"]


def test_argument_the_hook_does_not_provide_marks_the_plugin_broken() -> None:
    class Wrong:
        @hookimpl
        def on_call_end(self, call, reply):  # type: ignore[no-untyped-def]
            raise AssertionError("never called")

    manager = _bare_manager()
    info = manager.register(Wrong(), name="wrong")
    assert info.error is not None
    assert "'reply'" in info.error and "passes only: call, response" in info.error
    manager.dispatch("on_call_end", call=None, response=None)  # not registered: no error

    reference = pluggy.PluginManager("modelwire")
    reference.add_hookspecs(hookspecs)
    with pytest.raises(pluggy.PluginValidationError):  # pluggy refuses it too
        reference.register(Wrong(), name="wrong")


def test_wrappers_are_refused_with_the_reason() -> None:
    class Wrapping:
        @hookimpl(wrapper=True)
        def on_call_start(self, call):  # type: ignore[no-untyped-def]
            yield

    info = _bare_manager().register(Wrapping(), name="wrapping")
    assert info.error is not None and "wrapper=True and hookwrapper=True are not supported" in (
        info.error
    )


def test_unknown_hook_is_a_warning_unless_optional(caplog: pytest.LogCaptureFixture) -> None:
    class Typo:
        @hookimpl
        def on_call_ended(self, call):  # type: ignore[no-untyped-def]
            pass

        @hookimpl(optionalhook=True)
        def on_future_event(self, call):  # type: ignore[no-untyped-def]
            pass

    with caplog.at_level(logging.WARNING, logger="modelwire"):
        info = _bare_manager().register(Typo(), name="typo")
    assert info.ok
    assert "implements 'on_call_ended', which is not a modelwire hook" in caplog.text
    assert "on_future_event" not in caplog.text


def test_descriptors_are_not_triggered_and_static_class_methods_count() -> None:
    calls: list[str] = []

    class Plugin:
        @property
        def on_call_error(self) -> Any:
            raise AssertionError("a property must not be evaluated")

        @staticmethod
        @hookimpl
        def on_call_start(call):  # type: ignore[no-untyped-def]
            calls.append("static")

        @classmethod
        @hookimpl
        def on_call_end(cls, call, response):  # type: ignore[no-untyped-def]
            calls.append(cls.__name__)

    manager = _bare_manager()
    assert manager.register(Plugin(), name="descriptors").ok
    manager.dispatch("on_call_start", call=None)
    manager.dispatch("on_call_end", call=None, response=None)
    assert calls == ["static", "Plugin"]


def test_same_plugin_twice_and_unregister() -> None:
    seen: list[str] = []
    plugin = _observer("x", seen, hookimpl)
    manager = _bare_manager()
    assert manager.register(plugin, name="x").ok
    again = manager.register(plugin, name="x-again")
    assert again.error is not None and "already registered" in again.error
    manager.dispatch("on_call_start", call=None)
    manager.unregister(plugin)
    manager.dispatch("on_call_start", call=None)
    assert seen == ["x"]
    assert manager.register(plugin, name="x").ok  # registrable again once removed


def test_pluggy_markers_are_discovered_too(manager: PluginManager) -> None:
    """Third-party plugins written with pluggy's marker (DESIGN.md's form) still load."""
    plugin = ModuleType("pluggy_marked")

    @pluggy_hookimpl
    def register_model_types(register):  # type: ignore[no-untyped-def]
        register("pluggy_marked_type", "json:JSONDecoder")

    plugin.register_model_types = register_model_types  # type: ignore[attr-defined]
    info = manager.register(plugin)
    assert info.ok and info.model_types == ["pluggy_marked_type"]


def test_start_up_imports_neither_pluggy_nor_inspect() -> None:
    code = """
import json, sys
from pathlib import Path
import modelwire
from modelwire.plugins import get_manager
manager = get_manager()
seed = Path(modelwire.__file__).parents[3] / "examples" / "model_configs.json"
modelwire.init(model_configs=str(seed))
print(json.dumps([sorted(m for m in sys.modules if m in ("pluggy", "inspect")),
                  sorted(manager.types), [p.error for p in manager.plugins if not p.ok]]))
"""
    heavy, types, broken = last_json(run_python(code))  # type: ignore[misc]
    assert heavy == []
    assert {"openai", "dashscope_chat", "gemini_chat", "ollama_chat", "post_api"} <= set(types)
    assert broken == []


def _reference(function: Any) -> list[tuple[str, Any]]:
    import inspect

    return [
        (p.name, "REQUIRED" if p.default is p.empty else p.default)
        for p in inspect.signature(function).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _shapes() -> list[Any]:
    def plain(self, a, b: int = 2, *, c, d: str = "d", **kwargs): ...  # type: ignore[no-untyped-def]

    def positional_only(self, a, /, b=None, *args, e=5): ...  # type: ignore[no-untyped-def]

    def nothing(self): ...  # type: ignore[no-untyped-def]

    def wrapped(self, z: int = 1): ...  # type: ignore[no-untyped-def]

    import functools

    @functools.wraps(wrapped)
    def wrapper(*args, **kwargs): ...  # type: ignore[no-untyped-def]

    return [plain, positional_only, nothing, wrapper, dict.__init__]


@pytest.mark.parametrize("function", _shapes(), ids=lambda f: getattr(f, "__name__", "?"))
def test_parameter_reader_agrees_with_inspect(function: Any) -> None:
    ours = [
        (name, "REQUIRED" if default is _REQUIRED else default)
        for name, default in _named_parameters(function)
    ]
    assert ours == _reference(function)
