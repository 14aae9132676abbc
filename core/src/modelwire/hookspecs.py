"""Every hook a modelwire plugin can implement, in one documented place.

A plugin is a module named by an entry point in the ``modelwire`` group::

    [project.entry-points.modelwire]
    myplugin = "my_package.plugin"

holding functions marked with ``modelwire.hookimpl`` (or
``pluggy.HookimplMarker("modelwire")``). Keep that module light: discovery
imports it, so it must not import an SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from modelwire.calls import Call
    from modelwire.errors import ModelWireError
    from modelwire.response import ModelResponse

hookspec = pluggy.HookspecMarker("modelwire")


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
