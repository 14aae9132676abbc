"""A wrapper's config schema, read from its ``__init__`` signature, and value checks.

Annotations understood: ``str``, ``int``, ``float``, ``bool``, ``list[...]``,
``dict[..., ...]``, ``X | None``, ``Literal[...]``, ``Any`` and ``TypedDict``s
(whose keys are checked too, with did-you-mean). Anything else is accepted as is.
"""

from __future__ import annotations

import collections.abc
import functools
import os
import sys
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from modelwire.structs import FrozenStruct

__all__ = ["Param", "check_value", "did_you_mean", "wrapper_schema"]

_SKIP = {"self", "config_name"}


class Param(FrozenStruct):
    """One config key a wrapper accepts."""

    __slots__ = ("name", "annotation", "required", "default")
    name: str
    annotation: Any
    required: bool
    default: Any

    def __init__(self, name: str, annotation: Any, required: bool, default: Any = None) -> None:
        self._set(name, annotation, required, default)


@functools.cache
def wrapper_schema(cls: type) -> dict[str, Param]:
    """The keyword parameters of ``cls.__init__`` and of its bases' ``__init__``s."""
    params: dict[str, Param] = {}
    for klass in cls.__mro__:  # the subclass first: its parameters lead, its annotations win
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for param in _init_params(init):
            params.setdefault(param.name, param)
    return params


@functools.cache
def _init_params(init: Any) -> tuple[Param, ...]:
    """One ``__init__``'s config keys; cached, since every subclass reads its bases' too."""
    hints = _hints(init)
    return tuple(
        Param(
            name,
            hints.get(name, Any),
            default is _REQUIRED,
            None if default is _REQUIRED else default,
        )
        for name, default in _named_parameters(init)
        if name not in _SKIP
    )


_REQUIRED = object()


def _named_parameters(function: Any) -> list[tuple[str, Any]]:
    """``(name, default or _REQUIRED)`` of every named parameter (not ``*args``/``**kw``).

    Read from the code object: ``inspect`` costs ~9 ms to import at start-up. Anything
    but a plain function (a wrapped one, a ``__signature__``, a builtin) asks ``inspect``.
    """
    code = getattr(function, "__code__", None)
    if (
        not isinstance(function, types.FunctionType)
        or code is None
        or hasattr(function, "__wrapped__")
        or hasattr(function, "__signature__")
    ):
        import inspect

        return [
            (p.name, _REQUIRED if p.default is p.empty else p.default)
            for p in inspect.signature(function).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    count = code.co_argcount
    positional = code.co_varnames[:count]
    keyword_only = code.co_varnames[count : count + code.co_kwonlyargcount]
    defaults = function.__defaults__ or ()
    first_default = count - len(defaults)
    kwdefaults = function.__kwdefaults__ or {}
    return [
        (name, defaults[i - first_default] if i >= first_default else _REQUIRED)
        for i, name in enumerate(positional)
    ] + [(name, kwdefaults.get(name, _REQUIRED)) for name in keyword_only]


#: Compiled annotation strings: the same few ("str | None", ...) recur in every wrapper.
_COMPILED: dict[str, Any] = {}


def _evaluate(text: str, namespace: dict[str, Any]) -> Any:
    """An annotation string's value in a module's namespace; compiled once per string."""
    code = _COMPILED.get(text)
    if code is None:
        code = _COMPILED[text] = compile(text, "<annotation>", "eval")
    return eval(code, namespace)  # noqa: S307 - annotations of installed code


def _fast_hints(function: Any) -> dict[str, Any] | None:
    """The annotations evaluated in the function's module, or ``None`` to take the slow way.

    ``typing.get_type_hints`` wraps each string in a ``ForwardRef`` and compiles it
    anew: ~3 ms at start-up for the first-party wrappers alone. Plain strings of
    installed code evaluate the same; anything unusual goes the slow way.
    """
    namespace = getattr(function, "__globals__", None)  # what get_type_hints uses too
    if not isinstance(namespace, dict) or hasattr(function, "__wrapped__"):
        return None
    hints: dict[str, Any] = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        if isinstance(annotation, str):
            if "'" in annotation or '"' in annotation:  # nested forward references
                return None
            try:
                annotation = _evaluate(annotation, namespace)
            except Exception:
                return None
        if annotation is None:
            annotation = type(None)
        elif get_origin(annotation) is typing.Annotated:
            return None
        hints[name] = annotation
    return hints


def _hints(function: Any) -> dict[str, Any]:
    fast = _fast_hints(function)
    if fast is not None:
        return fast
    try:
        return typing.get_type_hints(function, include_extras=False)
    except Exception:
        pass
    module = sys.modules.get(function.__module__)
    namespace = dict(vars(module)) if module else {}
    hints = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = _evaluate(annotation, namespace)
            except Exception:
                annotation = Any
        hints[name] = annotation
    return hints


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


def _is_inspect_empty(annotation: Any) -> bool:
    """``inspect.Parameter.empty`` (no annotation), recognised without importing inspect."""
    inspect = sys.modules.get("inspect")
    return inspect is not None and annotation is inspect.Parameter.empty


def check_value(value: Any, annotation: Any, key: str) -> list[tuple[str, str]]:
    """Problems of ``value`` against ``annotation`` as ``(key path, message)`` pairs."""
    if annotation is Any or _is_inspect_empty(annotation):
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
