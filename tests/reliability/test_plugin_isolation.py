"""Plugin isolation through real entry points.

Broken, duplicate and mistyped plugins are reported and never take the others down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelwire import PluginError, UnknownModelTypeError
from modelwire.plugins import PluginManager
from modelwire.testing.distributions import last_json, make_distribution, run_python

GOOD_PLUGIN = """
import pluggy
hookimpl = pluggy.HookimplMarker("modelwire")

@hookimpl
def register_model_types(register):
    register("good_type", "good_pkg.wrapper:GoodWrapper", aliases=("good_alias",))
"""
GOOD_WRAPPER = """
from modelwire.wrapper import ModelWrapper
from modelwire.response import ModelResponse

class GoodWrapper(ModelWrapper):
    model_type = "good_type"
    def __init__(self, config_name, *, model_name: str, **kwargs):
        super().__init__(config_name, **kwargs)
        self.model_name = model_name
    def _send(self, request):
        return request["input"].upper()
    def _parse(self, reply, request):
        return ModelResponse(text=reply, raw={})
"""

REPORT = """
import json, modelwire
from modelwire.plugins import plugin_manager
m = plugin_manager()
out = {"plugins": {p.distribution: p.error for p in m.plugins}, "types": sorted(m.types)}
try:
    model = modelwire.ModelRegistry([{"config_name": "g", "model_type": "good_type",
                                      "model_name": "x"}]).load_model("g")
    out["good_call"] = model("hi").text
except Exception as exc:
    out["good_call"] = repr(exc)
try:
    modelwire.ModelRegistry([{"config_name": "b", "model_type": TYPE, "model_name": "x"}])
    out["bad"] = None
except Exception as exc:
    out["bad"] = [type(exc).__name__, str(exc), getattr(exc, "distribution", None)]
print(json.dumps(out))
"""


def _with_good(root: Path) -> None:
    make_distribution(
        root,
        "good-plugin",
        {"good_pkg.plugin": GOOD_PLUGIN, "good_pkg.wrapper": GOOD_WRAPPER},
        "[modelwire]\ngood = good_pkg.plugin\n",
    )


def test_plugin_raising_at_import_is_isolated(tmp_path: Path) -> None:
    _with_good(tmp_path)
    make_distribution(
        tmp_path,
        "modelwire-gemini",  # pretend the first-party provider is broken
        {"broken_pkg.plugin": "raise RuntimeError('kaboom at import')\n"},
        "[modelwire]\ngemini = broken_pkg.plugin\n",
    )
    out = last_json(run_python(REPORT.replace("TYPE", "'gemini_chat'"), tmp_path))
    assert out["plugins"]["modelwire-gemini"] == "RuntimeError: kaboom at import"
    assert out["plugins"]["good-plugin"] is None
    assert out["good_call"] == "HI"
    kind, message, distribution = out["bad"]
    assert kind == "PluginError"
    assert distribution == "modelwire-gemini"
    assert "failed to load: RuntimeError: kaboom at import" in message


def test_broken_third_party_plugin_is_named_for_unknown_types(tmp_path: Path) -> None:
    _with_good(tmp_path)
    make_distribution(
        tmp_path,
        "acme-models",
        {"acme.plugin": "import not_a_module_anywhere\n"},
        "[modelwire]\nacme = acme.plugin\n",
    )
    out = last_json(run_python(REPORT.replace("TYPE", "'acme_chat'"), tmp_path))
    assert out["good_call"] == "HI"
    kind, message, _ = out["bad"]
    assert kind == "UnknownModelTypeError"
    assert "acme-models (ModuleNotFoundError" in message


def test_duplicate_registration_names_both_distributions(tmp_path: Path) -> None:
    _with_good(tmp_path)
    make_distribution(
        tmp_path,
        "copycat-plugin",
        {"copycat.plugin": GOOD_PLUGIN.replace("good_pkg.wrapper", "copycat.wrapper")},
        "[modelwire]\ncopycat = copycat.plugin\n",
    )
    out = last_json(run_python(REPORT.replace("TYPE", "'good_type'"), tmp_path))
    kind, message, _ = out["bad"]
    assert kind == "PluginError"
    assert "registered by more than one distribution" in message
    assert "good-plugin" in message and "copycat-plugin" in message
    assert "good_type" not in out["types"]
    assert "reverse_echo" in out["types"]  # the rest keep working
    cli = run_python(
        "from modelwire.cli import main; raise SystemExit(main(['types', '--json']))", tmp_path
    )
    types = {row["model_type"]: row for row in last_json_blob(cli.stdout)}
    assert types["good_type"]["distribution"] == "copycat-plugin + good-plugin"


def last_json_blob(text: str) -> list[dict[str, object]]:
    import json

    return json.loads(text)


def test_wrong_wrapper_class_path_is_a_plugin_error(tmp_path: Path) -> None:
    make_distribution(
        tmp_path,
        "typo-plugin",
        {"typo.plugin": GOOD_PLUGIN.replace("good_pkg.wrapper:GoodWrapper", "typo.nowhere:Nope")},
        "[modelwire]\ntypo = typo.plugin\n",
    )
    out = last_json(run_python(REPORT.replace("TYPE", "'good_type'"), tmp_path))
    kind, message, distribution = out["bad"]
    assert kind == "PluginError"
    assert distribution == "typo-plugin"
    assert "'typo.nowhere:Nope', which cannot be imported: ModuleNotFoundError" in message


def test_register_hook_raising_marks_plugin_broken(tmp_path: Path) -> None:
    source = """
