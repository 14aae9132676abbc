"""Every hook a modelwire plugin can implement, in one documented place.

A plugin is a module named by an entry point in the ``modelwire`` group::

    [project.entry-points.modelwire]
    myplugin = "my_package.plugin"

holding functions marked with ``modelwire.hookimpl``. Keep that module light:
discovery imports it, so it must not import an SDK.

``modelwire.hookimpl`` writes exactly what ``pluggy.HookimplMarker("modelwire")``
writes (a ``modelwire_impl`` options dict on the function), so plugins written with
pluggy's marker work unchanged; modelwire's own marker just spares discovery the
~10 ms of importing pluggy (and ``inspect``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from modelwire.calls import Call
    from modelwire.errors import ModelWireError
    from modelwire.response import ModelResponse

__all__ = ["PROJECT", "HookimplMarker", "HookspecMarker", "hookimpl", "hookspec", "specs"]

#: pluggy's project name: markers store their options under ``modelwire_impl`` / ``_spec``.
PROJECT = "modelwire"

_F = TypeVar("_F", bound=Callable[..., Any])


class HookspecMarker:
    """Marks a hook specification, as ``pluggy.HookspecMarker("modelwire")`` does."""

    def __call__(self, function: _F) -> _F:
        setattr(
            function,
            PROJECT + "_spec",
            {
                "firstresult": False,
                "historic": False,
                "warn_on_impl": None,
                "warn_on_impl_args": None,
            },
        )
        return function


class HookimplMarker:
    """Marks a hook implementation, as ``pluggy.HookimplMarker("modelwire")`` does.

    ``tryfirst``/``trylast`` order the implementations of one hook and ``specname``
    names the hook when the function's name differs. ``optionalhook`` silences the
    warning for a hook this version of modelwire does not know. ``wrapper`` and
    ``hookwrapper`` are accepted for pluggy compatibility and rejected at discovery:
    modelwire calls implementations directly.
    """

    def __call__(
        self,
        function: _F | None = None,
        *,
        wrapper: bool = False,
        hookwrapper: bool = False,
        optionalhook: bool = False,
        tryfirst: bool = False,
        trylast: bool = False,
        specname: str | None = None,
    ) -> Any:
        opts = {
            "wrapper": wrapper,
            "hookwrapper": hookwrapper,
            "optionalhook": optionalhook,
            "tryfirst": tryfirst,
            "trylast": trylast,
            "specname": specname,
        }

        def mark(func: _F) -> _F:
            setattr(func, PROJECT + "_impl", opts)
            return func

        return mark if function is None else mark(function)


hookspec = HookspecMarker()
hookimpl = HookimplMarker()


class RegisterModelType(Protocol):
    def __call__(self, model_type: str, target: str, aliases: tuple[str, ...] = ()) -> None: ...


class CommandRegistry(Protocol):
    def add(
        self,
        name: str,
        *,
        help: str,
        configure: Any,
        run: Any,
    ) -> None: ...


@hookspec
def register_model_types(register: RegisterModelType) -> None:
    """Register the model types this plugin provides.

    Call ``register("my_type", "my_package.wrapper:MyWrapper", aliases=("my_alias",))``
    once per type. The target is an import string so that the wrapper module (and
    its SDK) is imported only when a config of that type is first used.
    """


@hookspec
def register_commands(cli: CommandRegistry) -> None:
    """Add sub-commands to the ``modelwire`` command line.

    ``cli.add("serve", help="...", configure=fn(parser), run=fn(args) -> int)``:
    ``configure`` adds arguments to an ``argparse`` parser, ``run`` executes the
    parsed command and returns the exit code.
    """


@hookspec
def on_call_start(call: Call) -> None:
    """A call was admitted (budget checked) and is about to be sent."""


@hookspec
def on_call_end(call: Call, response: ModelResponse) -> None:
    """A call finished; ``response.usage`` holds what the service reported."""


@hookspec
def on_call_error(call: Call, error: ModelWireError) -> None:
    """A call failed after all retries, or was refused by its budget."""


def specs() -> dict[str, tuple[str, ...]]:
    """Each hook's name and the arguments it is called with, read from the specs above."""
    return {
        name: value.__code__.co_varnames[: value.__code__.co_argcount]
        for name, value in globals().items()
        if hasattr(value, PROJECT + "_spec")
    }
