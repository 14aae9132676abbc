"""Finding plugins through entry points and keeping what they register.

Discovery runs once, on first need. A plugin that fails to import, or whose
registration hook raises, is recorded as broken and never takes the others down.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from modelwire import hookspecs
from modelwire.errors import PluginError, UnknownModelTypeError
from modelwire.hookimpls import HookImpl, collect, insert
from modelwire.structs import FrozenStruct, Struct

if TYPE_CHECKING:
    from modelwire.wrapper import ModelWrapper

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY_TYPES",
    "EntryPoint",
    "PluginInfo",
    "PluginManager",
    "TypeRegistration",
    "get_manager",
    "hookimpl",
]

ENTRY_POINT_GROUP = "modelwire"
hookimpl = hookspecs.hookimpl


def _logger() -> Any:
    """The ``modelwire`` logger; logging is imported only when there is something to say."""
    import logging

    return logging.getLogger("modelwire")


#: Where each first-party model type comes from, for the ``pip install`` hint.
FIRST_PARTY_TYPES: dict[str, str] = {
    "openai": "modelwire-openai",
    "openai_chat": "modelwire-openai",
    "openai_embedding": "modelwire-openai",
    "openai_dall_e": "modelwire-openai",
    "dashscope_chat": "modelwire-dashscope",
    "dashscope_image_synthesis": "modelwire-dashscope",
    "dashscope_text_embedding": "modelwire-dashscope",
    "gemini_chat": "modelwire-gemini",
    "gemini_embedding": "modelwire-gemini",
    "ollama_chat": "modelwire-ollama",
    "ollama_embedding": "modelwire-ollama",
    "ollama_generate": "modelwire-ollama",
    "post_api": "modelwire-postapi",
    "post_api_chat": "modelwire-postapi",
}

LIFECYCLE_HOOKS = ("on_call_start", "on_call_end", "on_call_error")


class TypeRegistration(Struct):
    """A model type, the wrapper class that implements it and who registered it."""

    __slots__ = ("model_type", "target", "distribution", "plugin", "aliases", "_cls")

    def __init__(
        self,
        model_type: str,
        target: str,
        distribution: str,
        plugin: str,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.model_type = model_type
        self.target = target
        self.distribution = distribution
        self.plugin = plugin
        self.aliases = aliases
        self._cls: type[ModelWrapper] | None = None

    def __repr__(self) -> str:
        return (
            f"TypeRegistration(model_type={self.model_type!r}, target={self.target!r},"
            f" distribution={self.distribution!r}, plugin={self.plugin!r},"
            f" aliases={self.aliases!r})"
        )

    def load_class(self) -> type[ModelWrapper]:
        """Import the wrapper class (and with it, its SDK) on first use."""
        if self._cls is not None:
            return self._cls
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, attr) if attr else module
        except Exception as exc:
            raise PluginError(
                f"model_type {self.model_type!r} from {self.distribution} points at"
                f" {self.target!r}, which cannot be imported: {type(exc).__name__}: {exc}."
                f" Reinstall it: pip install --force-reinstall {self.distribution}",
                distribution=self.distribution,
            ) from exc
        from modelwire.wrapper import ModelWrapper

        if not (isinstance(cls, type) and issubclass(cls, ModelWrapper)):
            raise PluginError(
                f"model_type {self.model_type!r} from {self.distribution}: {self.target!r}"
                " is not a modelwire.ModelWrapper subclass",
                distribution=self.distribution,
            )
        self._cls = cls
        return cls

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "distribution": self.distribution,
            "aliases": list(self.aliases),
            "target": self.target,
            "plugin": self.plugin,
        }


class PluginInfo(Struct):
    """One plugin as ``modelwire plugins`` shows it; ``detail`` holds a failure's traceback."""

    __slots__ = ("name", "distribution", "version", "module", "error", "model_types", "detail")

    def __init__(
        self,
        name: str,
        distribution: str,
        version: str,
        module: str,
        error: str | None = None,
        model_types: list[str] | None = None,
        detail: str | None = None,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.module = module
        self.error = error
        self.model_types: list[str] = [] if model_types is None else model_types
        self.detail = detail

    def __repr__(self) -> str:
        return (
            f"PluginInfo(name={self.name!r}, distribution={self.distribution!r},"
            f" version={self.version!r}, module={self.module!r}, error={self.error!r},"
            f" model_types={self.model_types!r})"
        )

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": "ok" if self.ok else "broken",
            "error": self.error,
            "model_types": list(self.model_types),
        }


