"""Built-in plugin: books each finished call's usage and spend on its config's tracker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelwire.hookspecs import hookimpl

if TYPE_CHECKING:
    from modelwire.calls import Call
    from modelwire.errors import ModelWireError
    from modelwire.response import ModelResponse


@hookimpl
def on_call_end(call: Call, response: ModelResponse) -> None:
    call.tracker.settle(call.reserved, response.usage, call.wrapper.cost_of(response.usage))


@hookimpl
def on_call_error(call: Call, error: ModelWireError) -> None:
    if call.admitted:
        call.tracker.release(call.reserved)
