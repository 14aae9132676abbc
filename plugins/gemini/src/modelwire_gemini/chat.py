"""``gemini_chat``: Gemini's ``generateContent`` through ``google-genai``.

``format`` turns ``Msg``s into Gemini's shape (``user``/``model`` turns, system
messages as ``system_instruction``); the call returns the first candidate's text
and the usage from ``usage_metadata``. A reply Gemini withheld (safety,
recitation, ...) raises ``BlockedResponseError`` rather than returning empty text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict

from modelwire.errors import BadRequestError, ResponseParseError
from modelwire.message import Msg, iter_msgs
from modelwire.response import LazyRaw, ModelChunk, ModelResponse, Usage
from modelwire.schema import check_value
from modelwire_gemini.client import GeminiWrapper
from modelwire_gemini.errors import BlockedResponseError

if TYPE_CHECKING:
    from google.genai import types

__all__ = [
    "BLOCKED_FINISH_REASONS",
    "GeminiChatWrapper",
    "GeminiPrompt",
    "GenerationConfig",
    "Prompt",
    "SafetySetting",
    "ThinkingConfig",
]

#: Finish reasons meaning Gemini withheld (part of) the answer.
BLOCKED_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)


class ThinkingConfig(TypedDict, total=False):
    """``generation_config.thinking_config`` for thinking models."""

    include_thoughts: bool
    thinking_budget: int
    thinking_level: str


class GenerationConfig(TypedDict, total=False):
    """The ``generation_config`` key (and per-call keyword arguments); keys are checked."""

    temperature: float
    top_p: float
    top_k: int
    candidate_count: int
    max_output_tokens: int
    stop_sequences: list[str]
    presence_penalty: float
    frequency_penalty: float
    seed: int
    response_mime_type: str
    response_schema: dict[str, Any]
    response_json_schema: dict[str, Any]
    response_logprobs: bool
    logprobs: int
    thinking_config: ThinkingConfig


class SafetySetting(TypedDict):
    """One entry of ``safety_settings``, e.g. ``HARM_CATEGORY_HARASSMENT`` / ``BLOCK_NONE``."""

    category: str
    threshold: str


class GeminiPrompt(TypedDict, total=False):
    """What ``format`` returns and a call takes."""

    contents: list[dict[str, Any]]
    system_instruction: dict[str, Any]


#: What a call takes: ``format``'s result, ``Msg``s, Gemini contents or plain text.
Prompt = GeminiPrompt | Msg | list[Any] | str


class GeminiChatWrapper(GeminiWrapper):
    """Chat with a Gemini model; also ``vertexai: true`` for Vertex AI."""

    model_type = "gemini_chat"

    def __init__(
        self,
        config_name: str,
        *,
        generation_config: GenerationConfig | None = None,
        safety_settings: list[SafetySetting] | dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.generation_config: dict[str, Any] = dict(generation_config or {})
        if isinstance(safety_settings, dict):  # the old SDK's {category: threshold} form
            safety_settings = [
                {"category": category, "threshold": threshold}
                for category, threshold in safety_settings.items()
            ]
        self.safety_settings: list[dict[str, Any]] = [dict(s) for s in safety_settings or []]

    # -- input --------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> GeminiPrompt:
        """Gemini turns alternate ``user``/``model``: merge neighbours, lift system messages."""
        system_parts: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for msg in iter_msgs(*args):
            parts = _parts(msg)
            if msg.role == "system":
                system_parts.extend(parts)
                continue
            role = "model" if msg.role == "assistant" else "user"
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        prompt: GeminiPrompt = {"contents": contents}
        if system_parts:
            prompt["system_instruction"] = {"parts": system_parts}
        return prompt

    def _request(
        self, prompt: Prompt, overrides: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any] | None]:
        """Validate before sending, so a bad request fails here and is never retried.

        The SDK is then given the plain dicts, and no config at all when there is
        nothing to configure: it converts pydantic objects field by field (~0.2 ms for
        the contents, ~0.3 ms for even an empty GenerateContentConfig per call, more
        than the raw call costs on the client). Without tools, automatic function
        calling has nothing to call, so leaving the config out sends the same request.
        """
        problems = (
            check_value(overrides, GenerationConfig, "generation_config") if overrides else []
        )
        if problems:
            raise BadRequestError(
                "invalid call arguments: " + "; ".join(f"{key}: {msg}" for key, msg in problems)
            )
        contents, system_instruction = self._split(prompt)
        config: dict[str, Any] = {**self.generation_config, **overrides}
        if self.safety_settings:
            config["safety_settings"] = self.safety_settings
        if system_instruction:
            config["system_instruction"] = system_instruction
        if config:
            # No tools are sent, and no hidden follow-up calls may be made either.
            config["automatic_function_calling"] = {"disable": True}
        plain = _plain_text(contents)  # what format() makes needs no pydantic check
        if plain and not config:  # every plain call: not even the imports below
            return contents, None
        import pydantic
        from google.genai import types

        try:
            if not plain:
                for content in contents:
                    types.Content.model_validate(content)
            if config:
                types.GenerateContentConfig.model_validate(config)
        except pydantic.ValidationError as exc:
            raise BadRequestError(f"invalid request for Gemini: {exc}") from exc
        return contents, config or None

    def _split(self, prompt: Prompt) -> tuple[list[Any], Any]:
        """Contents and system instruction of what ``format`` returned (or a str / contents)."""
        if isinstance(prompt, Msg) or (
            isinstance(prompt, list) and prompt and all(isinstance(m, Msg) for m in prompt)
        ):
            prompt = self.format(prompt)
        if isinstance(prompt, str):
            return [{"role": "user", "parts": [{"text": prompt}]}], None
        if isinstance(prompt, dict) and "contents" in prompt:
            contents, system_instruction = prompt["contents"], prompt.get("system_instruction")
        elif isinstance(prompt, list):
            contents, system_instruction = prompt, None
        else:
            raise BadRequestError(
                f"{self.model_type} takes model.format(...)'s result, a list of Gemini"
                f" contents or a string, not {type(prompt).__name__}"
            )
        if not contents:
            raise BadRequestError(
                "nothing to send: Gemini needs at least one user or assistant message"
            )
        return list(contents), system_instruction

    # -- calls --------------------------------------------------------------------------
    def _call(self, prompt: Prompt, **kwargs: Any) -> ModelResponse:
        contents, config = self._request(prompt, kwargs)
        response = self._client().models.generate_content(
            model=self.model_name, contents=contents, config=config
        )
        return self._response(response)

    async def _acall(self, prompt: Prompt, **kwargs: Any) -> ModelResponse:
        contents, config = self._request(prompt, kwargs)
        response = await self._client().aio.models.generate_content(
            model=self.model_name, contents=contents, config=config
        )
        return self._response(response)

    def _stream(self, prompt: Prompt, **kwargs: Any) -> Iterator[ModelChunk]:
        contents, config = self._request(prompt, kwargs)
        for chunk in self._client().models.generate_content_stream(
            model=self.model_name, contents=contents, config=config
        ):
            yield from self._chunks(chunk)

    async def _astream(self, prompt: Prompt, **kwargs: Any) -> AsyncIterator[ModelChunk]:
        """``timeout`` bounds each wait, as in sync streams, not the whole stream.

        The SDK's aiohttp transport applies the timeout to the whole response, which
        would cut a long but healthy stream; ``timeout=0`` switches that off for this
        request and ``asyncio.timeout`` bounds the wait for each chunk instead.
        """
        import asyncio  # here, not at module level: loading a config stays cheap

        from google.genai import types

        contents, options = self._request(prompt, kwargs)
        config = types.GenerateContentConfig.model_validate(
            {**(options or {}), "http_options": types.HttpOptions(timeout=0)}
        )
        async with asyncio.timeout(self.timeout):
            stream = await self._client().aio.models.generate_content_stream(
                model=self.model_name, contents=contents, config=config
            )
        chunks = aiter(stream)
        while True:
            async with asyncio.timeout(self.timeout):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            for piece in self._chunks(chunk):
                yield piece

    # -- output -------------------------------------------------------------------------
    def _response(self, response: types.GenerateContentResponse) -> ModelResponse:
        _check_prompt(response)
        candidate = response.candidates[0] if response.candidates else None
        if candidate is None:
            raise ResponseParseError(
                "Gemini's reply holds no candidate", body=json.dumps(_raw(response))
            )
        text = _text(candidate)
        finish_reason = _name(candidate.finish_reason)
        if finish_reason in BLOCKED_FINISH_REASONS:
            raise _blocked(candidate, finish_reason, partial_text=text or None)
        return ModelResponse(
            text=text,
            raw=LazyRaw(partial(_raw, response)),
            usage=_usage(response.usage_metadata),
            model_name=response.model_version or self.model_name,
            finish_reason=finish_reason,
        )

    def _chunks(self, response: types.GenerateContentResponse) -> Iterator[ModelChunk]:
        """One SDK chunk as modelwire chunks; text before a block is delivered, then raised."""
        _check_prompt(response)
        candidate = response.candidates[0] if response.candidates else None
        text = _text(candidate) if candidate is not None else ""
        finish_reason = _name(candidate.finish_reason) if candidate is not None else None
        model_name = response.model_version or self.model_name
        if candidate is not None and finish_reason in BLOCKED_FINISH_REASONS:
            if text:
                yield ModelChunk(
                    text=text, raw=LazyRaw(partial(_raw, response)), model_name=model_name
                )
            raise _blocked(candidate, finish_reason, partial_text=None)
        yield ModelChunk(
            text=text,
            raw=LazyRaw(partial(_raw, response)),
            usage=_usage(response.usage_metadata),
            model_name=model_name,
            finish_reason=finish_reason,
        )


def _plain_text(contents: list[Any]) -> bool:
    """Whether every content is ``{"role": str, "parts": [{"text": str}, ...]}``.

    ``format()`` makes exactly that for text messages, and ``types.Content`` accepts
    it; validating it anyway cost ~10 µs per content warm, several times that between
    two real calls (benchmarks/README.md). Anything else is validated by pydantic.
    """
    for content in contents:
        if type(content) is not dict or content.keys() != {"role", "parts"}:
            return False
        parts = content["parts"]
        if type(content["role"]) is not str or type(parts) is not list:
            return False
        for part in parts:
            if type(part) is not dict or part.keys() != {"text"} or type(part["text"]) is not str:
                return False
    return True


def _parts(msg: Msg) -> list[dict[str, Any]]:
    content = "" if msg.content is None else msg.content
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    parts: list[dict[str, Any]] = [{"text": text}] if text or not msg.urls else []
    return parts + [_media_part(url) for url in msg.urls]


def _media_part(url: str) -> dict[str, Any]:
    """Remote files by URI (``file_data``); local files and ``data:`` URLs inline."""
    import base64  # only for messages carrying media
    import binascii
    import mimetypes
    from pathlib import Path

    if url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        mime_type = header.split(";")[0] or "application/octet-stream"
        try:
            data = base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64 in data URL for {mime_type}") from exc
        return {"inline_data": {"mime_type": mime_type, "data": data}}
    mime_type = mimetypes.guess_type(url)[0] or "application/octet-stream"
    if "://" in url:
        return {"file_data": {"file_uri": url, "mime_type": mime_type}}
    return {"inline_data": {"mime_type": mime_type, "data": Path(url).expanduser().read_bytes()}}


def _text(candidate: types.Candidate) -> str:
    """The answer's text parts; thought summaries are not part of the answer."""
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    return "".join(part.text for part in parts if part.text and not part.thought)


