"""OpenAI's wire format for the fake server: chat completions (JSON and SSE), embeddings,
image generations and errors, as responders that answer from what the SDK sent.

Test modules reach these through the ``wire`` fixture (``--import-mode=importlib``
makes conftest modules unimportable by name).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelwire.testing import FakeServer, Reply, Request

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
IMAGES_PATH = "/v1/images/generations"

#: What the chat responder answers unless told otherwise, and its token counts.
REPLY_TEXT = "Hi there, how can I help?"
CHAT_USAGE = {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}

#: The smallest valid PNG (1x1 transparent pixel).
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

Responder = Callable[[Request], Reply]

ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_BASE_URL",
    "OPENAI_CUSTOM_HEADERS",
    "OPENAI_ADMIN_KEY",
)


@pytest.fixture(autouse=True)
def _clean_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own OpenAI settings must not leak into (or rescue) a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


class OpenAIWire:
    """Builders of OpenAI payloads and responders that speak them."""

    chat_path = CHAT_PATH
    embeddings_path = EMBEDDINGS_PATH
    images_path = IMAGES_PATH
    reply_text = REPLY_TEXT
    chat_usage = CHAT_USAGE
    png_bytes = PNG_BYTES

    # -- chat --------------------------------------------------------------------------
    @staticmethod
    def completion(
        text: str | None = REPLY_TEXT,
        *,
        model: str = "gpt-4o-2024-08-06",
        usage: dict[str, int] | None = CHAT_USAGE,
        finish_reason: str = "stop",
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if tool_calls is not None:
            message["tool_calls"] = tool_calls
        payload: dict[str, Any] = {
            "id": "chatcmpl-123",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "system_fingerprint": "fp_1",
        }
        if usage is not None:
            payload["usage"] = usage
        return payload

    @staticmethod
    def chunks(
        text: str = REPLY_TEXT,
        *,
        model: str = "gpt-4o-2024-08-06",
        usage: dict[str, int] | None = CHAT_USAGE,
        pieces: int = 3,
    ) -> list[dict[str, Any]]:
        """The events of a streamed completion: role, text pieces, finish, then usage."""

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": "chatcmpl-123",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": choices,
                **extra,
            }

        size = max(1, -(-len(text) // pieces))
        parts = [text[i : i + size] for i in range(0, len(text), size)]
        events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        events += [chunk([{"index": 0, "delta": {"content": part}}]) for part in parts]
        events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if usage is not None:
            events.append(chunk([], usage=usage))
        return events

    def chat(
        self, text: str = REPLY_TEXT, *, usage: dict[str, int] = CHAT_USAGE, **options: Any
    ) -> Responder:
        """Answers JSON, or SSE when asked to stream (with usage only if asked for it)."""

        def respond(request: Request) -> Reply:
            body = request.json()
            model = body.get("model", "gpt-4o")
            if body.get("stream"):
                wants_usage = (body.get("stream_options") or {}).get("include_usage")
                events = self.chunks(text, model=model, usage=usage if wants_usage else None)
                return Reply.sse(events, done="[DONE]", **options)
            return Reply.json(self.completion(text, model=model, usage=usage), **options)

        return respond

    # -- embeddings --------------------------------------------------------------------
    @staticmethod
    def vector_of(text: str) -> list[float]:
        """A vector derived from the text, so a test can tell which input it belongs to."""
        return [float(len(text)), float(sum(map(ord, text)) % 97), 0.25]

    def embeddings(self, *, shuffle: bool = False) -> Responder:
        """One vector per input (in reverse order when ``shuffle``), float or base64."""

        def respond(request: Request) -> Reply:
            body = request.json()
            inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
            data = []
            for index, text in enumerate(inputs):
                vector: Any = self.vector_of(text)
                if body.get("encoding_format") == "base64":
                    vector = base64.b64encode(_float32(vector)).decode()
                data.append({"object": "embedding", "index": index, "embedding": vector})
            if shuffle:
                data.reverse()
            tokens = sum(len(text.split()) for text in inputs)
            return Reply.json(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )

        return respond

    # -- images ------------------------------------------------------------------------
    @staticmethod
    def image_url(index: int) -> str:
        return f"https://images.example.test/img-{index}.png"

    def images(self) -> Responder:
        """``n`` images, as URLs or (``response_format: b64_json``) as base64 PNGs."""

        def respond(request: Request) -> Reply:
            body = request.json()
            data = []
            for index in range(int(body.get("n") or 1)):
                if body.get("response_format") == "b64_json":
                    data.append({"b64_json": base64.b64encode(self.png_bytes).decode()})
                else:
                    data.append({"url": self.image_url(index), "revised_prompt": body["prompt"]})
            return Reply.json({"created": 1_700_000_000, "data": data})

        return respond

    # -- errors ------------------------------------------------------------------------
    @staticmethod
    def error(
        status: int,
        message: str = "scripted failure",
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> Reply:
        kinds = {401: "invalid_request_error", 429: "requests", 500: "server_error"}
        body = {
            "error": {
                "message": message,
                "type": kinds.get(status, "invalid_request_error"),
                "param": None,
                "code": code,
            }
        }
        return Reply.error(status, body, headers=headers)


def _float32(vector: list[float]) -> bytes:
    import array

    return array.array("f", vector).tobytes()


@pytest.fixture
def wire() -> OpenAIWire:
    return OpenAIWire()


@pytest.fixture
def load(server: FakeServer) -> Callable[..., Any]:
    """Load one config (pointed at the fake server unless it says otherwise) as a wrapper."""
    from modelwire.registry import ModelRegistry

    def load_config(config: dict[str, Any]) -> Any:
        config = json.loads(json.dumps(config))
        config.setdefault("retry", {"max_retries": 0})
        config.setdefault("timeout", 5.0)
        config.setdefault("client_args", {}).setdefault("base_url", server.url + "/v1")
        return ModelRegistry([config]).load_model(config["config_name"])

    return load_config
