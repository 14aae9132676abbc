"""``dashscope_chat``: Qwen chat models over DashScope's native protocol.

Text models answer at the text-generation endpoint; vision/audio models (and any
conversation carrying media) at the multimodal-generation endpoint, whose content
is a list of parts (``{"image": url}``, ``{"text": ...}``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from modelwire import (
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    Stream,
    Usage,
    iter_msgs,
    text_of,
)
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

    def _resource(self, client: Any) -> Any:
        return client.multimodal.chat if self.multimodal else client.chat.completions

    # -- the provider step --------------------------------------------------------------
    def _request(self, messages: list[Message] | str, **kwargs: Any) -> dict[str, Any]:
        return {"messages": messages, "parameters": {**self.generate_args, **kwargs}}

    def _send(self, request: dict[str, Any]) -> Any:
        return self._resource(self.clients.sync).create(model=self.model_name, **request)

    async def _asend(self, request: dict[str, Any]) -> Any:
        return await self._resource(self.clients.async_).create(model=self.model_name, **request)

    def _parse(self, reply: ChatCompletion, request: dict[str, Any]) -> ModelResponse:
        try:
            if not reply.choices:
                raise ResponseParseError(
                    "DashScope's reply holds no choices",
                    body=json.dumps(_dump(reply), ensure_ascii=False),
                )
            choice = reply.choices[0]
            return ModelResponse(
                text=choice.message.content or "",
                raw=_dump(reply),
                usage=_usage(reply.usage),
                model_name=reply.model or self.model_name,
                finish_reason=_finish_reason(choice.finish_reason),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"DashScope's reply has an unexpected shape: {exc}") from exc

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        stream = self._resource(self.clients.sync).create(
            model=self.model_name, stream=True, **_streamed(request)
        )
        try:
            yield from stream
        finally:
            stream.close()

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        stream = await self._resource(self.clients.async_).create(
            model=self.model_name, stream=True, **_streamed(request)
        )
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()

    def _parse_chunk(self, event: ChatCompletionChunk, stream: Stream) -> ModelChunk | None:
        """One event; DashScope repeats the running usage on every event, so it is held
        in ``stream.state`` and passed on with the finishing event only."""
        try:
            usage = _usage(event.usage) or stream.state.get("usage")
            stream.state["usage"] = usage
            choice = event.choices[0] if event.choices else None
            text = (choice.delta.content or "") if choice is not None else ""
            finish_reason = _finish_reason(choice.finish_reason) if choice is not None else None
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"DashScope's stream event has an unexpected shape: {exc}"
            ) from exc
        if not text and finish_reason is None:
            return None
        return ModelChunk(
            text=text,
            raw=_dump(event),
            usage=usage if finish_reason else None,
            model_name=event.model or self.model_name,
            finish_reason=finish_reason,
        )


def _streamed(request: dict[str, Any]) -> dict[str, Any]:
    """Deltas, not cumulative snapshots: the SDK turns incremental output on for streams."""
    parameters = dict(request["parameters"])
    parameters.pop("incremental_output", None)
    return {**request, "parameters": parameters}


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
        text = text_of(msg.content)
        if not as_parts:
            return text
        parts = [{"text": text}] if text else []
    return [_media_part(url) for url in msg.urls] + parts


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
    """The reply as JSON, for ``raw``."""
    return reply.model_dump(mode="json", exclude={"headers"})
