"""Config loading and validation: every error names its config and key, all at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import modelwire
from modelwire import ConfigError, ModelRegistry, UnknownModelTypeError
from modelwire.plugins import PluginManager
from modelwire.testing import FakeServer


def reverse(name: str = "rev", **params: Any) -> dict[str, Any]:
    return {"config_name": name, "model_type": "reverse_echo", "model_name": "reverse-1", **params}


def test_dict_list_and_json_file_are_accepted(tmp_path: Path) -> None:
    assert list(ModelRegistry(reverse("a"))) == ["a"]
    assert list(ModelRegistry([reverse("a"), reverse("b")])) == ["a", "b"]
    path = tmp_path / "configs.json"
    path.write_text(json.dumps([reverse("a"), reverse("b")]))
    assert list(ModelRegistry(path)) == ["a", "b"]
    assert list(ModelRegistry(str(path))) == ["a", "b"]


def test_yaml_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "configs.yaml"
    path.write_text(
        "- config_name: y\n  model_type: reverse_echo\n  model_name: reverse-1\n  timeout: 3\n"
    )
    registry = ModelRegistry(path)
    assert registry.config("y").params == {"model_name": "reverse-1", "timeout": 3}


def test_missing_file_invalid_json_and_wrong_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ModelRegistry(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"config_name": "x",}]')
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1"):
        ModelRegistry(bad)
    scalar = tmp_path / "scalar.json"
    scalar.write_text("42")
    with pytest.raises(ConfigError, match="holds an object or a list of objects"):
        ModelRegistry(scalar)
    with pytest.raises(ConfigError, match="not int"):
        ModelRegistry(42)  # type: ignore[arg-type]


def test_missing_config_name_and_model_type() -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([{"model_type": "reverse_echo", "model_name": "x"}, {"config_name": "b"}])
    keys = {(issue.config_name, issue.key) for issue in info.value.issues}
    assert ("#0", "config_name") in keys
    assert ("b", "model_type") in keys


def test_non_object_config_is_named_by_index() -> None:
    with pytest.raises(ConfigError, match=r"config '#1': a config is an object, not list"):
        ModelRegistry([reverse("a"), [1, 2]])


def test_unknown_parameter_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([{"config_name": "a", "model_type": "reverse_echo", "model": "reverse-1"}])
    message = str(info.value)
    assert "config 'a', key 'model': unknown parameter" in message
    assert "did you mean 'model_name'?" in message
    assert "config 'a', key 'model_name': missing required parameter" in message


def test_unknown_parameter_without_close_match_lists_accepted_keys() -> None:
    with pytest.raises(
        ConfigError,
        match=r"accepted: model_name, base_url, api_key, retry, timeout, stream_idle_timeout,"
        r" max_response_bytes, budget, pricing",
    ):
        ModelRegistry([reverse(zzz=1)])


def test_wrong_types_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([reverse(timeout="soon", budget=True, base_url=3)])
    issues = {issue.key: issue.message for issue in info.value.issues}
    assert issues["timeout"] == "expected float or null, got str"
    assert issues["budget"] == "expected float or null, got bool"
    assert issues["base_url"] == "expected str, got int"


def test_core_keys_are_checked_deeply() -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry(
            [
                reverse(
                    retry={"max_retry": 2, "initial_delay": "x"},
                    pricing={"prompt": -1},
                    timeout=0,
                )
            ]
        )
    issues = {issue.key: issue.message for issue in info.value.issues}
    assert issues["retry.max_retry"] == "unknown key 'max_retry'; did you mean 'max_retries'?"
    assert issues["retry.initial_delay"] == "expected float, got str"
    assert issues["timeout"] == "must be a number of seconds above 0 and at most 86400"
    assert issues["pricing.prompt"] == "must be finite and not negative"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("timeout", 1e10, "must be a number of seconds above 0 and at most 86400"),
        ("stream_idle_timeout", 1e300, "must be a number of seconds above 0 and at most 86400"),
        ("stream_idle_timeout", -1, "must be a number of seconds above 0 and at most 86400"),
        ("max_response_bytes", 0, "must be a number of bytes from 1 to 2**40"),
    ],
)
def test_huge_or_zero_limits_are_refused_at_load(key: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([reverse(**{key: value})])
    assert {issue.key: issue.message for issue in info.value.issues} == {key: message}


@pytest.mark.parametrize(
    ("key", "value", "ceiling"),
    [("initial_delay", 1e300, "3600"), ("max_delay", 1e10, "3600"), ("max_retries", 10**6, "100")],
)
def test_huge_retry_settings_are_refused_at_load(key: str, value: float, ceiling: str) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([reverse(retry={key: value})])
    messages = {issue.key: issue.message for issue in info.value.issues}
    assert messages == {f"retry.{key}": f"must be at most {ceiling}"}


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_infinite_or_nan_numbers_rejected(value: float) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([reverse(timeout=value, budget=value, retry={"max_delay": value})])
    keys = {issue.key for issue in info.value.issues}
    assert keys == {"timeout", "budget", "retry.max_delay"}


def test_negative_pricing_rejected() -> None:
    with pytest.raises(ConfigError, match=r"key .pricing.prompt.: must be finite and not negative"):
        ModelRegistry([reverse(pricing={"prompt": -1.0, "completion": 0.0})])


def test_duplicate_config_name_in_batch_and_across_adds() -> None:
    with pytest.raises(ConfigError, match=r"config 'a', key 'config_name': duplicate config_name"):
        ModelRegistry([reverse("a"), reverse("a")])
    registry = ModelRegistry([reverse("a")])
    with pytest.raises(ConfigError, match="duplicate config_name"):
        registry.add([reverse("a")])
    registry.add([reverse("a", timeout=9)], replace=True)
    assert registry.config("a").params["timeout"] == 9


def test_all_errors_of_a_file_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    path.write_text(
        json.dumps(
            [
                reverse("one", model_nme="x"),
                {"config_name": "two", "model_type": "revers_echo"},
                reverse("three", timeout=[1]),
            ]
        )
    )
    with pytest.raises(ConfigError) as info:
        ModelRegistry(path)
    message = str(info.value)
    assert message.startswith(f"3 problems in {path}:")
    assert [(i.config_name, i.key) for i in info.value.issues] == [
        ("one", "model_nme"),
        ("two", "model_type"),
        ("three", "timeout"),
    ]
    assert len(message.splitlines()) == 4  # the heading, then one line per problem
    assert "did you mean 'reverse_echo'?" in message


def test_nothing_is_added_unless_all_configs_are_valid() -> None:
    registry = ModelRegistry()
    with pytest.raises(ConfigError):
        registry.add([reverse("good"), reverse("bad", nope=1)])
    assert list(registry) == []


def test_unknown_model_type_hints_first_party_distribution() -> None:
    nothing_installed = PluginManager(load_entry_points=False)
    with pytest.raises(UnknownModelTypeError) as info:
        ModelRegistry(
            [{"config_name": "g", "model_type": "gemini_chatt", "model_name": "x"}],
            plugins=nothing_installed,
        )
    message = str(info.value)
    assert "unknown model_type 'gemini_chatt'; did you mean 'gemini_chat'?" in message
    assert "pip install modelwire-gemini" in message
    assert isinstance(info.value, ConfigError)


def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MW_TEST_URL", "http://127.0.0.1:9")
    registry = ModelRegistry(
        [reverse(base_url="${MW_TEST_URL}/x", api_key="${MW_UNSET_VAR:-fallback-key}")]
    )
    params = registry.config("rev").params
    assert params["base_url"] == "http://127.0.0.1:9/x"
    assert params["api_key"] == "fallback-key"
    assert ModelRegistry([reverse(base_url="cost $$5")]).config("rev").params["base_url"] == (
        "cost $5"
    )


def test_missing_env_var_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"key 'api_key': environment variable MW_NOT_SET_X"):
        ModelRegistry([reverse(api_key="${MW_NOT_SET_X}")])


def test_budget_without_known_price_asks_for_pricing() -> None:
    with pytest.raises(ConfigError, match=r'key \'budget\': no price is known .* "pricing"'):
        ModelRegistry([{**reverse(), "model_name": "unknown-model", "budget": 1.0}])
    ModelRegistry([{**reverse(), "model_name": "unknown-model", "budget": 1.0, "pricing": {}}])
    ModelRegistry([reverse(budget=1.0)])  # reverse-1 is in the plugin's price table


def test_load_model_unknown_name_suggests(server: FakeServer) -> None:
    registry = ModelRegistry([reverse("my-model")])
    with pytest.raises(ConfigError, match=r"no config named 'my-modle'; did you mean 'my-model'"):
        registry.load_model("my-modle")
    with pytest.raises(ConfigError, match="no configs are loaded"):
        ModelRegistry().load_model("x")


def test_load_model_returns_one_wrapper_per_config() -> None:
    registry = ModelRegistry([reverse("a")])
    assert registry.load_model("a") is registry.load_model("a")


def test_global_init_and_load_model_like_the_seed() -> None:
    modelwire.init(model_configs=[reverse("seed-style")], clear_existing=True)
    try:
        model = modelwire.load_model("seed-style")
        assert model.config_name == "seed-style"
        assert modelwire.load_model_by_config_name("seed-style") is model
        modelwire.read_model_configs([reverse("other")])
        assert "other" in modelwire.default_registry()
    finally:
        modelwire.default_registry().clear()


def test_repr_of_config_hides_secrets() -> None:
    registry = ModelRegistry([reverse(api_key="super-secret-value-123")])
    assert "super-secret-value-123" not in repr(registry.config("rev"))
    assert "***" in repr(registry.config("rev"))
