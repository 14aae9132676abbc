"""``dashscope_chat``: Qwen chat models over DashScope's native protocol.

Text models answer at the text-generation endpoint; vision/audio models (and any
conversation carrying media) at the multimodal-generation endpoint, whose content
is a list of parts (``{"image": url}``, ``{"text": ...}``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from modelwire.errors import ResponseParseError
from modelwire.message import Msg, iter_msgs
from modelwire.response import LazyRaw, ModelChunk, ModelResponse, Usage
from modelwire_dashscope.client import DashScopeWrapper
from modelwire_dashscope.pricing import CHAT_PRICES

if TYPE_CHECKING:
    from dashscope.v2.types.common import Usage as SdkUsage
    from dashscope.v2.types.completions import ChatCompletion, ChatCompletionChunk

__all__ = ["DashScopeChatWrapper"]

Message = dict[str, Any]

#: Name fragments of models that only the multimodal-generation endpoint serves.
MULTIMODAL_MARKERS = ("-vl", "qvq", "omni", "-audio")
_VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".flv"})
_AUDIO_SUFFIXES = frozenset({".mp3", ".wav", ".m4a", ".flac", ".ogg", ".aac", ".amr"})


class DashScopeChatWrapper(DashScopeWrapper):
    """Chat with a Qwen model; ``format`` builds messages that follow DashScope's rules."""

    model_type = "dashscope_chat"
    pricing_table = CHAT_PRICES

    def __init__(
        self,
        config_name: str,
        *,
        multimodal: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.multimodal = _looks_multimodal(self.model_name) if multimodal is None else multimodal

    # -- input ------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> list[Message]:
        """DashScope messages: one leading system message, then alternating turns.

        System messages are merged into one at the front, consecutive messages of one
        role into one turn, and a conversation that opens with the assistant has that
        turn sent as the user's (DashScope rejects an assistant first turn). With media
        (``Msg.url``) or a multimodal model every content becomes a list of parts.
        """
        msgs = list(iter_msgs(*args))
        as_parts = self.multimodal or any(msg.urls or _is_parts(msg.content) for msg in msgs)
        system: list[Any] = []
        turns: list[Message] = []
        for msg in msgs:
            content = _content(msg, as_parts)
            if msg.role == "system":
                system.append(content)
                continue
            role = "user" if not turns else msg.role
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] = _join([turns[-1]["content"], content])
            else:
                turns.append({"role": role, "content": content})
        if system:
            turns.insert(0, {"role": "system", "content": _join(system)})
        return turns

    def _parameters(self, overrides: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        parameters = {**self.generate_args, **overrides}
        if stream:
            # Deltas, not cumulative snapshots: the SDK turns it on for streams.
            parameters.pop("incremental_output", None)
        return parameters

    def _resource(self, client: Any) -> Any:
        return client.multimodal.chat if self.multimodal else client.chat.completions

    # -- calls ------------------------------------------------------------------------
    def _call(self, messages: list[Message] | str, **kwargs: Any) -> ModelResponse:
        completion = self._resource(self._clients.sync()).create(
            model=self.model_name,
            messages=messages,
            parameters=self._parameters(kwargs, stream=False),
        )
        return self._response(completion)

    async def _acall(self, messages: list[Message] | str, **kwargs: Any) -> ModelResponse:
        completion = await self._resource(self._clients.aio()).create(
            model=self.model_name,
            messages=messages,
            parameters=self._parameters(kwargs, stream=False),
        )
        return self._response(completion)

    def _stream(self, messages: list[Message] | str, **kwargs: Any) -> Iterator[ModelChunk]:
        stream = self._resource(self._clients.sync()).create(
            model=self.model_name,
            messages=messages,
            stream=True,
            parameters=self._parameters(kwargs, stream=True),
        )
        state = _StreamState(self.model_name)
        try:
            for chunk in stream:
                yield from state.feed(chunk)
            yield from state.finish()
        finally:
            stream.close()

    async def _astream(
        self, messages: list[Message] | str, **kwargs: Any
    ) -> AsyncIterator[ModelChunk]:
        stream = await self._resource(self._clients.aio()).create(
            model=self.model_name,
            messages=messages,
            stream=True,
            parameters=self._parameters(kwargs, stream=True),
        )
        state = _StreamState(self.model_name)
        try:
            async for chunk in stream:
                for piece in state.feed(chunk):
                    yield piece
            for piece in state.finish():
                yield piece
        finally:
            await stream.aclose()

    def _response(self, completion: ChatCompletion) -> ModelResponse:
        if not completion.choices:
            raise ResponseParseError(
                "DashScope's reply holds no choices",
                body=json.dumps(_dump(completion), ensure_ascii=False),
            )
        choice = completion.choices[0]
        return ModelResponse(
            text=choice.message.content or "",
            raw=LazyRaw(partial(_dump, completion)),
            usage=_usage(completion.usage),
            model_name=completion.model or self.model_name,
            finish_reason=_finish_reason(choice.finish_reason),
        )


class _StreamState:
    """Turns SDK chunks into ``ModelChunk``s; usage rides on the last chunk only.

    DashScope repeats the running usage on every event; passing it on each chunk
    would read as partial totals, so it is held back until the finishing event.
    """

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.usage: Usage | None = None
        self.usage_sent = False

    def feed(self, chunk: ChatCompletionChunk) -> list[ModelChunk]:
        self.usage = _usage(chunk.usage) or self.usage
        choice = chunk.choices[0] if chunk.choices else None
        text = (choice.delta.content or "") if choice is not None else ""
        finish_reason = _finish_reason(choice.finish_reason) if choice is not None else None
        if not text and finish_reason is None:
            return []
        usage = self.usage if finish_reason else None
        self.usage_sent = self.usage_sent or usage is not None
        return [
            ModelChunk(
                text=text,
                raw=LazyRaw(partial(_dump, chunk)),
                usage=usage,
                model_name=chunk.model or self.model_name,
                finish_reason=finish_reason,
            )
        ]

    def finish(self) -> list[ModelChunk]:
        """A closing usage-only chunk when no finishing event carried the usage."""
        if self.usage is None or self.usage_sent:
            return []
        self.usage_sent = True
        return [ModelChunk(usage=self.usage, model_name=self.model_name)]


def _usage(usage: SdkUsage | None) -> Usage | None:
    if usage is None:
        return None
    return Usage.of(usage.input_tokens, usage.output_tokens)


def _finish_reason(reason: str | None) -> str | None:
    """DashScope streams the string ``"null"`` until the last event."""
    return None if not reason or reason == "null" else reason


def _looks_multimodal(model_name: str) -> bool:
    name = model_name.lower()
    return any(marker in name for marker in MULTIMODAL_MARKERS)


def _is_parts(content: Any) -> bool:
    return isinstance(content, list) and all(isinstance(part, dict) for part in content)


def _content(msg: Msg, as_parts: bool) -> str | list[dict[str, Any]]:
    if _is_parts(msg.content):
        parts: list[dict[str, Any]] = list(msg.content)
    else:
        text = msg.content if isinstance(msg.content, str) else _text(msg.content)
        if not as_parts:
            return text
        parts = [{"text": text}] if text else []
    return [_media_part(url) for url in msg.urls] + parts


def _text(content: Any) -> str:
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _media_part(url: str) -> dict[str, str]:
    """``{"image"|"video"|"audio": url}`` by the file extension; images by default."""
    from pathlib import PurePosixPath  # only for messages carrying media
    from urllib.parse import urlsplit

    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix in _VIDEO_SUFFIXES:
        return {"video": url}
    if suffix in _AUDIO_SUFFIXES:
        return {"audio": url}
    return {"image": url}


def _join(contents: list[Any]) -> str | list[dict[str, Any]]:
    """Merge the contents of several messages into one turn."""
    if all(isinstance(content, str) for content in contents):
        return "\n".join(contents)
    parts: list[dict[str, Any]] = []
    for content in contents:
        parts.extend(content if isinstance(content, list) else [{"text": content}])
    return parts


def _dump(reply: ChatCompletion | ChatCompletionChunk) -> dict[str, Any]:
    """The reply as JSON, for ``raw`` (built when first read: see ``LazyRaw``)."""
    return reply.model_dump(mode="json", exclude={"headers"})
