"""modelwire's conformance suite for ``post_api`` and ``post_api_chat``, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

from modelwire.testing import FakeServer, Reply, Request
from modelwire.testing.conformance import ConformanceSuite

from .conftest import USAGE, USAGE_JSON, llm_service, openai_chat_service
from .test_postapi_tools import completion, delta, event, finish, fragment, wire_call


class _PostAPISuite(ConformanceSuite):
    """What both model types of the distribution share under the suite."""

    distribution = "modelwire-postapi"
    sdk_modules = ("httpx",)
    output = "text"
    streams = True
    expected_text = "Echo: Hello"
    expected_usage = USAGE
    priced_model = False  # the user's own service: no price can be known
    generation_config = {"json_args": {"temperature": 0.25}}


class TestPostAPIConformance(_PostAPISuite):
    """The serving distribution's ``/llm/``: JSON replies, NDJSON streams, FastAPI-style errors."""

    model_type = "post_api"
    routes = [("POST", "/llm/")]

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": "conformance-post-api",
            "model_type": "post_api",
            "api_url": server.url + "/llm/",
            "headers": {"Authorization": f"Bearer {self.secret}"},
            "json_args": {"max_length": 256, "temperature": 0.5},
            "stream": True,
        }

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/llm/", llm_service())

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return Reply.json({"detail": f"scripted status {status}"}, status, headers=headers)


class TestPostAPIChatConformance(_PostAPISuite):
    """An OpenAI-compatible server (vLLM, FastChat): chat completions and SSE chunks."""

    model_type = "post_api_chat"
    routes = [("POST", "/v1/chat/completions")]
    supports_tools = True
    supports_structured_output = True
    supports_images = True
    supports_thinking = True

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": "conformance-post-api-chat",
            "model_type": "post_api_chat",
            "api_url": server.url + "/v1/chat/completions",
            "headers": {"x-api-key": self.secret},
            "messages_key": "messages",
            "json_args": {"model": "local-llama", "temperature": 0.0},
            "stream": True,
            "stream_args": {"stream": True, "stream_options": {"include_usage": True}},
        }

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/v1/chat/completions", openai_chat_service())

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: list[tuple[str, str, dict[str, Any]]] | None = None,
        thinking: str = "",
    ) -> None:
        """A vLLM-style ``chat.completion``, or its SSE chunks when the body asks to stream."""
        calls = [
            wire_call(call_id, name, json.dumps(arguments))
            for call_id, name, arguments in tool_calls or ()
        ]
        reason = "tool_calls" if calls else "stop"

        def respond(request: Request) -> Reply:
            if not request.json().get("stream"):
                message: dict[str, Any] = {"reasoning_content": thinking} if thinking else {}
                if calls:
                    message["tool_calls"] = calls
                return Reply.json(completion(text or None, finish_reason=reason, **message))
            events: list[dict[str, Any]] = [delta(role="assistant", content="")]
            if thinking:
                events.append(delta(reasoning_content=thinking))
            if text:
                events.append(delta(content=text))
            for index, call in enumerate(calls):
                function = call["function"]
                events.append(
                    fragment(index, function["arguments"], id=call["id"], name=function["name"])
                )
            events += [finish(reason), event([], usage=USAGE_JSON)]
            return Reply.sse(events, done="[DONE]")

        server.route("POST", "/v1/chat/completions", respond)
