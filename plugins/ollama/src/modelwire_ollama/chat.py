"""``ollama_chat``: a conversation with a local model through ``/api/chat``."""

from __future__ import annotations

from typing import Any

from modelwire import ModelResponse, Msg, iter_msgs, text_of
from modelwire_ollama.client import OllamaWrapper, OutputFormat, images_of

__all__ = ["OllamaChatWrapper"]


class OllamaChatWrapper(OllamaWrapper):
    """Chat with an Ollama model. Adds the config key ``format`` (structured output).

    Call it with ``model.format(*msgs)``: a list of ``{"role", "content", "images"}``.
    """

    model_type = "ollama_chat"
    _method = "chat"

    def __init__(
        self, config_name: str, *, format: OutputFormat | None = None, **kwargs: Any
    ) -> None:
        super().__init__(config_name, **kwargs)
        # Not ``self.format``: that name is the method turning Msgs into messages.
        self.output_format = format

    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        """Ollama messages; a ``Msg``'s ``url``s become the message's base64 images."""
        messages = []
        for msg in iter_msgs(*args):
            message: dict[str, Any] = {"role": msg.role, "content": text_of(msg.content)}
            if msg.urls:
                message["images"] = images_of(msg.urls)
            messages.append(message)
        return messages

    def _request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {**self._common(), "messages": messages, "format": self.output_format}

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        response = super()._parse(reply, request)
        if reply.message.thinking:
            response.extra["thinking"] = reply.message.thinking
        return response

    def _text(self, reply: Any) -> str | None:
        return reply.message.content
