"""``gemini_embedding``: one vector per input text, in one request.

On the Gemini API the SDK sends every text of a call in one ``batchEmbedContents``
request, so a call costs one round trip whatever the number of texts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from modelwire import (
    BadRequestError,
    ConfigIssue,
    ModelResponse,
    ResponseParseError,
    Usage,
    check_value,
    did_you_mean,
)
from modelwire_gemini.client import GeminiWrapper

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["TASK_TYPES", "EmbeddingOptions", "GeminiEmbeddingWrapper"]

#: The ``task_type``s the Gemini embedding models know.
TASK_TYPES = (
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)


class EmbeddingOptions(TypedDict, total=False):
    """Keyword arguments a call may override."""

    task_type: str
    output_dimensionality: int
    title: str


class GeminiEmbeddingWrapper(GeminiWrapper):
    """Embed texts with a Gemini embedding model (``text-embedding-004``, ...)."""

    model_type = "gemini_embedding"
    default_output_cap = 0  # generates no tokens: a budget reserves the input only

    def __init__(
        self,
        config_name: str,
        *,
        task_type: str | None = None,
        output_dimensionality: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.task_type = task_type.upper() if task_type else None
        self.output_dimensionality = output_dimensionality

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        issues = super().validate_params(params)
        issue = _task_type_problem(params.get("task_type"))
        if issue:
            issues.append(ConfigIssue("?", "task_type", issue))
        dimensions = params.get("output_dimensionality")
        if isinstance(dimensions, int) and dimensions <= 0:
            issues.append(ConfigIssue("?", "output_dimensionality", "must be a positive integer"))
        return issues

    def _request(self, texts: str | list[str], **overrides: Any) -> dict[str, Any]:
        """Texts and config, checked here so that a bad request is never sent."""
        from google.genai import types

        problems = check_value(overrides, EmbeddingOptions, "options")
        problem = _task_type_problem(overrides.get("task_type"))
        if problem:
            problems.append(("options.task_type", problem))
        if problems:
            raise BadRequestError(
                "invalid call arguments: " + "; ".join(f"{key}: {msg}" for key, msg in problems)
            )
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items or not all(isinstance(text, str) for text in items):
            raise BadRequestError(f"{self.model_type} takes a string or a non-empty list of them")
        config: dict[str, Any] = {
            "task_type": self.task_type,
            "output_dimensionality": self.output_dimensionality,
            **overrides,
        }
        if config["task_type"]:
            config["task_type"] = str(config["task_type"]).upper()
        options = {k: v for k, v in config.items() if v is not None}
        # No config when nothing is set: the SDK converts even an empty one field by field.
        return {
            "model": self.model_name,
            "contents": items,
            "config": types.EmbedContentConfig(**options) if options else None,
        }

    def _send(self, request: dict[str, Any]) -> Any:
        return self.clients.sync.models.embed_content(**request)

    async def _asend(self, request: dict[str, Any]) -> Any:
        return await self.clients.async_.aio.models.embed_content(**request)

    def _parse(self, reply: types.EmbedContentResponse, request: dict[str, Any]) -> ModelResponse:
        expected = len(request["contents"])
        # The SDK's model validated every value as a float: a copy is enough.
        vectors = [list(e.values) for e in reply.embeddings or [] if e.values is not None]
        if len(vectors) != expected:
            raise ResponseParseError(
                f"Gemini returned {len(vectors)} embeddings for {expected} texts",
                body=json.dumps(_dump(reply))[:2000],
            )
        return ModelResponse(
            embedding=vectors,
            raw=_dump(reply),
            usage=_usage(reply),
            model_name=self.model_name,
        )


def _dump(response: types.EmbedContentResponse) -> dict[str, Any]:
    """The reply as Gemini's camelCase JSON, for ``raw``.

    pydantic's dump of the vectors costs more than the rest of the wrapper's work:
    dump the rest, and copy the vectors in (they are floats already).
    """
    payload = response.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,
        exclude={"sdk_http_response": True, "embeddings": {"__all__": {"values"}}},
    )
    for item, dumped in zip(response.embeddings or [], payload.get("embeddings", []), strict=True):
        if item.values is not None:
            dumped["values"] = list(item.values)
    return payload


def _usage(response: types.EmbedContentResponse) -> Usage | None:
    """``usageMetadata`` where the service reports it, else Vertex AI's per-text counts."""
    try:
        if response.usage_metadata is not None:
            return Usage.of(response.usage_metadata.prompt_token_count, 0)
        counts = [
            e.statistics.token_count
            for e in response.embeddings or []
            if e.statistics is not None and e.statistics.token_count is not None
        ]
        return Usage.of(sum(counts), 0) if counts else None
    except ValueError as exc:
        raise ResponseParseError(f"Gemini reported impossible token counts: {exc}") from None


def _task_type_problem(value: Any) -> str | None:
    if not isinstance(value, str) or value.upper() in TASK_TYPES:
        return None
    hint = did_you_mean(value.upper(), TASK_TYPES)
    return f"unknown task_type {value!r}" + (
        f"; did you mean {hint!r}?" if hint else f"; known: {', '.join(TASK_TYPES)}"
    )