import pluggy
hookimpl = pluggy.HookimplMarker("modelwire")
@hookimpl
def register_model_types(register):
    register("half_type", "x.y:Z")
    raise ValueError("registration failed half-way")
"""
    make_distribution(
        tmp_path, "half-plugin", {"half.plugin": source}, "[modelwire]\nh = half.plugin\n"
    )
    out = last_json(run_python(REPORT.replace("TYPE", "'half_type'"), tmp_path))
    assert out["plugins"]["half-plugin"] == "ValueError: registration failed half-way"
    assert "half_type" not in out["types"]
    assert out["bad"][0] == "UnknownModelTypeError"


def test_target_that_is_not_a_wrapper(manager: PluginManager) -> None:
    class Local:
        from modelwire import hookimpl

        @hookimpl
        def register_model_types(self, register):  # type: ignore[no-untyped-def]
            register("not_a_wrapper", "json:JSONDecoder")

    manager.add_plugin(Local(), name="local")
    with pytest.raises(PluginError, match=r"is not a modelwire\.ModelWrapper subclass"):
        manager.resolve("not_a_wrapper").load_class()


def test_invalid_registration_arguments(manager: PluginManager) -> None:
    class Local:
        from modelwire import hookimpl

        @hookimpl
        def register_model_types(self, register):  # type: ignore[no-untyped-def]
            register("no_colon", "package.module.Class")

    info = manager.add_plugin(Local(), name="bad-target")
    assert info.error is not None and "must be an import string" in info.error


def test_unknown_type_lists_installed(manager: PluginManager) -> None:
    with pytest.raises(UnknownModelTypeError, match=r"Installed types: .*reverse_echo"):
        manager.resolve("qqqqqqqq")


def test_discovery_is_lazy_and_imports_no_wrapper_module() -> None:
    code = """
import json, sys
import modelwire
before = sorted(m for m in sys.modules if m.startswith(("pluggy", "modelwire_")))
from modelwire.plugins import plugin_manager
plugin_manager()
after = sorted(m for m in sys.modules if m.startswith("modelwire_reverse_echo"))
print(json.dumps([before, after]))
"""
    before, after = last_json(run_python(code))
    assert before == []
    assert after == ["modelwire_reverse_echo", "modelwire_reverse_echo.plugin"]


def test_lifecycle_hook_failure_does_not_fail_the_call(server, caplog) -> None:  # type: ignore[no-untyped-def]
    from modelwire import ModelRegistry, hookimpl
    from modelwire.plugins import plugin_manager
    from modelwire.testing import Reply

    class Exploding:
        @hookimpl
        def on_call_start(self, call):  # type: ignore[no-untyped-def]
            raise RuntimeError("observer bug")

    server.route(
        "POST",
        "/v1/reverse",
        Reply.json({"output": "x", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )
    manager = plugin_manager()
    plugin = Exploding()
    manager.register(plugin, name="exploding")
    try:
        model = ModelRegistry(
            [
                {
                    "config_name": "r",
                    "model_type": "reverse_echo",
                    "model_name": "reverse-1",
                    "base_url": server.url,
                }
            ]
        ).load_model("r")
        assert model("abc").text == "x"
        assert "observer bug" in caplog.text
    finally:
        manager.unregister(plugin)


def test_odd_metadata_of_other_distributions_does_not_stop_discovery(tmp_path: Path) -> None:
    _with_good(tmp_path)
    latin1 = tmp_path / "latin_one-1.0.dist-info"
    latin1.mkdir()
    (latin1 / "entry_points.txt").write_bytes(b"[console_scripts]\ncaf\xe9 = cafe:main\n")
    folder = tmp_path / "folder_named-1.0.dist-info" / "entry_points.txt"
    folder.mkdir(parents=True)  # a folder where the file should be
    (tmp_path / "no_entry_points-1.0.dist-info").mkdir()
    code = """
import json
from modelwire.plugins import _entry_points
print(json.dumps([[ep.dist.name, ep.name, ep.value] for ep in _entry_points()]))
"""
    found = last_json(run_python(code, tmp_path))
    assert ["good-plugin", "good", "good_pkg.plugin"] in found
    others = {distribution for distribution, *_ in found} - {"good-plugin"}
    assert not any(name.startswith(("latin", "folder", "no_")) for name in others)
