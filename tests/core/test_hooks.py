"""modelwire's hooks are pluggy's: the marker, the manager, wrappers and ordering."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pluggy
import pytest

import modelwire
from modelwire import ModelResponse, ModelWrapper, hookimpl
from modelwire import records as records_module
from modelwire.plugins import PluginManager
from modelwire.testing.distributions import last_json, make_distribution, run_python


class Echo(ModelWrapper):
    def __init__(self, config_name: str, *, model_name: str = "m", **kwargs: Any) -> None:
        super().__init__(config_name, **kwargs)
        self.model_name = model_name

    def _send(self, request: dict[str, Any]) -> str:
        return str(request["input"])

    def _parse(self, reply: str, request: dict[str, Any]) -> ModelResponse:
        return ModelResponse(text=reply)


def _manager() -> PluginManager:
    return PluginManager(load_entry_points=False).discover()


def _wrapper(manager: PluginManager) -> Echo:
    wrapper = Echo("echo")
    wrapper.hooks = manager.hook
    return wrapper


def test_marker_and_manager_are_pluggys() -> None:
    assert isinstance(hookimpl, pluggy.HookimplMarker)
    assert hookimpl.project_name == "modelwire"
    assert isinstance(modelwire.plugin_manager(), pluggy.PluginManager)
    names = {name for name in dir(modelwire.plugin_manager().hook) if name.startswith("on_")}
    assert names == {"on_call_start", "on_call_end", "on_call_error"}


def test_call_order_is_pluggys_tryfirst_then_last_registered() -> None:
    manager = _manager()
    seen: list[str] = []

    def observer(label: str, **options: Any) -> object:
        class Observer:
            @hookimpl(**options)
            def on_call_start(self, call: Any) -> None:
                seen.append(label)

        return Observer()

    manager.add_plugin(observer("first", tryfirst=True), name="a")
    manager.add_plugin(observer("plain-early"), name="b")
    manager.add_plugin(observer("plain-late"), name="c")
    manager.add_plugin(observer("last", trylast=True), name="d")
    _wrapper(manager)("x")
    assert seen == ["first", "plain-late", "plain-early", "last"]


def test_wrapper_and_hookwrapper_implementations_wrap_the_hook() -> None:
    manager = _manager()
    seen: list[str] = []

    class Timing:
        @hookimpl(wrapper=True)
        def on_call_end(self, call: Any, response: ModelResponse) -> Any:
            seen.append("wrapper-before")
            result = yield
            seen.append("wrapper-after")
            return result

        @hookimpl(hookwrapper=True)
        def on_call_start(self, call: Any) -> Any:
            seen.append("old-style-before")
            yield
            seen.append("old-style-after")

    manager.add_plugin(Timing(), name="timing")
    assert _wrapper(manager)("x").text == "x"
    assert seen == ["old-style-before", "old-style-after", "wrapper-before", "wrapper-after"]


def _traced_call(manager: PluginManager) -> str:
    """pluggy's trace of one call, as text."""
    traced: list[Any] = []
    manager.trace.root.setwriter(traced.append)
    undo = manager.enable_tracing()
    try:
        _wrapper(manager)("x")
    finally:
        undo()
    return "".join(str(line) for line in traced)


def test_trace_shows_hook_calls() -> None:
    manager = _manager()

    class Listener:
        @hookimpl
        def on_call_start(self, call: Any) -> None: ...

    manager.add_plugin(Listener(), name="listener")
    assert "on_call_start" in _traced_call(manager)


def test_a_hook_no_plugin_implements_is_not_called() -> None:
    assert _traced_call(_manager()) == ""  # records are off: nothing listens


def test_the_records_plugin_listens_only_while_records_are_on(tmp_path: Path) -> None:
    manager = _manager()
    records_module.configure(tmp_path / "calls.jsonl")
    try:
        traced = _traced_call(manager)  # the records plugin implements the end hooks only
        assert "on_call_end" in traced
        assert "on_call_start" not in traced
    finally:
        records_module.configure(None)
    assert _traced_call(manager) == ""
    assert (tmp_path / "calls.jsonl").read_text(encoding="utf-8").count("\n") == 1
    records = [info for info in manager.plugins if info.name == "records"]
    assert [info.distribution for info in records] == ["modelwire (built-in)"]


