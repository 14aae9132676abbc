"""Every hook a modelwire plugin can implement, in one documented place.

A plugin is a module (or object) named by an entry point in the ``modelwire`` group::

    [project.entry-points.modelwire]
    myplugin = "my_package.plugin"

holding functions marked with ``modelwire.hookimpl``, which is
``pluggy.HookimplMarker("modelwire")``. Keep that module light: discovery imports
it, so it must not import an SDK. Everything pluggy offers works: ``tryfirst``/
``trylast``, ``wrapper=True``/``hookwrapper=True``, ``specname``, ``optionalhook``
and the manager's tracing (``modelwire.plugin_manager().trace``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from modelwire.calls import Call
    from modelwire.errors import ModelWireError
    from modelwire.response import ModelResponse

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: pluggy's project name: the entry-point group and the markers' name.
PROJECT = "modelwire"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class RegisterModelType(Protocol):
    def __call__(self, model_type: str, target: str, aliases: tuple[str, ...] = ()) -> None: ...


class CommandRegistry(Protocol):
    def add(self, name: str, *, help: str, configure: Any, run: Any) -> None: ...


@hookspec
def register_model_types(register: RegisterModelType) -> None:
    """Register the model types this plugin provides.

    Call ``register("my_type", "my_package.wrapper:MyWrapper", aliases=("my_alias",))``
    once per type. The target is an import string so that the wrapper module (and
    its SDK) is imported only when a config of that type is first used. modelwire
    calls this hook of each plugin on its own, when the plugin is registered, so
    that a plugin whose registration fails is reported without the others failing.
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
    """A call was admitted by its budget and is about to be sent (once per call,
    not per retry: ``call.attempts`` counts those)."""


@hookspec
def on_call_end(call: Call, response: ModelResponse) -> None:
    """A call finished; ``response.usage`` holds what the service reported.

    For a stream, ``response`` is assembled from its chunks; a stream the caller
    stopped early ends here too, with ``finish_reason="cancelled"``.
    """


@hookspec
def on_call_error(call: Call, error: ModelWireError) -> None:
    """A call failed after all retries, was refused by its budget, or was interrupted
    (cancelled, ``KeyboardInterrupt``): ``call.admitted`` tells whether it was sent."""
