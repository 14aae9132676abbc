"""``openai_embedding``: one vector per input text, from ``/v1/embeddings``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from modelwire import ModelResponse, Msg, ResponseParseError, iter_msgs, text_of
from modelwire_openai.client import OpenAIWrapper, body_of, usage_of
from modelwire_openai.pricing import EMBEDDING_PRICES

__all__ = ["OpenAIEmbeddingWrapper"]

_NUMBER_TYPES = frozenset({int, float})


class OpenAIEmbeddingWrapper(OpenAIWrapper):
    """Embeddings: ``model(["a", "b"]).embedding`` is two lists of floats, in input order.

    Vectors are requested as floats (the SDK would otherwise ask for base64); a
    ``generate_args.encoding_format`` of ``base64`` is honoured and decoded.
    """

    model_type = "openai_embedding"
    default_output_cap = 0  # generates no tokens: a budget reserves the input only
    pricing_table = EMBEDDING_PRICES
    reserved_args: ClassVar[tuple[str, ...]] = ("model", "input")

    def format(self, *args: Msg | list[Msg] | None) -> list[str]:
        """The messages' texts, one input (and so one vector) per message."""
        return [text_of(msg.content) for msg in iter_msgs(*args)]

    def _request(self, texts: str | list[str] | list[int], **kwargs: Any) -> dict[str, Any]:
        return {"encoding_format": "float", **self.call_args(kwargs), "input": texts}

    def _send(self, request: dict[str, Any]) -> Any:
        create = self.clients.sync.embeddings.with_raw_response.create
        return create(model=self.model_name, **self.sdk_args(create, request))

    async def _asend(self, request: dict[str, Any]) -> Any:
        create = self.clients.async_.embeddings.with_raw_response.create
        return await create(model=self.model_name, **self.sdk_args(create, request))

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        return self._response(body_of(reply), request["input"])

    def _response(self, payload: dict[str, Any], texts: Any) -> ModelResponse:
        data = payload.get("data")
        if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
            raise ResponseParseError(
                "the reply has no list of embeddings", body=json.dumps(payload)
            )
        expected = _input_count(texts)
        if len(data) != expected:
            raise ResponseParseError(
                f"{expected} input(s) were sent but {len(data)} embedding(s) came back",
                body=json.dumps(payload),
            )
        ordered = sorted(data, key=lambda item: item.get("index", 0))
        return ModelResponse(
            embedding=[_vector(item.get("embedding")) for item in ordered],
            raw=payload,
            usage=usage_of(payload),
            model_name=payload.get("model") or self.model_name,
        )


def _input_count(texts: Any) -> int:
    """How many vectors a request asks for: a string or one list of token ids is one."""
    if isinstance(texts, str) or (
        isinstance(texts, list) and texts and all(isinstance(x, int) for x in texts)
    ):
        return 1
    return len(texts)


def _vector(value: Any) -> list[float]:
    """A vector sent as floats, or as base64 of little-endian float32s."""
    if isinstance(value, str):
        import array  # only for base64 vectors
        import base64

        try:
            return array.array("f", base64.b64decode(value, validate=True)).tolist()
        except ValueError as exc:  # binascii.Error is a ValueError
            raise ResponseParseError(f"an embedding is not valid base64 float32: {exc}") from exc
    # The type check and the conversion run in C: a 1536-float vector in ~10 µs, not ~100.
    if isinstance(value, list) and set(map(type, value)) <= _NUMBER_TYPES:
        return list(map(float, value))
    raise ResponseParseError(f"an embedding is not a list of numbers: {str(value)[:200]}")