def _name(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage | None:
    """Thinking tokens are billed as output, tool-use prompt tokens as input."""
    if metadata is None:
        return None
    prompt = (metadata.prompt_token_count or 0) + (metadata.tool_use_prompt_token_count or 0)
    completion = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage.of(prompt, completion)


def _raw(response: types.GenerateContentResponse) -> dict[str, Any]:
    """The reply as JSON, for ``raw`` (built when first read: see ``LazyRaw``)."""
    return response.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"sdk_http_response", "automatic_function_calling_history"},
    )


def _ratings(ratings: list[Any] | None) -> list[dict[str, Any]]:
    return [rating.model_dump(mode="json", exclude_none=True) for rating in ratings or []]


def _flagged(ratings: list[dict[str, Any]]) -> str:
    flagged = [
        f"{r.get('category', '?')} ({r.get('probability', '?')})"
        for r in ratings
        if r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH")
    ]
    return f"; flagged: {', '.join(flagged)}" if flagged else ""


def _check_prompt(response: types.GenerateContentResponse) -> None:
    feedback = response.prompt_feedback
    reason = _name(feedback.block_reason) if feedback is not None else None
    if feedback is None or not reason or reason == "BLOCKED_REASON_UNSPECIFIED":
        return
    ratings = _ratings(feedback.safety_ratings)
    detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
    raise BlockedResponseError(
        f"Gemini refused the prompt (block reason {reason}){detail}{_flagged(ratings)}",
        finish_reason=reason,
        blocked="prompt",
        safety_ratings=ratings,
    )


def _blocked(
    candidate: types.Candidate, finish_reason: str, *, partial_text: str | None
) -> BlockedResponseError:
    ratings = _ratings(candidate.safety_ratings)
    detail = f": {candidate.finish_message}" if candidate.finish_message else ""
    return BlockedResponseError(
        f"Gemini withheld the response (finish reason {finish_reason}){detail}{_flagged(ratings)}",
        finish_reason=finish_reason,
        blocked="response",
        safety_ratings=ratings,
        partial_text=partial_text,
    )
