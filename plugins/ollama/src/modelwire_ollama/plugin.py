"""The entry-point module: registers the Ollama model types, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


@hookimpl
def register_model_types(register: Any) -> None:
    register("ollama_chat", "modelwire_ollama.chat:OllamaChatWrapper")
    register("ollama_embedding", "modelwire_ollama.embedding:OllamaEmbeddingWrapper")
    register("ollama_generate", "modelwire_ollama.generate:OllamaGenerateWrapper")
