"""The plugin manager: ``pluggy.PluginManager("modelwire")``, entry points and model types.

Discovery runs once, on first need. Each entry point is loaded on its own: one that
fails to import, or whose ``register_model_types`` raises, is recorded as broken
(``modelwire plugins`` shows why) and never takes the others down.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from modelwire import hookspecs
from modelwire.errors import PluginError, UnknownModelTypeError
from modelwire.hookspecs import PROJECT
from modelwire.redact import modelwire_logger

if TYPE_CHECKING:
    from modelwire.wrapper import ModelWrapper

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY_TYPES",
    "PluginInfo",
    "PluginManager",
    "TypeRegistration",
    "plugin_manager",
]

ENTRY_POINT_GROUP = PROJECT

#: Where each first-party model type comes from, for the ``pip install`` hint: the one
#: place the core names the plugins.
FIRST_PARTY_TYPES: dict[str, str] = {
    "openai": "modelwire-openai",
    "openai_chat": "modelwire-openai",
    "openai_embedding": "modelwire-openai",
    "openai_dall_e": "modelwire-openai",
    "dashscope_chat": "modelwire-dashscope",
    "dashscope_multimodal": "modelwire-dashscope",
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


@dataclass(slots=True)
class TypeRegistration:
    """A model type, the wrapper class that implements it and who registered it."""

    model_type: str
    target: str
    source: PluginInfo = field(repr=False)
    aliases: tuple[str, ...] = ()
    _cls: type[ModelWrapper] | None = field(default=None, repr=False, compare=False)

    @property
    def distribution(self) -> str:
        """The distribution that registered the type (read from its metadata on first use)."""
        return self.source.distribution

    @property
    def plugin(self) -> str:
        return self.source.name

    def load_class(self) -> type[ModelWrapper]:
        """Import the wrapper class (and with it, its SDK) on first use."""
        if self._cls is not None:
            return self._cls
        module_name, _, attr = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
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
        if not cls.__dict__.get("model_type"):
            # Errors and records name the type: a class that forgot it gets its own.
            cls.model_type = self.model_type
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


@dataclass(slots=True)
class PluginInfo:
    """One plugin as ``modelwire plugins`` shows it; ``detail`` holds a failure's traceback.

    An entry point's distribution name and version are read from its metadata when
    first asked for: parsing a plugin's ``METADATA`` (its README included) is most of
    what discovery would cost, and a start-up that meets no error never asks.
    """

    name: str
    module: str
    #: The distribution's name, or (for an entry point) its ``importlib.metadata``
    #: distribution, whose name and version are read on first use.
    source: str | metadata.Distribution = field(repr=False)
    error: str | None = None
    model_types: list[str] = field(default_factory=list)
    detail: str | None = field(default=None, repr=False)
    _named: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def distribution(self) -> str:
        return self._identity()[0]

    @property
    def version(self) -> str:
        return self._identity()[1]

    def _identity(self) -> tuple[str, str]:
        if self._named is None:
            source = self.source
            if isinstance(source, str):
                self._named = (source, _version_of(source))
            else:
                try:
                    fields = source.metadata
                    self._named = (fields["Name"] or "?", fields["Version"] or "?")
                except Exception:  # metadata that cannot be read still names nothing
                    self._named = ("?", "?")
        return self._named

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


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the ``modelwire`` project, plus the model-type table.

    ``register``, ``unregister``, ``hook``, ``trace``, ``add_hookcall_monitoring``
    and the rest are pluggy's own. ``discover()`` registers the built-in plugins
    and every installed entry point, once.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._discovered = False
        self._lock = threading.RLock()
        self.types: dict[str, TypeRegistration] = {}
        self.conflicts: dict[str, list[TypeRegistration]] = {}
        self.plugins: list[PluginInfo] = []

    # discovery -------------------------------------------------------------
    def discover(self) -> PluginManager:
        """Register the built-in plugins and the installed entry points, once."""
        if self._discovered:
            return self
        with self._lock:
            if self._discovered:
                return self
            from modelwire import records

            # listens on the hooks only while records are on
            self.plugins.append(PluginInfo("records", records.__name__, "modelwire (built-in)"))
            records.plugin.attach(self)
            if self._load_entry_points:
                for entry_point in _entry_points():
                    self._load_entry_point(entry_point)
            self._discovered = True
        return self

    def _load_entry_point(self, entry_point: metadata.EntryPoint) -> None:
        info = PluginInfo(entry_point.name, entry_point.value, entry_point.dist or "?")
        try:
            plugin = entry_point.load()
        except Exception as exc:
            self._mark_broken(info, exc)
            return
        self._add(plugin, info)

    def add_plugin(
        self, plugin: object, *, name: str | None = None, distribution: str = "<local>"
    ) -> PluginInfo:
        """Register a plugin object, run its ``register_model_types`` and record it.

        What discovery does for an entry point; for tests, applications and
        notebooks. A failure is recorded in the returned ``PluginInfo`` (and logged),
        never raised.
        """
        module = plugin.__name__ if isinstance(plugin, ModuleType) else _qualname(plugin)
        info = PluginInfo(name or module, module, distribution)
        with self._lock:
            self._add(plugin, info)
        return info

    def _add(self, plugin: object, info: PluginInfo) -> None:
        self.plugins.append(info)
        try:
            name = self.register(plugin, name=f"{info.module}:{info.name}")
        except Exception as exc:
            self._mark_broken(info, exc)
            return
        if name is None:  # pluggy: blocked
            return
        self._warn_unknown_hooks(plugin, info)
        registrar = self._registrar(info)
        try:
            for impl in self.hook.register_model_types.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(*[registrar for _ in impl.argnames])
        except Exception as exc:
            self.unregister(plugin)
            self._mark_broken(info, exc)
            self._forget(info)

    def _warn_unknown_hooks(self, plugin: object, info: PluginInfo) -> None:
        for caller in self.get_hookcallers(plugin) or ():
            if caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    modelwire_logger().warning(
                        "modelwire plugin %r from %s implements %r, which is not a modelwire"
                        " hook; it is ignored. Mark it hookimpl(optionalhook=True) if it is"
                        " meant for a newer modelwire.",
                        info.name,
                        info.distribution,
                        caller.name,
                    )

    def _mark_broken(self, info: PluginInfo, exc: BaseException) -> None:
        import traceback

        info.error = f"{type(exc).__name__}: {exc}"
        info.detail = "".join(traceback.format_exception(exc))
        if info not in self.plugins:
            self.plugins.append(info)
        modelwire_logger().warning(
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
            registration = TypeRegistration(model_type, target, info, tuple(aliases))
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
        modelwire_logger().warning(
            "model_type %r is registered twice: by %s and by %s",
            name,
            claims[0].distribution,
            registration.distribution,
        )

    def _forget(self, info: PluginInfo) -> None:
        for name, registration in list(self.types.items()):
            if registration.source is info:
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
        import difflib

        message = f"unknown model_type {model_type!r}"
        known = sorted(set(self.types) | set(FIRST_PARTY_TYPES))
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

    def register_commands(self, cli: Any) -> None:
        """Let every plugin add its sub-commands; one that fails is logged and skipped."""
        self.discover()
        for impl in self.hook.register_commands.get_hookimpls():
            try:
                impl.function(*[cli for _ in impl.argnames])
            except Exception as exc:
                modelwire_logger().warning(
                    "plugin %s failed to add its commands: %s", impl.plugin_name, exc
                )


def _entry_points() -> list[metadata.EntryPoint]:
    """The group's entry points, each distribution's once (the first on ``sys.path``
    wins, as an import would), in a stable order so that conflicts and ``modelwire
    plugins`` read the same everywhere. A distribution whose metadata cannot be read
    (not UTF-8, say) is skipped with a note in the debug log: it must not stop
    discovery of the others.

    Distributions are told apart by the normalized name that
    ``importlib.metadata.entry_points()`` itself dedupes by, which comes from the
    folder's name (``modelwire_openai-0.1.0.dist-info``) without parsing ``METADATA``;
    no ``METADATA`` is parsed here (see ``PluginInfo``)."""
    seen: set[str] = set()
    found: list[metadata.EntryPoint] = []
    marker = f"[{ENTRY_POINT_GROUP}]"
    for distribution in metadata.distributions():
        try:
            key = distribution._normalized_name
            if key in seen:
                continue
            text = distribution.read_text("entry_points.txt")
            if not text or marker not in text:
                continue
            points = distribution.entry_points.select(group=ENTRY_POINT_GROUP)
        except Exception as exc:
            modelwire_logger().debug(
                "skipping a distribution whose metadata cannot be read: %s", exc
            )
            continue
        seen.add(key)
        found.extend(points)
    return sorted(found, key=lambda point: (point.value, point.name))


def _qualname(plugin: object) -> str:
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def _version_of(distribution: str) -> str:
    if distribution.startswith("modelwire ("):
        from modelwire import __version__

        return __version__
    return "?"


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def plugin_manager() -> PluginManager:
    """The process-wide plugin manager (a ``pluggy.PluginManager``), discovered on first use."""
    global _manager
    manager = _manager
    if manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = PluginManager()
            manager = _manager
    return manager.discover()
