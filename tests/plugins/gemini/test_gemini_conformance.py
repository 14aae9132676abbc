"""modelwire's conformance suite for each Gemini model type, through the real google-genai SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelwire import Usage
from modelwire.testing import FakeServer, Reply, Request
from modelwire.testing.conformance import ConformanceSuite

# google-genai subclasses aiohttp.ClientSession for its async transport; aiohttp frowns on it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


class _GeminiSuite(ConformanceSuite):
    distribution = "modelwire-gemini"
    sdk_modules = ("google.genai",)
    model_name = ""

    @pytest.fixture(autouse=True)
    def _wire(self, wire: Any) -> None:
        self.wire = wire

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": f"conformance-{self.model_type}",
            "model_type": self.model_type,
            "model_name": self.model_name,
            "api_key": self.secret,
            "base_url": server.url,
        }

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return self.wire.error(status, f"scripted {status}", headers=headers)


class TestGeminiChatConformance(_GeminiSuite):
    model_type = "gemini_chat"
    model_name = "gemini-pro"
    output = "text"
    streams = True
    expected_text = "Hello there, how can I help?"
    expected_usage = Usage(7, 6, 13)
    generation_config = {"generation_config": {"temperature": 0.25}}
    routes = [("POST", "/v1/models/{model}:generateContent")]
    stream_route = ("POST", "/v1/models/{model}:streamGenerateContent")
    supports_tools = True
    supports_structured_output = True
    supports_images = True
    supports_thinking = True

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.generate_path, self.wire.chat())
        server.route("POST", self.wire.stream_path, self.wire.stream())

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: list[tuple[str, str, dict[str, Any]]] | None = None,
        thinking: str = "",
    ) -> None:
        """Thought part, text part and functionCall parts, as Gemini sends them: its calls
        carry no ids (the plugin numbers them), so the given ids are ignored. The stream
        sends one part per event, the usage and finish reason on the last."""
        wire = self.wire
        parts: list[dict[str, Any]] = []
        if thinking:
            parts.append({"text": thinking, "thought": True})
        if text:
            parts.append({"text": text})
        for _id, name, arguments in tool_calls or ():
            parts.append({"functionCall": {"name": name, "args": arguments}})

        def checked(build: Callable[[], Reply]) -> Callable[[Request], Reply]:
            def respond(request: Request) -> Reply:
                problem = wire.request_problem(request)
                if problem:
                    return wire.error(400, problem, status="INVALID_ARGUMENT")
                return build()

            return respond

        def events() -> Reply:
            return Reply.sse(
                [
                    wire.response(
                        None,
                        parts=[part],
                        usage=wire.chat_usage if last else None,
                        finish_reason="STOP" if last else None,
                    )
                    for index, part in enumerate(parts)
                    for last in [index == len(parts) - 1]
                ]
            )

        server.route(
            "POST",
            wire.generate_path,
            checked(lambda: Reply.json(wire.response(None, parts=parts))),
        )
        server.route("POST", wire.stream_path, checked(events))


class TestGeminiEmbeddingConformance(_GeminiSuite):
    model_type = "gemini_embedding"
    model_name = "models/gemini-embedding-001"  # priced: budgets need a cost
    output = "embedding"
    expected_embedding_count = 2
    expected_usage = Usage(4, 0, 4)
    routes = [("POST", "/v1/models/{model}:batchEmbedContents")]

    def script_success(self, server: FakeServer) -> None:
        server.route(
            "POST",
            self.wire.embed_path,
            self.wire.embeddings(usage={"promptTokenCount": 4, "totalTokenCount": 4}),
        )
