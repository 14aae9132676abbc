"""modelwire's conformance suite, once per Ollama model type, over real HTTP."""

from __future__ import annotations

from typing import Any

from modelwire import Usage
from modelwire.testing import FakeServer, Reply
from modelwire.testing.conformance import ConformanceSuite

from .conftest import (
    EMBED_TOKENS_PER_INPUT,
    TEXT,
    USAGE,
    chat_service,
    embed_service,
    generate_service,
    ollama_error,
)


class OllamaSuite(ConformanceSuite):
    generation_config = {"options": {"temperature": 0.25}}
    """What the three types share: the SDK, the config keys and Ollama's error shape."""

    distribution = "modelwire-ollama"
    sdk_modules = ("ollama",)
    priced_model = False

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": f"conformance-{self.model_type}",
            "model_type": self.model_type,
            "model": "llama3.2",
            "host": server.url,
            "headers": {"Authorization": f"Bearer {self.secret}"},
            "options": {"temperature": 0.5, "seed": 123},
            "keep_alive": "5m",
        }

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return ollama_error(status, f"scripted status {status}", headers)


class TestOllamaChatConformance(OllamaSuite):
    model_type = "ollama_chat"
    output = "text"
    streams = True
    expected_text = TEXT
    expected_usage = USAGE
    routes = [("POST", "/api/chat")]

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/api/chat", chat_service())


class TestOllamaGenerateConformance(OllamaSuite):
    model_type = "ollama_generate"
    output = "text"
    streams = True
    expected_text = TEXT
    expected_usage = USAGE
    routes = [("POST", "/api/generate")]

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/api/generate", generate_service())


class TestOllamaEmbeddingConformance(OllamaSuite):
    model_type = "ollama_embedding"
    output = "embedding"
    streams = False
    expected_embedding_count = 2
    expected_usage = Usage(2 * EMBED_TOKENS_PER_INPUT, 0, 2 * EMBED_TOKENS_PER_INPUT)
    routes = [("POST", "/api/embed")]

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/api/embed", embed_service())
