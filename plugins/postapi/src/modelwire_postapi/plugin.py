"""The entry-point module: registers the POST API model types, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


@hookimpl
def register_model_types(register: Any) -> None:
    register("post_api", "modelwire_postapi.api:PostAPIGenericWrapper")
    register("post_api_chat", "modelwire_postapi.chat:PostAPIChatWrapper")
