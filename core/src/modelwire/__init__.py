"""modelwire: call any model service through one small, dependable interface.

``import modelwire`` is kept cheap: plugins and every SDK load on first need.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ModelTimeoutError,
    ModelWireError,
    PluginError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
    UnknownModelTypeError,
    UnsupportedOperationError,
)
from modelwire.message import Msg
from modelwire.response import ModelChunk, ModelResponse, Usage

if TYPE_CHECKING:
    from modelwire.config import ConfigSource
    from modelwire.hookspecs import hookimpl
    from modelwire.registry import ModelRegistry
    from modelwire.wrapper import ModelWrapper

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ModelChunk",
    "ModelRegistry",
    "ModelResponse",
    "ModelTimeoutError",
    "ModelWireError",
    "ModelWrapper",
    "Msg",
    "PluginError",
    "ProviderError",
    "RateLimitError",
    "ResponseParseError",
    "ServiceUnavailableError",
    "UnknownModelTypeError",
    "UnsupportedOperationError",
    "Usage",
    "default_registry",
    "hookimpl",
    "init",
    "load_model",
    "load_model_by_config_name",
    "read_model_configs",
    "usage",
]

_registry: ModelRegistry | None = None
_registry_lock = threading.Lock()


def default_registry() -> ModelRegistry:
    """The registry behind ``init`` and ``load_model``."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                from modelwire.registry import ModelRegistry

                _registry = ModelRegistry()
    return _registry


def init(
    model_configs: ConfigSource | None = None,
    *,
    records: str | os.PathLike[str] | None = None,
    clear_existing: bool = False,
) -> None:
    """Load model configs (dict, list of dicts, or JSON/YAML path), as in the seed.

    ``records`` switches on JSONL invocation records at that path.
    """
    if records is not None:
        from modelwire import records as records_module

        records_module.configure(records)
    if clear_existing:
        default_registry().clear()
    if model_configs is not None:
        default_registry().add(model_configs)


def read_model_configs(model_configs: ConfigSource, clear_existing: bool = False) -> None:
    """The seed's name for ``init(model_configs=...)``."""
    init(model_configs, clear_existing=clear_existing)


def load_model(config_name: str) -> ModelWrapper:
    """The wrapper of a loaded config (one instance per config)."""
    return default_registry().load_model(config_name)


load_model_by_config_name = load_model


def usage() -> dict[str, dict[str, Any]]:
    """Calls, tokens and spend per config of the global registry."""
    return default_registry().usage()


def __getattr__(name: str) -> Any:
    if name == "ModelRegistry":
        from modelwire.registry import ModelRegistry

        return ModelRegistry
    if name == "ModelWrapper":
        from modelwire.wrapper import ModelWrapper

        return ModelWrapper
    if name == "hookimpl":
        from modelwire.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'modelwire' has no attribute {name!r}")
