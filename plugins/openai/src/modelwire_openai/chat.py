"""``openai`` / ``openai_chat``: chat completions on OpenAI or any OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import partial
from typing import Any, ClassVar

from modelwire.errors import ResponseParseError
from modelwire.message import Msg, iter_msgs
from modelwire.response import LazyRaw, ModelChunk, ModelResponse
from modelwire_openai.client import OpenAIWrapperBase, body_of, payload_of, usage_of
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


class OpenAIChatWrapper(OpenAIWrapperBase):
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
        text = _text_of(msg.content)
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
        parts += [{"type": "image_url", "image_url": {"url": image_url(url)}} for url in urls]
        return parts

    # -- calls --------------------------------------------------------------------------
    def _call(self, messages: list[dict[str, Any]], **kwargs: Any) -> ModelResponse:
        create = self.client.chat.completions.with_raw_response.create
        args = self._call_args(create, kwargs)
        reply = create(model=self.model_name, messages=messages, **args)
        return self._response(body_of(reply))

    async def _acall(self, messages: list[dict[str, Any]], **kwargs: Any) -> ModelResponse:
        create = self.aclient.chat.completions.with_raw_response.create
        args = self._call_args(create, kwargs)
        reply = await create(model=self.model_name, messages=messages, **args)
        return self._response(body_of(reply))

    def _stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Iterator[ModelChunk]:
        create = self.client.chat.completions.create
        args = self._stream_args(create, kwargs)
        received = False
        with create(model=self.model_name, messages=messages, stream=True, **args) as stream:
            for event in stream:
                received = True
                yield self._event_chunk(event)
        if not received:
            raise ResponseParseError("the stream ended without a single event")

    async def _astream(
        self, messages: list[dict[str, Any]], **kwargs: Any
    ) -> AsyncIterator[ModelChunk]:
        create = self.aclient.chat.completions.create
        args = self._stream_args(create, kwargs)
        received = False
        stream = await create(model=self.model_name, messages=messages, stream=True, **args)
        try:
            async for event in stream:
                received = True
                yield self._event_chunk(event)
        finally:
            await stream.close()
        if not received:
            raise ResponseParseError("the stream ended without a single event")

    def _call_args(self, create: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Request args of a plain call; ``stream_options`` in ``generate_args`` is for streams."""
        args = self.request_args(create, kwargs)
        args.pop("stream_options", None)
        return args

    def _stream_args(self, create: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Request args asking for usage in the stream's last event, unless told otherwise."""
        args = self.request_args(create, kwargs)
        options = args.pop("stream_options", {})
        if options is not None:  # None: the server must not be sent stream_options at all
            args["stream_options"] = {"include_usage": True, **options}
        return args

    # -- output -------------------------------------------------------------------------
    def _response(self, payload: dict[str, Any]) -> ModelResponse:
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

    def _event_chunk(self, event: Any) -> ModelChunk:
        """A chunk from one SDK stream event, read through the event's attributes.

        Dumping every event into a dict (``payload_of``) cost ~30 µs per chunk, more
        than the rest of the wrapper's work on it. The SDK builds events without
        validating them, so each field read here is checked as a payload's would be;
        ``raw`` is dumped when first read. Anything but an SDK model (a JSON value that
        is not an object) takes the payload path and its error.
        """
        if not hasattr(event, "to_dict"):
            return self._chunk(payload_of(event))
        text, finish_reason = "", None
        for choice in getattr(event, "choices", None) or ():
            if getattr(choice, "index", None) in (0, None):  # the SDK fills a missing one with None
                text = _reply_text(getattr(getattr(choice, "delta", None), "content", None))
                finish_reason = getattr(choice, "finish_reason", None)
        usage = getattr(event, "usage", None)
        return ModelChunk(
            text=text,
            raw=LazyRaw(partial(payload_of, event)),
            usage=usage_of({"usage": payload_of(usage)}) if hasattr(usage, "to_dict") else None,
            model_name=getattr(event, "model", None) or self.model_name,
            finish_reason=finish_reason,
        )

    def _chunk(self, payload: dict[str, Any]) -> ModelChunk:
        text, finish_reason = "", None
        for choice in payload.get("choices") or ():
            if isinstance(choice, Mapping) and choice.get("index", 0) == 0:
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


def image_url(location: str) -> str:
    """A URL OpenAI accepts for an image: web and data URLs as they are, files inlined."""
    if location.startswith(("http://", "https://", "data:")):
        return location
    import base64  # the rest runs only for local image files
    import mimetypes
    from pathlib import Path
    from urllib.parse import unquote, urlsplit

    path = Path(unquote(urlsplit(location).path) if location.startswith("file://") else location)
    path = path.expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"image {location!r} is neither a URL nor an existing file")
    mime = mimetypes.guess_type(path.name)[0]
    if mime is None or not mime.startswith("image/"):
        raise ValueError(f"{location!r} is not an image file (by its extension)")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _reply_text(content: Any) -> str:
    """A message's text: a string, or the text parts some compatible servers send."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _dump(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)
