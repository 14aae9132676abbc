"""``openai`` / ``openai_chat``: chat completions on OpenAI or any OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

from modelwire import (
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    Stream,
    data_url,
    iter_msgs,
    text_of,
)
from modelwire_openai.client import OpenAIWrapper, body_of, payload_of, usage_of
from modelwire_openai.pricing import CHAT_PRICES

__all__ = ["OpenAIChatWrapper"]


def _logger() -> Any:
    import logging  # only to warn about images a model cannot take

    return logging.getLogger("modelwire.openai")


#: OpenAI models known to refuse image input; images sent to them are left out.
#: Any other name (newer OpenAI models, models behind a compatible server) gets them.
_TEXT_ONLY = ("gpt-3.5", "gpt-4-0", "gpt-4-32k", "gpt-4-1106-preview", "o1-mini", "o1-preview")
_TEXT_ONLY_EXACT = ("gpt-4", "o3-mini")

#: Characters OpenAI refuses in a message's ``name`` (compiled on first use, by ``re``).
_NAME_FORBIDDEN = r"[\s<|\\/>]+"


class OpenAIChatWrapper(OpenAIWrapper):
    """Chat completions: ``model(model.format(msgs), **generate_args)`` -> text.

    ``generate_args`` go into every request and a call's kwargs override them; tool
    and function calls are returned as the service sent them, in ``raw`` (and in
    ``extra["tool_calls"]``).
    """

    model_type = "openai"
    pricing_table = CHAT_PRICES
    reserved_args: ClassVar[tuple[str, ...]] = ("model", "messages", "stream")

    # -- input --------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        """OpenAI messages: role, content and a sanitised ``name``; images for user messages."""
        messages = []
        for msg in iter_msgs(*args):
            message: dict[str, Any] = {"role": msg.role, "content": self._content(msg)}
            name = re.sub(_NAME_FORBIDDEN, "_", str(msg.name or "")).strip("_")[:64]
            if name:
                message["name"] = name
            messages.append(message)
        return messages

    @property
    def takes_images(self) -> bool:
        """Whether image parts are sent to this model (only known text-only models refuse)."""
        name = (self.model_name or "").lower()
        return not (name in _TEXT_ONLY_EXACT or name.startswith(_TEXT_ONLY))

    def _content(self, msg: Msg) -> str | list[dict[str, Any]]:
        text = text_of(msg.content)
        urls = msg.urls
        if not urls:
            return text
        if msg.role != "user":
            _logger().warning(
                "%s: OpenAI takes images in user messages only; %d image(s) of a %s message"
                " were left out",
                self.config_name,
                len(urls),
                msg.role,
            )
            return text
        if not self.takes_images:
            _logger().warning(
                "%s: model %r does not take images; %d image(s) were left out",
                self.config_name,
                self.model_name,
                len(urls),
            )
            return text
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        parts += [{"type": "image_url", "image_url": {"url": data_url(url)}} for url in urls]
        return parts

    # -- the provider step -----------------------------------------------------------
    def _request(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        return {"messages": messages, **self.call_args(kwargs)}

    def _send(self, request: dict[str, Any]) -> Any:
        create = self.clients.sync.chat.completions.with_raw_response.create
        return create(model=self.model_name, **self.sdk_args(create, _plain(request)))

    async def _asend(self, request: dict[str, Any]) -> Any:
        create = self.clients.async_.chat.completions.with_raw_response.create
        return await create(model=self.model_name, **self.sdk_args(create, _plain(request)))

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        payload = body_of(reply)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ResponseParseError("the reply has no choices", body=_dump(payload))
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, Mapping):
            raise ResponseParseError("the reply's first choice has no message", body=_dump(payload))
        extra: dict[str, Any] = {}
        for key in ("tool_calls", "function_call"):
            if message.get(key):
                extra[key] = message[key]
        return ModelResponse(
            text=_reply_text(message.get("content")),
            raw=payload,
            usage=usage_of(payload),
            model_name=payload.get("model") or self.model_name,
            finish_reason=choice.get("finish_reason"),
            extra=extra,
        )

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        create = self.clients.sync.chat.completions.create
        args = self.sdk_args(create, _streamed(request))
        with create(model=self.model_name, stream=True, **args) as stream:
            yield from stream

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        create = self.clients.async_.chat.completions.create
        args = self.sdk_args(create, _streamed(request))
        stream = await create(model=self.model_name, stream=True, **args)
        try:
            async for event in stream:
                yield event
        finally:
            await stream.close()

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """A chunk from one SDK stream event (its JSON, as the service sent it)."""
        payload = payload_of(event)
        text, finish_reason = "", None
        for choice in payload.get("choices") or ():
            if isinstance(choice, Mapping) and choice.get("index", 0) in (0, None):
                delta = choice.get("delta")
                if isinstance(delta, Mapping):
                    text = _reply_text(delta.get("content"))
                finish_reason = choice.get("finish_reason")
        return ModelChunk(
            text=text,
            raw=payload,
            usage=usage_of(payload),
            model_name=payload.get("model") or self.model_name,
            finish_reason=finish_reason,
        )


def _plain(request: dict[str, Any]) -> dict[str, Any]:
    """A plain call's arguments: ``stream_options`` in ``generate_args`` is for streams."""
    args = dict(request)
    args.pop("stream_options", None)
    return args


def _streamed(request: dict[str, Any]) -> dict[str, Any]:
    """A stream's arguments, asking for usage in its last event unless told otherwise."""
    args = dict(request)
    options = args.pop("stream_options", {})
    if options is not None:  # None: the server must not be sent stream_options at all
        args["stream_options"] = {"include_usage": True, **options}
    return args


def _reply_text(content: Any) -> str:
    """A message's text: a string, or the text parts some compatible servers send."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _dump(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)
