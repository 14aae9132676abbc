"""``ollama_generate``: a completion of one prompt through ``/api/generate``."""

from __future__ import annotations

from typing import Any, TypedDict

from modelwire import BadRequestError, Msg, iter_msgs, text_of
from modelwire_ollama.client import OllamaWrapper, OutputFormat, images_of, put_structured

__all__ = ["OllamaGenerateArgs", "OllamaGenerateWrapper"]


class OllamaGenerateArgs(TypedDict, total=False):
    """What ``generate_args`` may hold: arguments every call gets (a call's own win)."""

    structured_model: Any


class OllamaGenerateWrapper(OllamaWrapper):
    """Complete a prompt with an Ollama model. Adds the config keys ``format`` and
    ``generate_args``.

    Call it with a prompt string and, per call, ``system=``, ``raw=`` (skip the
    model's prompt template), ``images=`` (local paths or ``data:`` URIs) and, per
    call or in ``generate_args``, ``structured_model`` (sent as Ollama's ``format``
    schema, the reply validated into ``response.parsed``). ``/api/generate`` has no
    tools: a call giving ``tools`` or ``tool_choice`` is refused before sending.
    """

    model_type = "ollama_generate"
    agent_arguments = frozenset({"structured_model"})
    _method = "generate"
    _call_arg_names = tuple(OllamaGenerateArgs.__annotations__)

    def __init__(
        self,
        config_name: str,
        *,
        format: OutputFormat | None = None,
        generate_args: OllamaGenerateArgs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        # Not ``self.format``: that name is the method turning Msgs into a prompt.
        self.output_format = format
        self.generate_args: dict[str, Any] = dict(generate_args or {})

    @classmethod
    def _put_call_args(cls, request: dict[str, Any], args: dict[str, Any]) -> None:
        structured_model = args.get("structured_model")
        if structured_model is not None:
            put_structured(request, structured_model)

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
        structured_model: Any = None,
        **unknown: Any,
    ) -> dict[str, Any]:
        if unknown:
            raise TypeError(
                f"ollama_generate takes no argument {next(iter(unknown))!r} (it takes the"
                " prompt and system, raw, images, structured_model)"
            )
        if not isinstance(prompt, str):
            raise BadRequestError(
                f"ollama_generate takes a prompt string, not {type(prompt).__name__}"
                " (for messages, use ollama_chat, or join them with model.format(*msgs))"
            )
        request = {
            **self._common(),
            "prompt": prompt,
            "system": system,
            "raw": raw,
            "images": images_of(images) if images else None,
            "format": self.output_format,
        }
        if structured_model is None:
            structured_model = self.generate_args.get("structured_model")
        self._put_call_args(request, {"structured_model": structured_model})
        return request

    def _text(self, reply: Any) -> str | None:
        return reply.response
