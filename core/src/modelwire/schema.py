"""A wrapper's config schema, read from its ``__init__`` signature, and value checks.

Annotations understood: ``str``, ``int``, ``float``, ``bool``, ``list[...]``,
``dict[..., ...]``, ``X | None``, ``Literal[...]``, ``Any`` and ``TypedDict``s
(whose keys are checked too, with did-you-mean). Anything else is accepted as is.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import os
import types
import typing
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

__all__ = ["Param", "check_value", "did_you_mean", "wrapper_schema"]

_SKIP = {"self", "config_name"}


class Param(NamedTuple):
    """One config key a wrapper accepts."""

    name: str
    annotation: Any
    required: bool
    default: Any = None


@functools.cache
def wrapper_schema(cls: type) -> dict[str, Param]:
    """The keyword parameters of ``cls.__init__`` and of its bases' ``__init__``s.

    The subclass comes first: its parameters lead and its annotations win.
    """
    params: dict[str, Param] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        hints, parameters = _init_parameters(init)
        for parameter in parameters:
            if parameter.name in _SKIP or parameter.kind in (
                parameter.VAR_POSITIONAL,
                parameter.VAR_KEYWORD,
            ):
                continue
            required = parameter.default is parameter.empty
            params.setdefault(
                parameter.name,
                Param(
                    parameter.name,
                    hints.get(parameter.name, Any),
                    required,
                    None if required else parameter.default,
                ),
            )
    return params


@functools.cache
def _init_parameters(init: Any) -> tuple[dict[str, Any], list[inspect.Parameter]]:
    """An ``__init__``'s type hints and parameters, read once: every subclass of a base
    shares the base's ``__init__``."""
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation that cannot be evaluated is accepted as Any
        hints = {}
    return hints, list(inspect.signature(init).parameters.values())


def did_you_mean(word: str, choices: collections.abc.Iterable[str]) -> str | None:
    """The closest choice to a mistyped key, if any is close."""
    choices = list(choices)
    for choice in choices:
        if choice.lower() == word.lower() or (
            len(word) >= 4 and (choice.startswith(word) or word.startswith(choice))
        ):
            return choice
    import difflib  # only once a key is already wrong

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def describe(annotation: Any) -> str:
    """A short human name for a type annotation."""
    if annotation is type(None) or annotation is None:
        return "null"
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in get_args(annotation))
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(annotation))
    if _is_typeddict(annotation):
        return "object"
    if origin is not None:
        return describe(origin)
    if annotation in (dict, collections.abc.Mapping):
        return "object"
    if annotation in (list, tuple, collections.abc.Sequence):
        return "list"
    return getattr(annotation, "__name__", str(annotation))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _is_typeddict(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and issubclass(annotation, dict)
        and hasattr(annotation, "__total__")
    )


def check_value(value: Any, annotation: Any, key: str) -> list[tuple[str, str]]:
    """Problems of ``value`` against ``annotation`` as ``(key path, message)`` pairs."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return []
    if annotation is None or annotation is type(None):
        return [] if value is None else [(key, f"expected null, got {_json_type(value)}")]
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        for option in args:
            if not check_value(value, option, key):
                return []
        # report the deepest problem of the option whose outer type matched
        for option in args:
            if option is not type(None) and _outer_matches(value, option):
                return check_value(value, option, key)
        return [(key, f"expected {describe(annotation)}, got {_json_type(value)}")]
    if origin is Literal:
        if value in args:
            return []
        return [(key, f"expected one of {', '.join(repr(a) for a in args)}, got {value!r}")]
    if _is_typeddict(annotation):
        return _check_typeddict(value, annotation, key)
    if not _outer_matches(value, annotation):
        return [(key, f"expected {describe(annotation)}, got {_json_type(value)}")]
    if origin in (list, collections.abc.Sequence, tuple) and args:
        item_type = args[0]
        problems = []
        for index, item in enumerate(value):
            problems += check_value(item, item_type, f"{key}[{index}]")
        return problems
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        problems = []
        for item_key, item in value.items():
            problems += check_value(item_key, args[0], f"{key}.{item_key}")
            problems += check_value(item, args[1], f"{key}.{item_key}")
        return problems
    return []


def _outer_matches(value: Any, annotation: Any) -> bool:
    origin = get_origin(annotation) or annotation
    if _is_typeddict(annotation):
        return isinstance(value, dict)
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is str:
        return isinstance(value, str)
    if origin in (list, collections.abc.Sequence, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if origin in (os.PathLike,):
        return isinstance(value, (str, os.PathLike))
    if origin is Literal:
        return value in get_args(annotation)
    if isinstance(origin, type):
        try:
            return isinstance(value, origin)
        except TypeError:
            return True
    return True


@functools.cache
def _typeddict_fields(annotation: Any) -> dict[str, Any]:
    """A TypedDict's keys and their types, evaluated once per TypedDict."""
    try:
        return typing.get_type_hints(annotation)
    except Exception:
        return dict(getattr(annotation, "__annotations__", {}))


def _check_typeddict(value: Any, annotation: Any, key: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return [(key, f"expected object, got {_json_type(value)}")]
    fields = _typeddict_fields(annotation)
    problems = []
    for item_key, item in value.items():
        if item_key not in fields:
            hint = did_you_mean(str(item_key), fields)
            message = f"unknown key {item_key!r}"
            message += f"; did you mean {hint!r}?" if hint else f"; known keys: {', '.join(fields)}"
            problems.append((f"{key}.{item_key}", message))
            continue
        problems += check_value(item, fields[item_key], f"{key}.{item_key}")
    for required in getattr(annotation, "__required_keys__", ()):
        if required not in value:
            problems.append((f"{key}.{required}", "missing required key"))
    return problems
