"""``ollama_generate``: a completion of one prompt through ``/api/generate``."""

from __future__ import annotations

from typing import Any

from modelwire import Msg, iter_msgs, text_of
from modelwire_ollama.client import OllamaWrapper, OutputFormat, images_of

__all__ = ["OllamaGenerateWrapper"]


class OllamaGenerateWrapper(OllamaWrapper):
    """Complete a prompt with an Ollama model. Adds the config key ``format``.

    Call it with a prompt string and, per call, ``system=``, ``raw=`` (skip the
    model's prompt template) and ``images=`` (local paths or ``data:`` URIs).
    """

    model_type = "ollama_generate"
    _method = "generate"

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

    def _request(
        self,
        prompt: str,
        *,
        system: str | None = None,
        raw: bool | None = None,
        images: list[str] | None = None,
    ) -> dict[str, Any]:
        return {
            **self._common(),
            "prompt": prompt,
            "system": system,
            "raw": raw,
            "images": images_of(images) if images else None,
            "format": self.output_format,
        }

    def _text(self, reply: Any) -> str | None:
        return reply.response
