"""Reading model configs and validating them before anything touches the network.

Every problem in a batch of configs is collected and reported at once, each one
naming its config and key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelwire.errors import ConfigError, ConfigIssue, PluginError
from modelwire.redact import redacted, register_secrets_in

if TYPE_CHECKING:
    from modelwire.plugins import PluginManager

__all__ = ["ConfigSource", "ModelConfig", "read_configs", "validate_configs"]

ConfigSource = Mapping[str, Any] | Iterable[Mapping[str, Any]] | str | os.PathLike[str]

#: ``math.inf`` without importing ``math`` (a shared library to load at start-up).
_INF = float("inf")
#: ``${VAR}``, ``${VAR:-default}`` and ``$$``: compiled by ``re`` (and cached) on the first
#: value with a ``$``.
_ENV = r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}"


@dataclass(slots=True, repr=False)
class ModelConfig:
    """One validated config: its name, type and the wrapper's parameters."""

    config_name: str
    model_type: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"config_name": self.config_name, "model_type": self.model_type, **self.params}

    def __repr__(self) -> str:
        return f"ModelConfig({redacted(self.to_dict())!r})"


def read_configs(source: ConfigSource) -> tuple[list[Any], str | None]:
    """The raw config items of a dict, a list of dicts or a JSON/YAML file."""
    if isinstance(source, (str, os.PathLike)):
        return _read_file(os.fspath(source)), os.fspath(source)
    if isinstance(source, Mapping):
        return [source], None
    if isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray)):
        return list(source), None
    raise ConfigError(
        f"model_configs must be a dict, a list of dicts or a path to a JSON/YAML file,"
        f" not {type(source).__name__}"
    )


#: How deep a config may nest, and how many values it may hold once YAML aliases are
#: followed: configs are small, and the loader walks them recursively.
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_VALUES = 100_000


def _read_file(path: str) -> list[Any]:
    if os.path.isdir(path):
        raise ConfigError(f"config file {path!r} is a directory, not a file", source=path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist", source=path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the file is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
            f" {exc.start}); save it as UTF-8",
            source=path,
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", source=path) from None
    try:
        data = _parse(text, path)
    except RecursionError:
        raise ConfigError(
            f"the file nests deeper than a config can (at most {MAX_CONFIG_DEPTH} levels)",
            source=path,
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(
            f"a value cannot be read: {str(exc).splitlines()[0]}", source=path
        ) from None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ConfigError(
        f"a config file holds an object or a list of objects, not {type(data).__name__}",
        source=path,
    )


def _parse(text: str, path: str) -> Any:
    if os.path.splitext(path)[1].lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                source=path,
            ) from None
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            "reading YAML configs needs PyYAML: pip install 'modelwire[yaml]'", source=path
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Not str(exc): it quotes the offending line, which may hold a key.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{where}: {exc.problem}", source=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", source=path) from None


