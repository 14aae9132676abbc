"""``ollama_generate``: a completion of one prompt through ``/api/generate``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from modelwire.errors import BadRequestError
from modelwire.message import Msg, iter_msgs
from modelwire.response import ModelChunk, ModelResponse
from modelwire_ollama.client import OllamaWrapper, OutputFormat
from modelwire_ollama.formatting import image_of, text_of

__all__ = ["OllamaGenerateWrapper"]


class OllamaGenerateWrapper(OllamaWrapper):
    """Complete a prompt with an Ollama model. Adds the config key ``format``.

    Call it with a prompt string and, per call, ``system=``, ``raw=`` (skip the
    model's prompt template) and ``images=`` (local paths or ``data:`` URIs).
    """

    model_type = "ollama_generate"

    def __init__(
        self, config_name: str, *, format: OutputFormat | None = None, **kwargs: Any
    ) -> None:
        super().__init__(config_name, **kwargs)
        # Not ``self.format``: that name is the method turning Msgs into a prompt.
        self.output_format = format

    def format(self, *args: Msg | list[Msg] | None) -> str:
        """One prompt: system text first, then the conversation as ``name: text`` lines.

        Generation has no roles, so the transcript form keeps who said what.
        """
        msgs = list(iter_msgs(*args))
        system = [text_of(msg.content) for msg in msgs if msg.role == "system"]
        lines = [f"{msg.name}: {text_of(msg.content)}" for msg in msgs if msg.role != "system"]
        return "\n\n".join(part for part in ("\n".join(system), "\n".join(lines)) if part)

    def _params(
        self, prompt: str, system: str | None, raw: bool | None, images: list[str] | None
    ) -> dict[str, Any]:
        return {
            **self._request_params(),
            "prompt": prompt,
            "system": system,
            "raw": raw,
            "images": _images(images),
            "format": self.output_format,
        }

    def _call(
        self,
        prompt: str,
        *,
        system: str | None = None,
        raw: bool | None = None,
        images: list[str] | None = None,
    ) -> ModelResponse:
        reply = self._client().generate(**self._params(prompt, system, raw, images), stream=False)
        return self._response(reply, reply.response or "")

    async def _acall(
        self,
        prompt: str,
        *,
        system: str | None = None,
        raw: bool | None = None,
        images: list[str] | None = None,
    ) -> ModelResponse:
        reply = await self._aclient().generate(
            **self._params(prompt, system, raw, images), stream=False
        )
        return self._response(reply, reply.response or "")

    def _stream(
        self,
        prompt: str,
        *,
        system: str | None = None,
        raw: bool | None = None,
        images: list[str] | None = None,
    ) -> Iterator[ModelChunk]:
        parts = self._client().generate(**self._params(prompt, system, raw, images), stream=True)
        return self._chunks(parts, _response_text)

    async def _astream(
        self,
        prompt: str,
        *,
        system: str | None = None,
        raw: bool | None = None,
        images: list[str] | None = None,
    ) -> AsyncIterator[ModelChunk]:
        parts = await self._aclient().generate(
            **self._params(prompt, system, raw, images), stream=True
        )
        async for chunk in self._achunks(parts, _response_text):
            yield chunk


def _response_text(part: Any) -> str | None:
    return part.response


def _images(images: list[str] | None) -> list[str] | None:
    """Per-call images; a bad one is the caller's error, reported before anything is sent."""
    if not images:
        return None
    try:
        return [image_of(image) for image in images]
    except ValueError as exc:
        raise BadRequestError(str(exc)) from exc
