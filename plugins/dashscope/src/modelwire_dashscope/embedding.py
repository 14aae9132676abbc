"""``dashscope_text_embedding``: one vector per text, in batches the service accepts.

DashScope caps the texts of one request (25 for ``text-embedding-v1``/``-v2``, 10
for ``-v3``/``-v4``); longer inputs are split and the vectors joined in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelwire import BadRequestError, ConfigIssue, ModelResponse, ResponseParseError, Usage
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
    default_output_cap = 0  # generates no tokens: a budget reserves the input only
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

    # -- the provider step: batches of at most batch_size texts, one request each ---------
    def _request(self, texts: str | Sequence[str], **kwargs: Any) -> dict[str, Any]:
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise BadRequestError("nothing to embed: pass a text or a non-empty list of texts")
        if not all(isinstance(item, str) for item in items):
            raise BadRequestError("every item to embed must be a string")
        size = self.batch_size
        return {
            "batches": [items[start : start + size] for start in range(0, len(items), size)],
            "parameters": {**self.generate_args, **kwargs},
        }

    def _send(self, request: dict[str, Any]) -> list[EmbeddingResponse]:
        create = self.clients.sync.embeddings.create
        return [
            create(model=self.model_name, input=batch, parameters=request["parameters"])
            for batch in request["batches"]
        ]

    async def _asend(self, request: dict[str, Any]) -> list[EmbeddingResponse]:
        create = self.clients.async_.embeddings.create
        return [
            await create(model=self.model_name, input=batch, parameters=request["parameters"])
            for batch in request["batches"]
        ]

    def _parse(self, reply: list[EmbeddingResponse], request: dict[str, Any]) -> ModelResponse:
        """Join the batches' vectors in input order and sum their token counts."""
        vectors: list[list[float]] = []
        tokens = 0
        try:
            for batch, part in zip(request["batches"], reply, strict=True):
                ordered = sorted(part.embeddings or [], key=lambda item: item.index)
                if [item.index for item in ordered] != list(range(len(batch))):
                    raise ResponseParseError(
                        f"DashScope returned {len(ordered)} vectors for {len(batch)} texts",
                        body=json.dumps(_dump(part))[:2000],
                    )
                vectors.extend(list(item.embedding) for item in ordered)
                if part.usage is not None:
                    tokens += part.usage.input_tokens or part.usage.total_tokens or 0
            usage = Usage.of(tokens, 0)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"DashScope's reply has an unexpected shape: {exc}") from exc
        return ModelResponse(
            embedding=vectors,
            raw=[_dump(part) for part in reply],
            usage=usage,
            model_name=self.model_name,
        )


def _dump(reply: EmbeddingResponse) -> dict[str, Any]:
    """The reply as JSON, for ``raw``; the vectors, floats already, are copied in."""
    payload = reply.model_dump(
        mode="json", exclude={"headers": True, "embeddings": {"__all__": {"embedding"}}}
    )
    for item, dumped in zip(reply.embeddings or [], payload.get("embeddings") or [], strict=False):
        dumped["embedding"] = None if item.embedding is None else list(item.embedding)
    return payload


def _batch_limit(model_name: str) -> int:
    prefixes = [name for name in BATCH_LIMITS if model_name.startswith(name)]
    return BATCH_LIMITS[max(prefixes, key=len)] if prefixes else DEFAULT_BATCH_LIMIT
