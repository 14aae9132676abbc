"""``ollama_chat``: a conversation with a local model through ``/api/chat``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from modelwire.message import Msg, iter_msgs
from modelwire.response import ModelChunk, ModelResponse
from modelwire_ollama.client import OllamaWrapper, OutputFormat
from modelwire_ollama.formatting import image_of, text_of

__all__ = ["OllamaChatWrapper"]


class OllamaChatWrapper(OllamaWrapper):
    """Chat with an Ollama model. Adds the config key ``format`` (structured output).

    Call it with ``model.format(*msgs)``: a list of ``{"role", "content", "images"}``.
    """

    model_type = "ollama_chat"

    def __init__(
        self, config_name: str, *, format: OutputFormat | None = None, **kwargs: Any
    ) -> None:
        super().__init__(config_name, **kwargs)
        # Not ``self.format``: that name is the method turning Msgs into messages.
        self.output_format = format

    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        """Ollama messages; a ``Msg``'s ``url``s become the message's images."""
        messages = []
        for msg in iter_msgs(*args):
            message: dict[str, Any] = {"role": msg.role, "content": text_of(msg.content)}
            if msg.urls:
                message["images"] = [image_of(url) for url in msg.urls]
            messages.append(message)
        return messages

    def _params(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {**self._request_params(), "messages": messages, "format": self.output_format}

    def _call(self, messages: list[dict[str, Any]]) -> ModelResponse:
        reply = self._client().chat(**self._params(messages), stream=False)
        return self._chat_response(reply)

    async def _acall(self, messages: list[dict[str, Any]]) -> ModelResponse:
        reply = await self._aclient().chat(**self._params(messages), stream=False)
        return self._chat_response(reply)

    def _stream(self, messages: list[dict[str, Any]]) -> Iterator[ModelChunk]:
        parts = self._client().chat(**self._params(messages), stream=True)
        return self._chunks(parts, _content)

    async def _astream(self, messages: list[dict[str, Any]]) -> AsyncIterator[ModelChunk]:
        parts = await self._aclient().chat(**self._params(messages), stream=True)
        async for chunk in self._achunks(parts, _content):
            yield chunk

    def _chat_response(self, reply: Any) -> ModelResponse:
        response = self._response(reply, _content(reply) or "")
        if reply.message.thinking:
            response.extra["thinking"] = reply.message.thinking
        return response


def _content(part: Any) -> str | None:
    return part.message.content
