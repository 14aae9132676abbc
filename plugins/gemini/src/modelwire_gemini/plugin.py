"""The entry-point module: registers the Gemini model types, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


@hookimpl
def register_model_types(register: Any) -> None:
    register("gemini_chat", "modelwire_gemini.chat:GeminiChatWrapper")
    register("gemini_embedding", "modelwire_gemini.embedding:GeminiEmbeddingWrapper")
