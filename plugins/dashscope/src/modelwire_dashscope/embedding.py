"""``dashscope_text_embedding``: one vector per text, in batches the service accepts.

DashScope caps the texts of one request (25 for ``text-embedding-v1``/``-v2``, 10
for ``-v3``/``-v4``); longer inputs are split and the vectors joined in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelwire.errors import BadRequestError, ConfigIssue, ResponseParseError
from modelwire.response import LazyRaw, ModelResponse, Usage
from modelwire_dashscope.client import DashScopeWrapper
from modelwire_dashscope.pricing import EMBEDDING_PRICES

if TYPE_CHECKING:
    from dashscope.v2.resources.embeddings import EmbeddingResponse

__all__ = ["BATCH_LIMITS", "DEFAULT_BATCH_LIMIT", "DashScopeTextEmbeddingWrapper"]

#: Texts per request, by model name prefix; other models get ``DEFAULT_BATCH_LIMIT``.
BATCH_LIMITS: dict[str, int] = {"text-embedding-v3": 10, "text-embedding-v4": 10}
DEFAULT_BATCH_LIMIT = 25


class DashScopeTextEmbeddingWrapper(DashScopeWrapper):
    """Embed texts with a DashScope text-embedding model."""

    model_type = "dashscope_text_embedding"
    pricing_table = EMBEDDING_PRICES

    def __init__(
        self,
        config_name: str,
        *,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.batch_size = batch_size or _batch_limit(self.model_name)

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        issues = super().validate_params(params)
        batch_size = params.get("batch_size")
        if batch_size is not None and batch_size < 1:
            issues.append(ConfigIssue("?", "batch_size", "must be at least 1"))
        return issues

    def _batches(self, texts: str | Sequence[str]) -> list[list[str]]:
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise BadRequestError("nothing to embed: pass a text or a non-empty list of texts")
        if not all(isinstance(item, str) for item in items):
            raise BadRequestError("every item to embed must be a string")
        size = self.batch_size
        return [items[start : start + size] for start in range(0, len(items), size)]

    def _call(self, texts: str | Sequence[str], **kwargs: Any) -> ModelResponse:
        client = self._clients.sync()
        batches = self._batches(texts)
        parameters = {**self.generate_args, **kwargs}
        replies = [
            client.embeddings.create(model=self.model_name, input=batch, parameters=parameters)
            for batch in batches
        ]
        return self._response(batches, replies)

    async def _acall(self, texts: str | Sequence[str], **kwargs: Any) -> ModelResponse:
        client = self._clients.aio()
        batches = self._batches(texts)
        parameters = {**self.generate_args, **kwargs}
        replies = [
            await client.embeddings.create(
                model=self.model_name, input=batch, parameters=parameters
            )
            for batch in batches
        ]
        return self._response(batches, replies)

    def _response(
        self, batches: list[list[str]], replies: list[EmbeddingResponse]
    ) -> ModelResponse:
        """Join the batches' vectors in input order and sum their token counts."""
        vectors: list[list[float]] = []
        tokens = 0
        for batch, reply in zip(batches, replies, strict=True):
            ordered = sorted(reply.embeddings, key=lambda item: item.index)
            if [item.index for item in ordered] != list(range(len(batch))):
                raise ResponseParseError(
                    f"DashScope returned {len(ordered)} vectors for {len(batch)} texts",
                    body=json.dumps(_dump(reply))[:2000],
                )
            # The SDK's model validated every value as a float: a copy is enough.
            vectors.extend(list(item.embedding) for item in ordered)
            if reply.usage is not None:
                tokens += reply.usage.input_tokens or reply.usage.total_tokens
        return ModelResponse(
            embedding=vectors,
            raw=LazyRaw(lambda: [_dump(reply) for reply in replies]),
            usage=Usage.of(tokens, 0),
            model_name=self.model_name,
        )


def _dump(reply: EmbeddingResponse) -> dict[str, Any]:
    """The reply as JSON, for ``raw`` (built when first read: see ``LazyRaw``).

    pydantic's dump of the vectors costs more than the rest of the wrapper's work:
    dump the rest, and copy the vectors in (they are floats already).
    """
    payload = reply.model_dump(
        mode="json", exclude={"headers": True, "embeddings": {"__all__": {"embedding"}}}
    )
    for item, dumped in zip(reply.embeddings or [], payload.get("embeddings") or [], strict=False):
        dumped["embedding"] = None if item.embedding is None else list(item.embedding)
    return payload


def _batch_limit(model_name: str) -> int:
    prefixes = [name for name in BATCH_LIMITS if model_name.startswith(name)]
    return BATCH_LIMITS[max(prefixes, key=len)] if prefixes else DEFAULT_BATCH_LIMIT
