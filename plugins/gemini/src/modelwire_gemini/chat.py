"""``gemini_chat``: Gemini's ``generateContent`` through ``google-genai``.

``format`` turns ``Msg``s into Gemini's shape (``user``/``model`` turns, system
messages as ``system_instruction``); the call returns the first candidate's text
and the usage from ``usageMetadata``. A reply Gemini withheld (safety,
recitation, ...) raises ``BlockedResponseError`` rather than returning empty text.

Calls ask the SDK for the HTTP body (``should_return_http_response``) and read
its JSON here; stream events arrive as the SDK's models and are dumped to the
same camelCase JSON, so one parser reads both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, TypedDict

from modelwire import (
    BadRequestError,
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    Stream,
    Usage,
    check_value,
    iter_msgs,
    read_media,
    text_of,
)
from modelwire_gemini.client import GeminiWrapper
from modelwire_gemini.errors import BlockedResponseError

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


#: Yielded after the SDK's last stream event, so that ``_parse_chunk`` sees the end.
_END = object()


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

    def _request(self, prompt: Prompt, **overrides: Any) -> dict[str, Any]:
        """Contents and config, validated here so that a bad request is never sent.

        Plain-text contents (what ``format`` makes) are taken as they are; anything
        else, and any config, is checked against the SDK's models first.
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
        plain = _plain_text(contents)
        if not plain or config:
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
        return {"model": self.model_name, "contents": contents, "config": config}

    def _send(self, request: dict[str, Any]) -> Any:
        return self.clients.sync.models.generate_content(**_body_call(request))

    async def _asend(self, request: dict[str, Any]) -> Any:
        return await self.clients.async_.aio.models.generate_content(**_body_call(request))

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        body = reply.sdk_http_response.body if reply.sdk_http_response is not None else None
        try:
            payload = json.loads(body or "")
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
            raise ResponseParseError(
                f"Gemini's reply is not JSON ({type(exc).__name__}: {exc})",
                body=body if isinstance(body, str) else None,
            ) from None
        parsed = _Reply(payload)
        if parsed.candidate is None:
            raise ResponseParseError("Gemini's reply holds no candidate", body=body)
        if parsed.finish_reason in BLOCKED_FINISH_REASONS:
            raise _blocked(parsed.candidate, parsed.finish_reason, partial_text=parsed.text or None)
        return ModelResponse(
            text=parsed.text,
            raw=payload,
            usage=parsed.usage,
            model_name=parsed.model_name or self.model_name,
            finish_reason=parsed.finish_reason,
        )

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        events = self.clients.sync.models.generate_content_stream(**self._stream_call(request))
        try:
            yield from events
            yield _END
        finally:
            events.close()

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        call = self._stream_call(request)
        events = aiter(await self.clients.async_.aio.models.generate_content_stream(**call))
        try:
            async for event in events:
                yield event
            yield _END
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    def _stream_call(self, request: dict[str, Any]) -> dict[str, Any]:
        """The SDK's arguments for a stream; the core bounds the wait for the first event
        by ``timeout`` and each next one by ``stream_idle_timeout``, so the SDK's own
        per-read timeout must not be the shorter of the two."""
        import math

        call = _stream_call(request)
        if self.stream_idle_timeout > self.timeout:
            http_options = {"timeout": max(1, math.ceil(self.stream_idle_timeout * 1000))}
            call["config"] = {**(call["config"] or {}), "http_options": http_options}
        return call

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """One SDK event; a block is raised only after the text that came with it."""
        if event is _END:
            blocked = stream.state.pop("blocked", None)
            if blocked is not None:
                raise blocked
            return None
        try:
            payload = event.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude={"sdk_http_response"}
            )
        except Exception as exc:  # pydantic refuses to dump what it validated: unusable
            raise ResponseParseError(f"Gemini's stream event cannot be read: {exc}") from None
        parsed = _Reply(payload)
        if parsed.candidate is not None and parsed.finish_reason in BLOCKED_FINISH_REASONS:
            error = _blocked(parsed.candidate, parsed.finish_reason, partial_text=None)
            if not parsed.text:
                raise error
            stream.state["blocked"] = error
            return ModelChunk(text=parsed.text, raw=payload, model_name=parsed.model_name)
        return ModelChunk(
            text=parsed.text,
            raw=payload,
            usage=parsed.usage,
            model_name=parsed.model_name or self.model_name,
            finish_reason=parsed.finish_reason,
        )

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


def _body_call(request: dict[str, Any]) -> dict[str, Any]:
    """The SDK's arguments for a call whose HTTP body ``_parse`` reads itself."""
    config = request["config"]
    return {
        "model": request["model"],
        "contents": request["contents"],
        "config": {**config, "should_return_http_response": True} if config else _RETURN_BODY,
    }


#: The config of a call that sets nothing else (automatic function calling needs tools).
_RETURN_BODY = {"should_return_http_response": True}


def _stream_call(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": request["model"],
        "contents": request["contents"],
        "config": request["config"] or None,
    }


