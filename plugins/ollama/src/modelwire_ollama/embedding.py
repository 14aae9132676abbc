"""``ollama_embedding``: vectors for a batch of texts through ``/api/embed``."""

from __future__ import annotations

from functools import partial
from typing import Any

from modelwire.errors import ResponseParseError
from modelwire.message import Msg, iter_msgs
from modelwire.response import LazyRaw, ModelResponse, Usage
from modelwire_ollama.client import OllamaWrapper
from modelwire_ollama.formatting import text_of

__all__ = ["OllamaEmbeddingWrapper"]


class OllamaEmbeddingWrapper(OllamaWrapper):
    """Embed texts with an Ollama model: one request per batch, one vector per text.

    Call it with a string or a list of strings; ``format(*msgs)`` gives their texts.
    """

    model_type = "ollama_embedding"

    def format(self, *args: Msg | list[Msg] | None) -> list[str]:
        return [text_of(msg.content) for msg in iter_msgs(*args)]

    def _params(self, texts: str | list[str]) -> dict[str, Any]:
        inputs = [texts] if isinstance(texts, str) else list(texts)
        return {**self._request_params(), "input": inputs}

    def _call(self, texts: str | list[str]) -> ModelResponse:
        params = self._params(texts)
        return self._embedding_response(self._client().embed(**params), len(params["input"]))

    async def _acall(self, texts: str | list[str]) -> ModelResponse:
        params = self._params(texts)
        reply = await self._aclient().embed(**params)
        return self._embedding_response(reply, len(params["input"]))

    def _embedding_response(self, reply: Any, expected: int) -> ModelResponse:
        # The SDK's model validated every item as a float: a copy is enough.
        vectors = [list(vector) for vector in reply.embeddings]
        if len(vectors) != expected:
            raise ResponseParseError(
                f"Ollama returned {len(vectors)} embeddings for {expected} inputs"
            )
        return ModelResponse(
            embedding=vectors,
            raw=LazyRaw(partial(_dump, reply)),
            usage=Usage.of(reply.prompt_eval_count, 0),
            model_name=reply.model or self.model_name,
        )


def _dump(reply: Any) -> dict[str, Any]:
    """The reply as JSON, for ``raw`` (built when first read: see ``LazyRaw``).

    model_dump of the vectors costs more than the whole SDK call's client side: dump
    the rest, and copy the vectors in (the SDK validated them as floats).
    """
    raw: dict[str, Any] = reply.model_dump(exclude_none=True, exclude={"embeddings"})
    raw["embeddings"] = [list(vector) for vector in reply.embeddings]
    return raw
