"""modelwire's conformance suite for each OpenAI model type, through the real SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelwire import Usage
from modelwire.testing import FakeServer, Reply, Request
from modelwire.testing.conformance import ConformanceSuite


class _OpenAISuite(ConformanceSuite):
    distribution = "modelwire-openai"
    sdk_modules = ("openai",)
    model_name = ""
    env_secret_var = "OPENAI_API_KEY"

    @pytest.fixture(autouse=True)
    def _wire(self, wire: Any) -> None:
        self.wire = wire

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": f"conformance-{self.model_type}",
            "model_type": self.model_type,
            "model_name": self.model_name,
            "api_key": self.secret,
            "client_args": {"base_url": server.url + "/v1"},
        }

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return self.wire.error(status, f"scripted {status}", headers=headers)


class TestOpenAIChatConformance(_OpenAISuite):
    model_type = "openai"
    model_name = "gpt-4o"
    output = "text"
    streams = True
    expected_text = "Hi there, how can I help?"
    expected_usage = Usage(9, 7, 16)
    routes = [("POST", "/v1/chat/completions")]
    generation_config = {"generate_args": {"temperature": 0.25}}

    supports_tools = True
    supports_structured_output = True
    supports_images = True
    supports_thinking = True

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.chat_path, self.wire.chat())

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: list[tuple[str, str, dict[str, Any]]] | None = None,
        thinking: str = "",
    ) -> None:
        wire_calls = [
            {
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for id, name, args in tool_calls or ()
        ]
        message: dict[str, Any] = {"content": text or None}
        if thinking:
            message["reasoning_content"] = thinking
        finish = "tool_calls" if wire_calls else "stop"

        def respond(request: Request) -> Reply:
            if not request.json().get("stream"):
                payload = self.wire.completion(text or None, tool_calls=wire_calls or None)
                payload["choices"][0]["message"].update(message)
                payload["choices"][0]["finish_reason"] = finish
                return Reply.json(payload)
            deltas: list[dict[str, Any]] = [{"role": "assistant"}]
            if thinking:
                deltas.append({"reasoning_content": thinking})
            if text:
                deltas.append({"content": text})
            for index, call in enumerate(wire_calls):  # each call's arguments in two pieces
                arguments = call["function"]["arguments"]
                head = {"index": index, "id": call["id"], "type": "function"}
                deltas.append(
                    {"tool_calls": [{**head, "function": {"name": call["function"]["name"],
                                                          "arguments": arguments[:3]}}]}
                )  # fmt: skip
                deltas.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": arguments[3:]}}]}
                )
            events = [_chunk({"index": 0, "delta": delta}) for delta in deltas]
            events.append(_chunk({"index": 0, "delta": {}, "finish_reason": finish}))
            return Reply.sse(events, done="[DONE]")

        server.route("POST", self.wire.chat_path, respond)


def _chunk(choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [choice],
    }


class TestOpenAIEmbeddingConformance(_OpenAISuite):
    model_type = "openai_embedding"
    model_name = "text-embedding-3-small"
    output = "embedding"
    expected_embedding_count = 2
    expected_usage = Usage(2, 0, 2)
    routes = [("POST", "/v1/embeddings")]
    generation_config = {"generate_args": {"dimensions": 64}}
    generation_on_wire = ("dimensions", 64)

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.embeddings_path, self.wire.embeddings())


class TestOpenAIDallEConformance(_OpenAISuite):
    model_type = "openai_dall_e"
    model_name = "dall-e-3"
    output = "image"
    reports_usage = False
    expected_image_urls = ["https://images.example.test/img-0.png"]
    routes = [("POST", "/v1/images/generations")]
    generation_config = {"generate_args": {"size": "1024x1024"}}
    generation_on_wire = ("size", "1024x1024")

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.images_path, self.wire.images())
