"""``ollama_embedding``: vectors for a batch of texts through ``/api/embed``."""

from __future__ import annotations

from typing import Any

from modelwire import ModelResponse, Msg, ResponseParseError, Usage, iter_msgs, text_of
from modelwire_ollama.client import OllamaWrapper

__all__ = ["OllamaEmbeddingWrapper"]


class OllamaEmbeddingWrapper(OllamaWrapper):
    """Embed texts with an Ollama model: one request per batch, one vector per text.

    Call it with a string or a list of strings; ``format(*msgs)`` gives their texts.
    """

    model_type = "ollama_embedding"
    default_output_cap = 0  # generates no tokens: a budget reserves the input only
    _method = "embed"
    #: ``/api/embed`` does not stream; the shared base only defines the stream step.
    supports_stream = False  # type: ignore[assignment]

    def format(self, *args: Msg | list[Msg] | None) -> list[str]:
        return [text_of(msg.content) for msg in iter_msgs(*args)]

    def _request(self, texts: str | list[str]) -> dict[str, Any]:
        inputs = [texts] if isinstance(texts, str) else list(texts)
        return {**self._common(), "input": inputs}

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        expected = len(request["input"])
        try:
            # The SDK's model validated every item as a float: a copy is enough.
            vectors = [list(vector) for vector in reply.embeddings]
            raw = reply.model_dump(exclude_none=True, exclude={"embeddings"})
            raw["embeddings"] = [list(vector) for vector in reply.embeddings]  # not shared
            usage = Usage.of(reply.prompt_eval_count, 0)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"Ollama's reply does not have the expected shape: {exc}"
            ) from exc
        if len(vectors) != expected:
            raise ResponseParseError(
                f"Ollama returned {len(vectors)} embeddings for {expected} inputs"
            )
        return ModelResponse(
            embedding=vectors, raw=raw, usage=usage, model_name=reply.model or self.model_name
        )
