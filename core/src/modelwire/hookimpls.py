"""A plugin's hook implementations, found and checked the way pluggy does it.

Reads pluggy's marker protocol (a ``modelwire_impl`` options dict on a function)
from code objects, without importing pluggy or ``inspect``: both together cost
more at start-up than the rest of discovery. What pluggy would reject at
``register`` (an argument the hook does not provide, a wrapper that is not a
generator) is rejected here with the same meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import FunctionType, MethodType, ModuleType
from typing import Any

from modelwire.errors import PluginError
from modelwire.hookspecs import PROJECT
from modelwire.structs import FrozenStruct

__all__ = ["HookImpl", "collect", "insert"]

_IMPL_ATTR = PROJECT + "_impl"


class HookImpl(FrozenStruct):
    """One implementation: the callable and the hook arguments it asks for, in its order."""

    __slots__ = ("hook", "function", "argnames", "plugin", "tryfirst", "trylast")
    hook: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    plugin: object
    tryfirst: bool
    trylast: bool

    def __init__(
        self,
        hook: str,
        function: Callable[..., Any],
        argnames: tuple[str, ...],
        plugin: object,
        tryfirst: bool = False,
        trylast: bool = False,
    ) -> None:
        self._set(hook, function, argnames, plugin, tryfirst, trylast)

    def __call__(self, kwargs: dict[str, Any]) -> Any:
        """Call with the arguments it declares, positionally, as pluggy does."""
        return self.function(*map(kwargs.__getitem__, self.argnames))


def collect(
    plugin: object, plugin_name: str, specs: dict[str, tuple[str, ...]]
) -> tuple[list[HookImpl], list[str]]:
    """The plugin's implementations, and the names of unknown hooks it implements.

    Raises ``PluginError`` for an implementation pluggy would refuse to register.
    """
    impls: list[HookImpl] = []
    unknown: list[str] = []
    for attr, opts, function in _marked(plugin):
        hook = opts.get("specname") or attr
        spec = specs.get(hook)
        if spec is None:
            if not opts.get("optionalhook"):
                unknown.append(hook)
            continue
        where = f"plugin {plugin_name!r}, hook {hook!r}"
        argnames = _argnames(function)
        missing = [name for name in argnames if name not in spec]
        if missing:
            raise PluginError(
                f"{where}: argument(s) {', '.join(map(repr, missing))} of the implementation"
                f" are not provided by the hook, which passes only: {', '.join(spec)}"
            )
        if opts.get("wrapper") or opts.get("hookwrapper"):
            raise PluginError(
                f"{where}: wrapper=True and hookwrapper=True are not supported;"
                " modelwire calls each implementation directly (use tryfirst/trylast to order)"
            )
        impls.append(
            HookImpl(
                hook,
                function,
                argnames,
                plugin,
                bool(opts.get("tryfirst")),
                bool(opts.get("trylast")),
            )
        )
    return impls, unknown


def insert(impls: list[HookImpl], impl: HookImpl) -> None:
    """Add to a hook's list in pluggy's order (called last to first): trylast at the
    front, tryfirst at the end, the rest after the earlier ones of their kind."""
    if impl.trylast:
        impls.insert(0, impl)
    elif impl.tryfirst:
        impls.append(impl)
    else:
        index = len(impls)
        while index and impls[index - 1].tryfirst:
            index -= 1
        impls.insert(index, impl)


def _marked(plugin: object) -> Iterator[tuple[str, dict[str, Any], Callable[..., Any]]]:
    """``(name, marker options, callable)`` of every marked function-like attribute.

    Like pluggy, never triggers a property or other descriptor: only functions,
    static and class methods and bound methods count.
    """
    candidates: list[tuple[str, object, Callable[..., Any] | None]] = []
    if isinstance(plugin, ModuleType):
        for name, value in list(vars(plugin).items()):
            if isinstance(value, FunctionType):
                candidates.append((name, value, value))
    else:
        is_class = isinstance(plugin, type)
        own = {} if is_class else getattr(plugin, "__dict__", {})
        mro = plugin.__mro__ if is_class else type(plugin).__mro__  # type: ignore[attr-defined]
        for name in dir(plugin):
            if name in own:
                value = own[name]
                if isinstance(value, MethodType):
                    candidates.append((name, value.__func__, value))
                elif isinstance(value, FunctionType):
                    candidates.append((name, value, value))
                continue
            raw = next((k.__dict__[name] for k in mro if name in k.__dict__), None)
            if isinstance(raw, (staticmethod, classmethod, FunctionType)):
                candidates.append((name, raw, None))  # bound below, once known to be marked
    for name, holder, value in candidates:
        opts = _options(holder)
        if opts is not None:
            yield name, opts, value if value is not None else getattr(plugin, name)


def _options(holder: object) -> dict[str, Any] | None:
    opts = getattr(holder, _IMPL_ATTR, None)
    if opts is None:
        opts = getattr(getattr(holder, "__func__", None), _IMPL_ATTR, None)
    return opts if isinstance(opts, dict) else None


def _argnames(function: Callable[..., Any]) -> tuple[str, ...]:
    """Positional parameters without a default, minus a bound ``self``/``cls``."""
    bound = isinstance(function, MethodType)
    func: Any = function
    for _ in range(100):  # functools.wraps chains
        if isinstance(func, MethodType):
            bound, func = True, func.__func__
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None:
            break
        func = wrapped
    code = getattr(func, "__code__", None)
    if code is None:
        return ()
    args = code.co_varnames[: code.co_argcount]
    defaults = getattr(func, "__defaults__", None) or ()
    if defaults:
        args = args[: -len(defaults)]
    if bound and args:
        args = args[1:]
    return args
