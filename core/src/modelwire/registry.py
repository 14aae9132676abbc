"""``ModelRegistry``: validated configs and the one wrapper built for each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from modelwire.config import ConfigSource, ModelConfig, read_configs, validate_configs
from modelwire.errors import ConfigError, ConfigIssue, ModelWireError
from modelwire.plugins import PluginManager, plugin_manager
from modelwire.schema import did_you_mean
from modelwire.wrapper import ModelWrapper

__all__ = ["ModelRegistry"]


class ModelRegistry:
    """Configs by name, each turned into a wrapper on first use and kept.

    Keeping one wrapper per config means one connection pool and one budget per
    config, however many times ``load_model`` is called.
    """

    def __init__(
        self, model_configs: ConfigSource | None = None, *, plugins: PluginManager | None = None
    ) -> None:
        self._plugins = plugins
        self._configs: dict[str, ModelConfig] = {}
        self._wrappers: dict[str, ModelWrapper] = {}
        self._lock = threading.RLock()
        if model_configs is not None:
            self.add(model_configs)

    @property
    def plugins(self) -> PluginManager:
        if self._plugins is None:
            self._plugins = plugin_manager()
        return self._plugins.discover()

    def add(self, model_configs: ConfigSource, *, replace: bool = False) -> list[str]:
        """Validate and add configs; nothing is added unless all of them are valid."""
        items, source = read_configs(model_configs)
        with self._lock:
            taken = () if replace else self._configs.keys()
            configs = validate_configs(items, self.plugins, taken=taken, source=source)
            for config in configs:
                self._configs[config.config_name] = config
                replaced = self._wrappers.pop(config.config_name, None)
                if replaced is not None:
                    replaced.close()
        return [config.config_name for config in configs]

    def clear(self) -> None:
        """Forget every config, closing the wrappers built so far."""
        with self._lock:
            self.close()
            self._configs.clear()
            self._wrappers.clear()

    def close(self) -> None:
        """Close every wrapper built so far (they reopen connections if called again)."""
        for wrapper in list(self._wrappers.values()):
            wrapper.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load_model(self, config_name: str) -> ModelWrapper:
        """The wrapper of a config, built on first use."""
        wrapper = self._wrappers.get(config_name)
        if wrapper is not None:
            return wrapper
        with self._lock:
            wrapper = self._wrappers.get(config_name)
            if wrapper is None:
                wrapper = self._build(self.config(config_name))
                self._wrappers[config_name] = wrapper
        return wrapper

    def config(self, config_name: str) -> ModelConfig:
        try:
            return self._configs[config_name]
        except KeyError:
            hint = did_you_mean(config_name, self._configs)
            if hint:
                message = f"no config named {config_name!r}; did you mean {hint!r}?"
            elif self._configs:
                message = f"no config named {config_name!r}; known: {', '.join(self._configs)}"
            else:
                message = (
                    f"no config named {config_name!r}: no configs are loaded;"
                    " call modelwire.init(model_configs=...) first"
                )
            raise ConfigError([ConfigIssue(config_name, "config_name", message)]) from None

    def _build(self, config: ModelConfig) -> ModelWrapper:
        cls = self.plugins.resolve(config.model_type, config_name=config.config_name).load_class()
        try:
            wrapper = cls(config_name=config.config_name, **config.params)
        except ModelWireError:
            raise
        except Exception as exc:
            raise ConfigError(
                [
                    ConfigIssue(
                        config.config_name,
                        None,
                        f"{cls.__name__} could not be built: {type(exc).__name__}: {exc}",
                    )
                ]
            ) from exc
        wrapper.hooks = self.plugins.hook
        return wrapper

    def usage(self) -> dict[str, dict[str, Any]]:
        """Usage and spend of every wrapper built so far, by config name."""
        return {name: wrapper.usage for name, wrapper in list(self._wrappers.items())}

    def __contains__(self, config_name: object) -> bool:
        return config_name in self._configs

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._configs))

    def __len__(self) -> int:
        return len(self._configs)

    def __repr__(self) -> str:
        return f"<ModelRegistry configs={list(self._configs)!r}>"
