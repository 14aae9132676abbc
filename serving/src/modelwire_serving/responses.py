"""JSON shapes of the replies: the seed's /llm/ reply and OpenAI's objects.

Pure functions of a finished `Completion` (or of vectors), so the wire format
is easy to read in one place and to test without a model.
"""

from __future__ import annotations

import base64
import datetime
import struct
import time
import uuid
from typing import Any

from modelwire_serving.jobs import Completion


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _finish_reason(completion: Completion) -> str:
    return "length" if completion.finish_reason == "length" else "stop"


def chat_completion(completion: Completion, model: str, request_id: str) -> dict[str, Any]:
    """OpenAI `chat.completion`."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "logprobs": None,
                "finish_reason": _finish_reason(completion),
            }
        ],
        "usage": usage(completion.prompt_tokens, completion.completion_tokens),
        "system_fingerprint": None,
    }


def text_completion(completion: Completion, model: str, request_id: str) -> dict[str, Any]:
    """OpenAI `text_completion` (POST /v1/completions)."""
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": completion.text,
                "logprobs": None,
                "finish_reason": _finish_reason(completion),
            }
        ],
        "usage": usage(completion.prompt_tokens, completion.completion_tokens),
        "system_fingerprint": None,
    }


def text_completion_chunk(
    request_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str | None = None,
    *,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One streamed `text_completion` event: the new text, no role or delta object."""
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def llm_reply(completion: Completion, model: str) -> dict[str, Any]:
    """The seed's /llm/ reply, plus the chat-completion shape its post_api_chat reads.

    The seed's Flask script returned `response`, `n_token_prompt`,
    `n_token_response` and `timestamp`; the seed's post_api_chat wrapper reads
    `data.response.choices[0].message.content`. Both are here, and `usage`.
    Note: `n_token_response` counts the new tokens only (the seed counted the
    prompt as well).
    """
    body = chat_completion(completion, model, new_id("llm"))
    return {
        "response": completion.text,
        "data": {"response": body},
        "n_token_prompt": completion.prompt_tokens,
        "n_token_response": completion.completion_tokens,
        "usage": body["usage"],
        "finish_reason": body["choices"][0]["finish_reason"],
        "model": model,
        "timestamp": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
    }


def chat_chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, str],
    finish_reason: str | None = None,
    *,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One OpenAI `chat.completion.chunk` carrying a delta."""
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk(
    request_id: str,
    model: str,
    created: int,
    completion: Completion,
    object_name: str = "chat.completion.chunk",
) -> dict[str, Any]:
    """The last chunk when `stream_options.include_usage` is true: usage, no choices."""
    return {
        "id": request_id,
        "object": object_name,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(completion.prompt_tokens, completion.completion_tokens),
    }


def stream_finish(completion: Completion) -> str:
    return _finish_reason(completion)


def embeddings_reply(
    data: list[list[float]] | list[str], model: str, prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI `list` of `embedding` objects (floats, or base64 strings)."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(data)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def models_reply(names: list[str], created: int) -> dict[str, Any]:
    """OpenAI `GET /v1/models`."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "modelwire-serving"}
            for name in names
        ],
    }


def encode_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format="base64"`: little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
