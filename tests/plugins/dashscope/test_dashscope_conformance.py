"""modelwire's conformance suite for the four DashScope model types, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelwire import Usage
from modelwire.testing import FakeServer, Reply, Request
from modelwire.testing.conformance import ConformanceSuite

API = "/api/v1"
ToolCalls = list[tuple[str, str, dict[str, Any]]]


def wire_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool call as DashScope's ``message.tool_calls`` holds it: arguments as JSON text."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def call_fragments(index: int, call: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One streamed tool call as DashScope sends it: id and name first, then the
    argument JSON in two pieces whose fragments carry an empty id."""
    call_id, name, arguments = call
    text = json.dumps(arguments)
    half = len(text) // 2
    first = {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    deltas = [{"tool_calls": [{"index": index, **first}]}]
    for piece in (text[:half], text[half:]):
        fragment = {"index": index, "id": "", "type": "function", "function": {"arguments": piece}}
        deltas.append({"tool_calls": [fragment]})
    return deltas


class DashScopeSuite(ConformanceSuite):
    """What the four types share: the distribution, the SDK, DashScope-shaped errors."""

    distribution = "modelwire-dashscope"
    env_secret_var = "DASHSCOPE_API_KEY"
    sdk_modules = ("dashscope",)

    @pytest.fixture(autouse=True)
    def _wire_type(self, wire_type: type[Any]) -> None:
        self.wire_type = wire_type

    #: Where chat calls go, and whether replies carry content as parts (``[{"text": ...}]``,
    #: the multimodal endpoint's shape) rather than a string.
    chat_path = f"{API}/services/aigc/text-generation/generation"
    content_as_parts = False

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return self.wire_type.error(status, headers=headers)

    def _content(self, text: str) -> Any:
        if not self.content_as_parts:
            return text
        return [{"text": text}] if text else []

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: ToolCalls | None = None,
        thinking: str = "",
    ) -> None:
        """DashScope's message reply (JSON for a call, incremental SSE for a stream, by the
        ``X-DashScope-SSE`` header): ``reasoning_content``, ``content`` and ``tool_calls``."""
        wire, calls = self.wire_type, tool_calls or []
        finish = "tool_calls" if calls else "stop"
        message: dict[str, Any] = {"content": self._content(text)}
        if thinking:
            message["reasoning_content"] = thinking
        if calls:
            message["tool_calls"] = [wire_call(*call) for call in calls]
        deltas: list[dict[str, Any]] = []
        for piece in (thinking[: len(thinking) // 2], thinking[len(thinking) // 2 :]):
            if piece:
                deltas.append({"content": self._content(""), "reasoning_content": piece})
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            if piece:
                deltas.append({"content": self._content(piece)})
        for index, call in enumerate(calls):
            deltas += [{"content": self._content(""), **d} for d in call_fragments(index, call)]
        deltas.append({"content": self._content("")})

        def respond(request: Request) -> Reply:
            if request.header("x-dashscope-sse") == "enable":
                return wire.message_stream(deltas, finish=finish)
            return wire.message_reply(message, finish=finish)

        server.route("POST", self.chat_path, respond)

    def base_config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": f"conformance-{self.model_type}",
            "model_type": self.model_type,
            "api_key": self.secret,
            "base_url": server.url + API,
        }


class TestDashScopeChatConformance(DashScopeSuite):
    model_type = "dashscope_chat"
    output = "text"
    streams = True
    # qwen-max is a text model: image blocks are refused in ``format`` (they need
    # ``dashscope_multimodal``); tools, json_object output and reasoning_content it reads.
    supports_tools = True
    supports_structured_output = True
    supports_images = False
    supports_thinking = True
    expected_text = "Hello from Qwen"
    expected_usage = Usage(12, 5, 17)
    routes = [("POST", f"{API}/services/aigc/text-generation/generation")]
    generation_config = {"generate_args": {"temperature": 0.25}}

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "qwen-max",
            "generate_args": {"temperature": 0.5},
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).chat(self.expected_text, (12, 5))


class TestDashScopeMultiModalConformance(DashScopeSuite):
    """``dashscope_multimodal``: a vision model at the multimodal-generation endpoint."""

    model_type = "dashscope_multimodal"
    output = "text"
    streams = True
    chat_path = f"{API}/services/aigc/multimodal-generation/generation"
    content_as_parts = True
    # Images inlined as data URLs; tools, json_object output and reasoning_content (the
    # qvq/thinking vision models) as on dashscope_chat.
    supports_tools = True
    supports_structured_output = True
    supports_images = True
    supports_thinking = True
    expected_text = "Hello from Qwen-VL"
    expected_usage = Usage(12, 5, 17)
    routes = [("POST", f"{API}/services/aigc/multimodal-generation/generation")]
    generation_config = {"generate_args": {"temperature": 0.25}}

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "qwen-vl-max",
            "generate_args": {"temperature": 0.5},
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).chat(
            self.expected_text,
            (12, 5),
            path=f"{API}/services/aigc/multimodal-generation/generation",
        )


class TestDashScopeTextEmbeddingConformance(DashScopeSuite):
    model_type = "dashscope_text_embedding"
    output = "embedding"
    expected_embedding_count = 2
    expected_usage = Usage(6, 0, 6)
    routes = [("POST", f"{API}/services/embeddings/text-embedding/text-embedding")]
    generation_config = {"generate_args": {"dimension": 64}}
    generation_on_wire = ("dimension", 64)

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "text-embedding-v2",
            "generate_args": {"dimension": 8},
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).embeddings(tokens_per_text=3)


class TestDashScopeImageSynthesisConformance(DashScopeSuite):
    model_type = "dashscope_image_synthesis"
    output = "image"
    reports_usage = False
    expected_image_urls = ["https://dashscope-result.example/a-lighthouse-at-dawn/0.png"]
    routes = [("POST", f"{API}/services/aigc/text2image/image-synthesis")]
    generation_config = {"generate_args": {"seed": 7}}
    generation_on_wire = ("seed", 7)

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "wanx-v1",
            "generate_args": {"n": 1},
            "poll_interval": 0.01,
            "max_poll_interval": 0.05,
            "wait_timeout": 5.0,
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).images(running_polls=2)