def shape_problem(value: Any) -> str | None:
    """What makes a config value unusable whatever its schema: nesting deeper than
    ``MAX_CONFIG_DEPTH``, more than ``MAX_CONFIG_VALUES`` values once YAML aliases are
    followed (a "billion laughs" file), or text that is not valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            return (
                f"holds more than {MAX_CONFIG_VALUES} values once YAML aliases are followed;"
                " write the values out instead of repeating aliases"
            )
        if depth > MAX_CONFIG_DEPTH:
            return f"nests deeper than {MAX_CONFIG_DEPTH} levels"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return (
                    f"holds a lone surrogate ({item[exc.start]!r}), which is not valid Unicode text"
                )
        elif isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
            stack.extend((k, depth + 1) for k in item)
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
    return None


def substitute_env(value: Any, issues: list[ConfigIssue], config_name: str, key: str) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings; ``$$`` is a literal ``$``."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None:
                if default is not None:
                    return default
                issues.append(
                    ConfigIssue(config_name, key, f"environment variable {name} is not set")
                )
                return ""
            return found

        return re.sub(_ENV, replace, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, issues, config_name, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, issues, config_name, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def validate_configs(
    items: list[Any],
    manager: PluginManager,
    *,
    taken: Iterable[str] = (),
    source: str | None = None,
) -> list[ModelConfig]:
    """Check every item against its wrapper's schema; raise one error listing all problems."""
    from modelwire.schema import check_value, did_you_mean, wrapper_schema

    issues: list[ConfigIssue] = []
    plugin_errors: list[PluginError] = []
    unknown_types: list[ConfigError] = []
    configs: list[ModelConfig] = []
    seen = set(taken)
    for index, item in enumerate(items):
        label = f"#{index}"
        if not isinstance(item, Mapping):
            issues.append(
                ConfigIssue(label, None, f"a config is an object, not {type(item).__name__}")
            )
            continue
        name = item.get("config_name")
        if not isinstance(name, str) or not name.strip():
            issues.append(
                ConfigIssue(
                    label, "config_name", "missing: every config needs a config_name string"
                )
            )
            name = label
        elif name in seen:
            issues.append(ConfigIssue(name, "config_name", "duplicate config_name"))
        seen.add(name)
        problem = shape_problem(item)
        if problem is not None:
            issues.append(
                ConfigIssue(name if shape_problem(name) is None else label, None, problem)
            )
            continue
        model_type = item.get("model_type")
        if not isinstance(model_type, str) or not model_type:
            issues.append(
                ConfigIssue(name, "model_type", "missing: every config needs a model_type")
            )
            continue
        try:
            cls = manager.resolve(model_type, config_name=name).load_class()
        except ConfigError as exc:
            issues.extend(exc.issues)
            unknown_types.append(exc)
            continue
        except PluginError as exc:
            plugin_errors.append(exc)
            continue
        local: list[ConfigIssue] = []
        params = {
            str(k): substitute_env(v, local, name, str(k))
            for k, v in item.items()
            if k not in ("config_name", "model_type")
        }
        schema = wrapper_schema(cls)
        for key, value in params.items():
            param = schema.get(key)
            if param is None:
                hint = did_you_mean(key, schema)
                message = f"unknown parameter for model_type {model_type!r}"
                message += (
                    f"; did you mean {hint!r}?" if hint else f"; accepted: {', '.join(schema)}"
                )
                local.append(ConfigIssue(name, key, message))
                continue
            for path, problem in check_value(value, param.annotation, key):
                local.append(ConfigIssue(name, path, problem))
        for key, param in schema.items():
            if param.required and key not in params:
                local.append(
                    ConfigIssue(name, key, f"missing required parameter of {model_type!r}")
                )
        local += _core_issues(name, params)
        if not local:
            for issue in cls.validate_params(params):
                local.append(ConfigIssue(name, issue.key, issue.message))
        issues += local
        register_secrets_in(params)
        if not local:
            configs.append(ModelConfig(name, model_type, params, source))
    if plugin_errors:
        raise plugin_errors[0]
    if len(issues) == 1 and unknown_types:
        raise unknown_types[0]  # keep the precise type when it is the only problem
    if issues:
        raise ConfigError(issues, source=source)
    return configs


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: The longest ``timeout``/``stream_idle_timeout`` and retry delay a config may set:
#: past them a deadline is as good as none, and larger numbers overflow the clocks.
MAX_TIMEOUT = 86_400.0
MAX_RETRY_DELAY = 3_600.0
MAX_RETRIES = 100


def _core_issues(name: str, params: Mapping[str, Any]) -> list[ConfigIssue]:
    """Range checks of the core-owned keys (their types are checked from the signature)."""
    issues = []
    for key in ("timeout", "stream_idle_timeout"):
        seconds = params.get(key)
        if _number(seconds) and not 0 < seconds <= MAX_TIMEOUT:
            issues.append(
                ConfigIssue(
                    name, key, f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
                )
            )
    size = params.get("max_response_bytes")
    if _number(size) and not 1 <= size <= 2**40:
        issues.append(
            ConfigIssue(name, "max_response_bytes", "must be a number of bytes from 1 to 2**40")
        )
    budget = params.get("budget")
    if _number(budget) and not 0 <= budget < _INF:
        issues.append(ConfigIssue(name, "budget", "must be a finite, non-negative amount (USD)"))
    for section in ("retry", "pricing"):
        value = params.get(section)
        if isinstance(value, Mapping):
            for key, item in value.items():
                if _number(item) and not 0 <= item < _INF:
                    issues.append(
                        ConfigIssue(name, f"{section}.{key}", "must be finite and not negative")
                    )
                elif section == "retry" and _number(item) and item > _retry_ceiling(key):
                    issues.append(
                        ConfigIssue(
                            name, f"retry.{key}", f"must be at most {_retry_ceiling(key):g}"
                        )
                    )
    return issues


def _retry_ceiling(key: str) -> float:
    return MAX_RETRIES if key == "max_retries" else MAX_RETRY_DELAY
