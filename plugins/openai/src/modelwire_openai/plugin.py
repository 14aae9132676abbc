"""The entry-point module: registers the model types, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


@hookimpl
def register_model_types(register: Any) -> None:
    register("openai", "modelwire_openai.chat:OpenAIChatWrapper", aliases=("openai_chat",))
    register("openai_embedding", "modelwire_openai.embedding:OpenAIEmbeddingWrapper")
    register("openai_dall_e", "modelwire_openai.image:OpenAIDallEWrapper")
