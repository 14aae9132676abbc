"""The entry-point module: registers the model type, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


@hookimpl
def register_model_types(register: Any) -> None:
    register("reverse_echo", "modelwire_reverse_echo.reverse:ReverseEchoWrapper")
