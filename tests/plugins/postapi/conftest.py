"""Responders speaking the shapes users' own services reply with, and config helpers.

* ``llm_service``: the serving distribution's (and the seed Flask script's) ``POST /llm/``:
  ``response`` at top level and at ``data.response.choices[0].message.content``, token
  counts as ``usage`` and ``n_token_*``; NDJSON ``{"response": piece}`` lines when the
  body says ``"stream": true``.
* ``openai_chat_service``: an OpenAI-compatible server (vLLM, FastChat): a
  ``chat.completion``, or SSE chunks ending in ``data: [DONE]``.

The model answers ``Echo: <last input text>``, so a test sees that the input arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelwire import ModelRegistry, Usage
from modelwire.testing import FakeServer, Reply, Request

PROMPT_TOKENS = 7
COMPLETION_TOKENS = 3
USAGE = Usage(PROMPT_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS + COMPLETION_TOKENS)
USAGE_JSON = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
}
MODEL = "local-llama"

Responder = Callable[[Request], Reply]


def last_text(inputs: Any) -> str:
    """The text the model answers to: a prompt string, or the last message's content."""
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, list) and inputs and isinstance(inputs[-1], dict):
        return str(inputs[-1].get("content"))
    return repr(inputs)


def pieces_for(inputs: Any) -> list[str]:
    """What the model says, in the pieces a stream delivers."""
    return ["Echo", ": ", last_text(inputs)]


def answer_for(inputs: Any) -> str:
    return "".join(pieces_for(inputs))


def chat_completion(text: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage or USAGE_JSON,
    }


def llm_reply(text: str) -> dict[str, Any]:
    """The serving distribution's ``/llm/`` reply (a superset of the seed Flask script's)."""
    return {
        "response": text,
        "data": {"response": chat_completion(text)},
        "n_token_prompt": PROMPT_TOKENS,
        "n_token_response": COMPLETION_TOKENS,
        "usage": USAGE_JSON,
        "finish_reason": "stop",
        "model": MODEL,
        "timestamp": "2024-06-01 12:00:00",
    }


def seed_flask_reply(text: str) -> dict[str, Any]:
    """What the seed's Flask script replied: no ``usage`` object, only ``n_token_*``."""
    return {
        "data": {"response": {"choices": [{"message": {"content": text}}]}},
        "response": text,
        "n_token_prompt": PROMPT_TOKENS,
        "n_token_response": COMPLETION_TOKENS,
        "timestamp": "2024-06-01 12:00:00",
    }


def llm_service(key: str = "inputs", **reply: Any) -> Responder:
    """``POST /llm/``: JSON, or NDJSON ``{"response": piece}`` lines when streaming."""

    def respond(request: Request) -> Reply:
        body = request.json()
        if key not in body:
            return Reply.json({"detail": f"missing {key!r}"}, 400)
        if body.get("stream"):
            lines: list[dict[str, Any]] = [{"response": p} for p in pieces_for(body[key])]
            lines.append({"response": "", "done": True, "usage": USAGE_JSON, "model": MODEL})
            return Reply.ndjson(lines, **reply)
        return Reply.json(llm_reply(answer_for(body[key])), **reply)

    return respond


def seed_flask_service() -> Responder:
    """The seed's Flask script: ``inputs`` in, ``seed_flask_reply`` out."""
    return lambda request: Reply.json(seed_flask_reply(answer_for(request.json()["inputs"])))


def openai_chat_service(**reply: Any) -> Responder:
    """``POST /v1/chat/completions``: a completion, or SSE chunks ending in ``[DONE]``."""

    def respond(request: Request) -> Reply:
        body = request.json()
        text_pieces = pieces_for(body["messages"])
        if not body.get("stream"):
            return Reply.json(chat_completion("".join(text_pieces)), **reply)

        def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in text_pieces]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": "chatcmpl-1", "model": MODEL, "choices": [], "usage": USAGE_JSON})
        return Reply.sse(events, done="[DONE]", **reply)

    return respond


def load(config: dict[str, Any]) -> Any:
    """The wrapper of one config, validated as ``modelwire.init`` would."""
    return ModelRegistry([config]).load_model(config["config_name"])


def post_api(server: FakeServer, path: str = "/llm/", **params: Any) -> Any:
    """A ``post_api`` wrapper for ``server``; fast retries unless the test sets its own."""
    config: dict[str, Any] = {
        "config_name": "test-post-api",
        "model_type": "post_api",
        "api_url": server.url + path,
    }
    if "max_retries" not in params and "retry_interval" not in params:
        config["retry"] = {"max_retries": 2, "initial_delay": 0.01}
    return load({**config, **params})


def post_api_chat(server: FakeServer, path: str = "/v1/chat/completions", **params: Any) -> Any:
    config: dict[str, Any] = {
        "config_name": "test-post-api-chat",
        "model_type": "post_api_chat",
        "api_url": server.url + path,
        "messages_key": "messages",
        "retry": {"max_retries": 2, "initial_delay": 0.01},
    }
    return load({**config, **params})


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake
