"""Responders speaking Ollama's wire format (``/api/chat``, ``/api/generate``, ``/api/embed``).

Replies follow what an Ollama server sends: one JSON object, or NDJSON lines when
the request says ``"stream": true``, the last line ``"done": true`` with the token
counts; errors as ``{"error": "<message>"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelwire import Usage
from modelwire.testing import FakeServer, Reply, Request

#: What the scripted model answers, in the pieces a stream delivers.
PIECES = ["Hello", " from", " Ollama"]
TEXT = "".join(PIECES)
PROMPT_TOKENS = 11
COMPLETION_TOKENS = 3
USAGE = Usage(PROMPT_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS + COMPLETION_TOKENS)
#: ``/api/embed`` counts the prompt tokens of the whole batch.
EMBED_TOKENS_PER_INPUT = 4

Responder = Callable[[Request], Reply]

_TIMINGS = {
    "total_duration": 5_000_000,
    "load_duration": 1_000_000,
    "prompt_eval_duration": 2_000_000,
    "eval_duration": 2_000_000,
}


def _head(body: dict[str, Any]) -> dict[str, Any]:
    return {"model": body["model"], "created_at": "2024-06-01T12:00:00.000000Z"}


def _final(body: dict[str, Any]) -> dict[str, Any]:
    return {
        **_head(body),
        "done": True,
        "done_reason": "stop",
        **_TIMINGS,
        "prompt_eval_count": PROMPT_TOKENS,
        "eval_count": COMPLETION_TOKENS,
    }


def chat_service(pieces: list[str] | None = None, **reply: Any) -> Responder:
    """``/api/chat``: the assistant says ``pieces``; NDJSON when streaming."""
    pieces = PIECES if pieces is None else pieces

    def respond(request: Request) -> Reply:
        body = request.json()
        if body.get("stream"):
            lines = [
                {**_head(body), "message": {"role": "assistant", "content": p}, "done": False}
                for p in pieces
            ]
            lines.append({**_final(body), "message": {"role": "assistant", "content": ""}})
            return Reply.ndjson(lines, **reply)
        message = {"role": "assistant", "content": "".join(pieces)}
        return Reply.json({**_final(body), "message": message}, **reply)

    return respond


def generate_service(pieces: list[str] | None = None, **reply: Any) -> Responder:
    """``/api/generate``: the completion is ``pieces``; NDJSON when streaming."""
    pieces = PIECES if pieces is None else pieces

    def respond(request: Request) -> Reply:
        body = request.json()
        if body.get("stream"):
            lines = [{**_head(body), "response": p, "done": False} for p in pieces]
            lines.append({**_final(body), "response": "", "context": [1, 2, 3]})
            return Reply.ndjson(lines, **reply)
        return Reply.json(
            {**_final(body), "response": "".join(pieces), "context": [1, 2, 3]}, **reply
        )

    return respond


def vector_for(text: str) -> list[float]:
    """A deterministic vector per input, so tests can tell which input got which."""
    return [float(len(text)), 0.5, -0.25]


def embed_service(**reply: Any) -> Responder:
    """``/api/embed``: one vector per input, in order."""

    def respond(request: Request) -> Reply:
        body = request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return Reply.json(
            {
                "model": body["model"],
                "embeddings": [vector_for(text) for text in inputs],
                "total_duration": 1_000_000,
                "load_duration": 100_000,
                "prompt_eval_count": EMBED_TOKENS_PER_INPUT * len(inputs),
            },
            **reply,
        )

    return respond


def ollama_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error as Ollama sends it: ``{"error": "<message>"}``."""
    return Reply.json({"error": message}, status, headers=headers)


def not_pulled(model: str) -> Reply:
    """What Ollama answers for a model that was never pulled."""
    return ollama_error(404, f'model "{model}" not found, try pulling it first')


#: model_type -> (route path, responder factory)
SERVICES: dict[str, tuple[str, Callable[..., Responder]]] = {
    "ollama_chat": ("/api/chat", chat_service),
    "ollama_generate": ("/api/generate", generate_service),
    "ollama_embedding": ("/api/embed", embed_service),
}


def serve(server: FakeServer, model_type: str) -> str:
    """Script the success route of ``model_type``; returns its path."""
    path, service = SERVICES[model_type]
    server.route("POST", path, service())
    return path


def config(server: FakeServer, model_type: str, **params: Any) -> dict[str, Any]:
    """A fast config of ``model_type`` pointing at ``server``."""
    return {
        "config_name": f"test-{model_type}",
        "model_type": model_type,
        "model": "llama3.2",
        "host": server.url,
        "timeout": 5.0,
        "retry": {"max_retries": 1, "initial_delay": 0.01, "max_delay": 0.05},
        **params,
    }


def load(server: FakeServer, model_type: str, **params: Any) -> Any:
    """The wrapper of ``config(...)``, through a fresh registry."""
    from modelwire.registry import ModelRegistry

    cfg = config(server, model_type, **params)
    return ModelRegistry([cfg]).load_model(cfg["config_name"])


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake
