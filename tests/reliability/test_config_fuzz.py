"""Config fuzzing: arbitrary JSON-like input gives a ConfigError or a working wrapper.

Run over every installed model type, so third-party and first-party plugins alike
are held to it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelwire import ConfigError, ModelRegistry
from modelwire.plugins import plugin_manager
from modelwire.schema import wrapper_schema
from modelwire.wrapper import ModelWrapper

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def installed_types() -> list[str]:
    manager = plugin_manager()
    return sorted({r.model_type for r in manager.types.values()})


def build_all(configs: Any) -> None:
    """Load and build; a constructor crash behind a valid config is a validation gap."""
    registry = ModelRegistry(configs)
    for name in registry:
        try:
            assert isinstance(registry.load_model(name), ModelWrapper)
        except ConfigError as error:
            # A deliberate ConfigError (e.g. no API key in the environment) is fine; a raw
            # exception from the constructor, wrapped by the registry, is a validation gap.
            assert "could not be built" not in str(error), str(error)


@FUZZ
@given(json_values)
def test_any_model_configs_value(value: Any) -> None:
    try:
        build_all(value)
    except ConfigError:
        pass


@pytest.mark.parametrize("model_type", installed_types())
def test_any_parameters_of_each_type(model_type: str) -> None:
    schema = wrapper_schema(plugin_manager().resolve(model_type).load_class())
    keys = st.sampled_from(sorted(schema)) | st.text(max_size=10)

    @FUZZ
    @given(st.dictionaries(keys, json_values, max_size=6))
    def fuzz(params: dict[str, Any]) -> None:
        config = {**params, "config_name": "fuzzed", "model_type": model_type}
        try:
            json.dumps(config)
        except (TypeError, ValueError):
            return
        try:
            build_all([config])
        except ConfigError:
            pass

    fuzz()


@pytest.mark.parametrize("model_type", installed_types())
def test_right_keys_with_wrong_values(model_type: str) -> None:
    """Every declared parameter, filled with values of every JSON kind."""
    schema = wrapper_schema(plugin_manager().resolve(model_type).load_class())
    samples = [None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"k": "v"}]
    for key in schema:
        for value in samples:
            try:
                build_all([{"config_name": "c", "model_type": model_type, key: value}])
            except ConfigError:
                pass