def test_an_argument_the_hook_does_not_provide_marks_the_plugin_broken() -> None:
    manager = _manager()

    class Wrong:
        @hookimpl
        def on_call_end(self, call: Any, nonsense: Any) -> None: ...

    info = manager.add_plugin(Wrong(), name="wrong")
    assert info.error is not None and "nonsense" in info.error
    assert _wrapper(manager)("x").text == "x"


def test_unknown_hook_is_a_warning_unless_optional(caplog: pytest.LogCaptureFixture) -> None:
    manager = _manager()

    class Future:
        @hookimpl
        def on_call_retry(self, call: Any) -> None: ...

    class Optional:
        @hookimpl(optionalhook=True)
        def on_call_later(self, call: Any) -> None: ...

    with caplog.at_level(logging.WARNING, logger="modelwire"):
        manager.add_plugin(Future(), name="future")
        manager.add_plugin(Optional(), name="optional")
    assert "on_call_retry" in caplog.text and "on_call_later" not in caplog.text


def test_an_observer_that_raises_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    manager = _manager()

    class Broken:
        @hookimpl
        def on_call_end(self, call: Any, response: ModelResponse) -> None:
            raise RuntimeError("observer bug")

    manager.add_plugin(Broken(), name="broken")
    with caplog.at_level(logging.ERROR, logger="modelwire"):
        assert _wrapper(manager)("x").text == "x"
    assert "observer bug" in caplog.text


def test_a_class_registered_without_model_type_gets_its_type() -> None:
    manager = _manager()

    class Local:
        @hookimpl
        def register_model_types(self, register: Any) -> None:
            register("nameless_echo", "tests_core_nameless:Nameless")

    import sys
    import types

    module = types.ModuleType("tests_core_nameless")

    class Nameless(Echo):
        pass

    module.Nameless = Nameless  # type: ignore[attr-defined]
    sys.modules["tests_core_nameless"] = module
    try:
        manager.add_plugin(Local(), name="local")
        assert manager.resolve("nameless_echo").load_class().model_type == "nameless_echo"
    finally:
        del sys.modules["tests_core_nameless"]


def test_a_third_party_wrapper_hook_with_tryfirst_works_through_an_entry_point(
    tmp_path: Path,
) -> None:
    make_distribution(
        tmp_path,
        "timing-plugin",
        {
            "timing_plugin.plugin": """
                import time
                from modelwire import ModelResponse, ModelWrapper, hookimpl

                SEEN = []

                class Echo(ModelWrapper):
                    def __init__(self, config_name, *, model_name: str = "m", **kwargs):
                        super().__init__(config_name, **kwargs)
                        self.model_name = model_name
                    def _send(self, request):
                        return request["input"]
                    def _parse(self, reply, request):
                        return ModelResponse(text=reply)

                @hookimpl
                def register_model_types(register):
                    register("timed_echo", "timing_plugin.plugin:Echo")

                @hookimpl(wrapper=True, tryfirst=True)
                def on_call_end(call, response):
                    started = time.perf_counter()
                    result = yield
                    SEEN.append(["end", call.config_name, response.text,
                                 time.perf_counter() - started >= 0])
                    return result

                @hookimpl(tryfirst=True)
                def on_call_start(call):
                    SEEN.append(["start", call.config_name])
            """,
        },
        "[modelwire]\ntiming = timing_plugin.plugin\n",
    )
    code = """
import json, modelwire
modelwire.init([{"config_name": "t", "model_type": "timed_echo"}])
text = modelwire.load_model("t")("hello").text
from timing_plugin.plugin import SEEN
plugins = modelwire.plugin_manager().plugins
info = [p.to_dict() for p in plugins if p.distribution == "timing-plugin"]
print(json.dumps({"text": text, "seen": SEEN, "info": info}))
"""
    out = last_json(run_python(code, tmp_path))
    assert out["text"] == "hello"
    assert out["seen"] == [["start", "t"], ["end", "t", "hello", True]]
    assert out["info"][0]["status"] == "ok"