def _plain_text(contents: list[Any]) -> bool:
    """Whether every content is ``{"role": str, "parts": [{"text": str}, ...]}``.

    ``format()`` makes exactly that for text messages, and ``types.Content`` accepts
    it, so only other shapes are validated before sending.
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
    text = text_of(msg.content)
    parts: list[dict[str, Any]] = [{"text": text}] if text or not msg.urls else []
    return parts + [_media_part(url) for url in msg.urls]


def _media_part(url: str) -> dict[str, Any]:
    """Remote files by URI (``file_data``: http(s), ``gs://``); local files and data URLs inline."""
    if "://" in url and not url.startswith("file://"):
        import mimetypes

        mime_type = mimetypes.guess_type(url)[0] or "application/octet-stream"
        return {"file_data": {"file_uri": url, "mime_type": mime_type}}
    media = read_media(url)
    return {
        "inline_data": {
            "mime_type": media.mime_type or "application/octet-stream",
            "data": media.data,
        }
    }


class _Reply:
    """What modelwire reads of one ``GenerateContentResponse`` JSON (camelCase, as sent)."""

    __slots__ = ("candidate", "finish_reason", "model_name", "text", "usage")

    def __init__(self, payload: Any) -> None:
        if not isinstance(payload, Mapping):
            raise ResponseParseError(
                f"Gemini's reply is a JSON {type(payload).__name__}, not an object"
            )
        _check_prompt(payload.get("promptFeedback"))
        candidates = payload.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if candidate is not None and not isinstance(candidate, Mapping):
            raise ResponseParseError("Gemini's reply has a candidate that is not an object")
        self.candidate = candidate
        self.text = _text(candidate) if candidate is not None else ""
        reason = candidate.get("finishReason") if candidate is not None else None
        self.finish_reason = str(reason) if reason else None
        version = payload.get("modelVersion")
        self.model_name = version if isinstance(version, str) and version else None
        self.usage = _usage(payload.get("usageMetadata"))


def _text(candidate: Mapping[str, Any]) -> str:
    """The answer's text parts; thought summaries are not part of the answer."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if parts is None:
        return ""
    if not isinstance(parts, list):
        raise ResponseParseError("Gemini's reply has candidate parts that are not a list")
    texts = []
    for part in parts:
        if not isinstance(part, Mapping):
            raise ResponseParseError("Gemini's reply has a part that is not an object")
        text = part.get("text")
        if text and not part.get("thought"):
            if not isinstance(text, str):
                raise ResponseParseError("Gemini's reply has a text part that is not a string")
            texts.append(text)
    return "".join(texts)


def _usage(metadata: Any) -> Usage | None:
    """Thinking tokens are billed as output, tool-use prompt tokens as input."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ResponseParseError("Gemini's usageMetadata is not an object")
    try:  # Usage.of checks each count; its total adds the two it is given
        prompt = Usage.of(metadata.get("promptTokenCount"), metadata.get("toolUsePromptTokenCount"))
        completion = Usage.of(
            metadata.get("candidatesTokenCount"), metadata.get("thoughtsTokenCount")
        )
        cached = metadata.get("cachedContentTokenCount")
        thoughts = metadata.get("thoughtsTokenCount")
        return Usage.of(
            prompt.total_tokens,
            completion.total_tokens,
            reasoning_tokens=thoughts,
            cached_tokens=cached,
        )
    except ValueError as exc:
        raise ResponseParseError(f"Gemini reported impossible token counts: {exc}") from None


def _ratings(ratings: Any) -> list[dict[str, Any]]:
    if not isinstance(ratings, list):
        return []
    return [dict(rating) for rating in ratings if isinstance(rating, Mapping)]


def _flagged(ratings: list[dict[str, Any]]) -> str:
    flagged = [
        f"{r.get('category', '?')} ({r.get('probability', '?')})"
        for r in ratings
        if r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH")
    ]
    return f"; flagged: {', '.join(flagged)}" if flagged else ""


def _check_prompt(feedback: Any) -> None:
    if not isinstance(feedback, Mapping):
        return
    reason = feedback.get("blockReason")
    if not reason or reason == "BLOCKED_REASON_UNSPECIFIED":
        return
    ratings = _ratings(feedback.get("safetyRatings"))
    message = feedback.get("blockReasonMessage")
    detail = f": {message}" if message else ""
    raise BlockedResponseError(
        f"Gemini refused the prompt (block reason {reason}){detail}{_flagged(ratings)}",
        finish_reason=str(reason),
        blocked="prompt",
        safety_ratings=ratings,
    )


def _blocked(
    candidate: Mapping[str, Any], finish_reason: str, *, partial_text: str | None
) -> BlockedResponseError:
    ratings = _ratings(candidate.get("safetyRatings"))
    message = candidate.get("finishMessage")
    detail = f": {message}" if message else ""
    return BlockedResponseError(
        f"Gemini withheld the response (finish reason {finish_reason}){detail}{_flagged(ratings)}",
        finish_reason=finish_reason,
        blocked="response",
        safety_ratings=ratings,
        partial_text=partial_text,
    )
