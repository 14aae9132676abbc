"""modelwire's conformance suite, once per Ollama model type, over real HTTP."""

from __future__ import annotations

from typing import Any

from modelwire import Usage
from modelwire.testing import FakeServer, Reply, Request
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
from .test_ollama_tools import line, reply, stream, wire_call


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
    supports_tools = True
    forces_tool_choice = False  # Ollama has no way to force a tool
    supports_structured_output = True
    supports_images = True
    supports_thinking = True

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/api/chat", chat_service())

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: list[tuple[str, str, dict[str, Any]]] | None = None,
        thinking: str = "",
    ) -> None:
        # Ollama gives its calls no ids (the wrapper numbers them): the ids are dropped.
        calls = [wire_call(name, arguments) for _, name, arguments in tool_calls or ()]

        def respond(request: Request) -> Reply:
            if not request.json().get("stream"):
                message: dict[str, Any] = {"content": text}
                if thinking:
                    message["thinking"] = thinking
                if calls:
                    message["tool_calls"] = calls
                return reply(**message)
            lines = [line(thinking=thinking)] if thinking else []
            lines += [line(content=text)] if text else []
            lines += [line(tool_calls=[call]) for call in calls]
            return stream(*lines)

        server.route("POST", "/api/chat", respond)


class TestOllamaGenerateConformance(OllamaSuite):
    model_type = "ollama_generate"
    output = "text"
    streams = True
    expected_text = TEXT
    expected_usage = USAGE
    routes = [("POST", "/api/generate")]
    supports_structured_output = True

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/api/generate", generate_service())

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: list[tuple[str, str, dict[str, Any]]] | None = None,
        thinking: str = "",
    ) -> None:
        # Only structured output is declared: /api/generate has no tools here, and the
        # suite asks for no reasoning.
        assert not tool_calls and not thinking, "ollama_generate declares no tools or thinking"
        server.route("POST", "/api/generate", generate_service([text]))


class TestOllamaEmbeddingConformance(OllamaSuite):
    model_type = "ollama_embedding"
    output = "embedding"
    streams = False
    expected_embedding_count = 2
    expected_usage = Usage(2 * EMBED_TOKENS_PER_INPUT, 0, 2 * EMBED_TOKENS_PER_INPUT)
    routes = [("POST", "/api/embed")]

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/api/embed", embed_service())