class PluginManager:
    """Registered plugins, their hook implementations and the model-type table.

    A small pluggy-compatible manager (same markers, same ordering, same argument
    rules), so that discovery does not import pluggy; see ``modelwire.hookimpls``.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._specs = hookspecs.specs()
        self._impls: dict[str, list[HookImpl]] = {name: [] for name in self._specs}
        self._registered: dict[str, object] = {}
        self._load_entry_points = load_entry_points
        self._discovered = False
        self._lock = threading.RLock()
        self.types: dict[str, TypeRegistration] = {}
        self.conflicts: dict[str, list[TypeRegistration]] = {}
        self.plugins: list[PluginInfo] = []
        self._dispatch: dict[str, tuple[HookImpl, ...]] = {}

    # discovery -------------------------------------------------------------
    def discover(self) -> PluginManager:
        """Load built-in and entry-point plugins once; later calls are free."""
        if self._discovered:
            return self
        with self._lock:
            if self._discovered:
                return self
            from modelwire import accounting, records

            self.register(accounting, name="usage", distribution="modelwire (built-in)")
            self.register(records.plugin, name="records", distribution="modelwire (built-in)")
            if self._load_entry_points:
                for entry_point in _entry_points():
                    self._load_entry_point(entry_point)
            self._discovered = True
        return self

    def _load_entry_point(self, entry_point: EntryPoint) -> None:
        info = PluginInfo(
            entry_point.name, entry_point.distribution, entry_point.version, entry_point.value
        )
        try:
            module = entry_point.load()
        except Exception as exc:
            self._mark_broken(info, exc)
            return
        self._register_module(module, info)

    def register(
        self, plugin: ModuleType | object, *, name: str | None = None, distribution: str = "<local>"
    ) -> PluginInfo:
        """Register a plugin object directly (tests, applications, notebooks)."""
        if isinstance(plugin, ModuleType):
            module = plugin.__name__
        else:
            module = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        info = PluginInfo(name or module, distribution, _version_of(distribution), module)
        with self._lock:
            self._register_module(plugin, info)
        return info

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with ``register`` (its model types stay)."""
        with self._lock:
            for name, registered in list(self._registered.items()):
                if registered is plugin:
                    del self._registered[name]
            for impls in self._impls.values():
                impls[:] = [impl for impl in impls if impl.plugin is not plugin]
            self._dispatch.clear()

    def _register_module(self, plugin: object, info: PluginInfo) -> None:
        self.plugins.append(info)
        name = f"{info.distribution}:{info.name}"
        try:
            if name in self._registered or any(p is plugin for p in self._registered.values()):
                raise ValueError(f"plugin {name!r} (or the same object) is already registered")
            impls, unknown = collect(plugin, name, self._specs)
        except Exception as exc:
            self._mark_broken(info, exc)
            return
        for hook in unknown:
            _logger().warning(
                "modelwire plugin %r from %s implements %r, which is not a modelwire hook"
                " (known: %s); it is ignored. Mark it hookimpl(optionalhook=True) if it is"
                " meant for a newer modelwire.",
                info.name,
                info.distribution,
                hook,
                ", ".join(self._specs),
            )
        for impl in impls:
            if impl.hook != "register_model_types":
                continue
            try:
                impl({"register": self._registrar(info)})
            except Exception as exc:
                self._mark_broken(info, exc)
                for model_type in list(info.model_types):
                    self._forget(model_type, info)
                return
        self._registered[name] = plugin
        for impl in impls:
            insert(self._impls[impl.hook], impl)
        self._dispatch.clear()

    def _mark_broken(self, info: PluginInfo, exc: BaseException) -> None:
        info.error = f"{type(exc).__name__}: {exc}"
        import traceback  # only for a broken plugin

        info.detail = "".join(traceback.format_exception(exc))
        if info not in self.plugins:
            self.plugins.append(info)
        _logger().warning(
            "modelwire plugin %r from %s failed to load: %s",
            info.name,
            info.distribution,
            info.error,
        )

    def _registrar(self, info: PluginInfo) -> Callable[..., None]:
        def register(model_type: str, target: str, aliases: Iterable[str] = ()) -> None:
            if not isinstance(model_type, str) or not model_type:
                raise PluginError(f"{info.distribution}: model_type must be a non-empty string")
            if not isinstance(target, str) or ":" not in target:
                raise PluginError(
                    f"{info.distribution}: the target of {model_type!r} must be an import"
                    f" string 'package.module:Class', not {target!r}"
                )
            registration = TypeRegistration(
                model_type, target, info.distribution, info.name, tuple(aliases)
            )
            for name in (model_type, *registration.aliases):
                self._add_type(name, registration)
            info.model_types.append(model_type)

        return register

    def _add_type(self, name: str, registration: TypeRegistration) -> None:
        existing = self.types.get(name) or (self.conflicts.get(name) or [None])[0]
        if existing is None:
            self.types[name] = registration
            return
        claims = self.conflicts.setdefault(name, [existing])
        claims.append(registration)
        self.types.pop(name, None)
        _logger().warning(
            "model_type %r is registered twice: by %s and by %s",
            name,
            claims[0].distribution,
            registration.distribution,
        )

    def _forget(self, model_type: str, info: PluginInfo) -> None:
        for name, registration in list(self.types.items()):
            if registration.plugin == info.name and registration.distribution == info.distribution:
                del self.types[name]

    # lookup ----------------------------------------------------------------
    def resolve(self, model_type: str, *, config_name: str = "?") -> TypeRegistration:
        """The registration of a model type, or the error that explains its absence."""
        self.discover()
        registration = self.types.get(model_type)
        if registration is not None:
            return registration
        if model_type in self.conflicts:
            names = " and ".join(r.distribution for r in self.conflicts[model_type])
            raise PluginError(
                f"model_type {model_type!r} is registered by more than one distribution"
                f" ({names}); uninstall one of them",
                distribution=self.conflicts[model_type][-1].distribution,
            )
        provider = FIRST_PARTY_TYPES.get(model_type)
        for info in self.plugins:
            if not info.ok and provider is not None and info.distribution == provider:
                raise PluginError(
                    f"model_type {model_type!r} comes from {info.distribution}, whose plugin"
                    f" failed to load: {info.error} (see `modelwire plugins`)",
                    distribution=info.distribution,
                )
        raise UnknownModelTypeError(
            model_type, self._unknown_message(model_type, provider), config_name=config_name
        )

    def _unknown_message(self, model_type: str, provider: str | None) -> str:
        message = f"unknown model_type {model_type!r}"
        known = sorted(set(self.types) | set(FIRST_PARTY_TYPES))
        import difflib  # only for an unknown type

        close = difflib.get_close_matches(model_type, known, n=1, cutoff=0.6)
        if close and close[0] != model_type:
            message += f"; did you mean {close[0]!r}?"
            provider = provider or (
                None if close[0] in self.types else FIRST_PARTY_TYPES.get(close[0])
            )
        if provider is not None and model_type not in self.types:
            message += "" if message.endswith("?") else "."
            message += f" It is provided by {provider}: pip install {provider}"
        broken = [i for i in self.plugins if not i.ok]
        if broken:
            names = ", ".join(f"{i.distribution} ({i.error})" for i in broken)
            message += f". Plugins that failed to load and may provide it: {names}"
        installed = sorted(self.types)
        if not close and installed:
            message += f". Installed types: {', '.join(installed)}"
        return message

    # lifecycle hooks ---------------------------------------------------------
    def hook_impls(self, name: str) -> tuple[HookImpl, ...]:
        """A hook's implementations in call order (pluggy's: the last registered first,
        ``tryfirst`` before and ``trylast`` after the rest), cached for the hot path."""
        impls = self._dispatch.get(name)
        if impls is None:
            if name not in self._specs:
                raise ValueError(f"no such hook: {name!r} (hooks: {', '.join(self._specs)})")
            impls = self._dispatch[name] = tuple(reversed(self._impls[name]))
        return impls

    def dispatch(self, name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; one failing observer never fails the model call."""
        impls = self._dispatch.get(name)
        if impls is None:
            impls = self.hook_impls(name)
        for impl in impls:
            try:
                # map, not a comprehension: no Python frame on every call's path (3.11)
                impl.function(*map(kwargs.__getitem__, impl.argnames))
            except Exception:
                _logger().exception(
                    "modelwire hook %s in %s failed",
                    name,
                    getattr(impl.function, "__module__", "?"),
                )

    def register_commands(self, cli: Any) -> None:
        self.discover()
        for impl in self.hook_impls("register_commands"):
            try:
                impl({"cli": cli})
            except Exception as exc:
                _logger().warning(
                    "plugin %s failed to add its commands: %s",
                    getattr(impl.function, "__module__", "?"),
                    exc,
                )


class EntryPoint(FrozenStruct):
    """One ``modelwire`` entry point, read straight from a distribution's metadata."""

    __slots__ = ("name", "value", "distribution", "version")
    name: str
    value: str
    distribution: str
    version: str

    def __init__(self, name: str, value: str, distribution: str, version: str) -> None:
        self._set(name, value, distribution, version)

    def load(self) -> Any:
        module_name, _, attrs = self.value.partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for attr in filter(None, attrs.strip().split(".")):
            target = getattr(target, attr)
        return target


def _entry_points(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    """The group's entry points of every distribution on ``sys.path``, first one wins.

    Reads ``*.dist-info/entry_points.txt`` (and ``*.egg-info``) directly: importing
    ``importlib.metadata`` alone costs more than all of modelwire's start-up budget.
    """
    header = f"[{group}]"
    marker = header.encode()
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            info = os.path.join(folder or ".", name)
            data = _read_bytes(os.path.join(info, "entry_points.txt"))
            if data is None or marker not in data:
                continue
            text = data.decode("utf-8", errors="replace")
            distribution, version = _identity(info, name)
            key = _normalize(distribution)
            if key in seen:  # the same distribution twice on sys.path
                continue
            seen.add(key)
            found += [
                EntryPoint(ep_name, value, distribution, version)
                for ep_name, value in _section(text, header)
            ]
    # A stable order: conflicts and `modelwire plugins` read the same on every machine.
    return sorted(found, key=lambda ep: (ep.distribution, ep.name))


def _read_bytes(path: str) -> bytes | None:
    """A file's bytes, or ``None`` if it cannot be read.

    The scan reads every distribution's ``entry_points.txt`` at start-up (~70 here):
    ``os.read`` spares a text file object per file, ~0.4 ms in all.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(descriptor, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _section(text: str, header: str) -> list[tuple[str, str]]:
    """``name = value`` lines of one INI section."""
    entries, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == header
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            entries.append((name.strip(), value.strip()))
    return entries


def _identity(info: str, folder_name: str) -> tuple[str, str]:
    """Name and version from METADATA (PKG-INFO for eggs), else from the folder's name."""
    stem = folder_name.rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    for metadata_file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info, metadata_file), encoding="utf-8") as file:
                for line in file:
                    if not line.strip():
                        break
                    key, _, value = line.partition(":")
                    if key == "Name":
                        name = value.strip()
                    elif key == "Version":
                        version = value.strip()
            break
        except OSError:
            continue
    return name, version or "?"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_of(distribution: str) -> str:
    if distribution.startswith("modelwire ("):
        from modelwire import __version__

        return __version__
    return "?"


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> PluginManager:
    """The process-wide plugin manager, discovered on first call."""
    global _manager
    manager = _manager
    if manager is not None and manager._discovered:  # every call's hot path
        return manager
    if manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = PluginManager()
            manager = _manager
    return manager.discover()
