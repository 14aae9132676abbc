"""What a wrapper returns: ``ModelResponse``, ``ModelChunk`` and ``Usage``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from modelwire.blocks import ContentBlock, ToolUseBlock
    from modelwire.message import Msg

__all__ = ["ModelChunk", "ModelResponse", "Usage", "content_of", "merge_block_fields"]


def content_of(
    text: str | None,
    tool_calls: list[ToolUseBlock] | None = None,
    thinking: str | None = None,
    block_fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ContentBlock]:
    """The blocks of a reply in the order models produce them: thinking, text, tool calls.

    One rule for plain calls, streams and ``collect``, so that all give the same
    ``content``. ``block_fields`` are provider fields kept on the ``"thinking"`` or
    ``"text"`` block (a thought signature, which must be sent back with it); a block
    that has some is kept even when its text is empty.
    """
    fields = block_fields or {}
    blocks: list[Any] = []
    if thinking or "thinking" in fields:
        blocks.append(
            {"type": "thinking", "thinking": thinking or "", **fields.get("thinking", {})}
        )
    if text or "text" in fields:
        blocks.append({"type": "text", "text": text or "", **fields.get("text", {})})
    blocks.extend(tool_calls or ())
    return blocks


def merge_block_fields(
    into: dict[str, dict[str, Any]], fields: Mapping[str, Mapping[str, Any]]
) -> None:
    """Add a chunk's ``block_fields`` to a stream's (later values win)."""
    for kind, values in fields.items():
        into.setdefault(kind, {}).update(values)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, as the service reported them.

    ``reasoning_tokens`` and ``cached_tokens`` are set only where a service reports
    them; they are parts of ``completion_tokens`` and ``prompt_tokens``, not extra.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    @classmethod
    def of(
        cls,
        prompt_tokens: Any = None,
        completion_tokens: Any = None,
        total_tokens: Any = None,
        **optional: Any,
    ) -> Usage:
        """Build from a reply's possibly-missing counts; the total is derived when absent.

        A count that is not a whole, non-negative number (``-5``, ``"7"``, ``1e400``,
        ``True``) raises ``ValueError``: a parser turns it into ``ResponseParseError``.
        """
        prompt = _count("prompt_tokens", prompt_tokens)
        completion = _count("completion_tokens", completion_tokens)
        total = (
            prompt + completion if total_tokens is None else _count("total_tokens", total_tokens)
        )
        extra = {
            key: None if value is None else _count(key, value) for key, value in optional.items()
        }
        return cls(prompt, completion, max(total, prompt + completion), **extra)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            _add(self.reasoning_tokens, other.reasoning_tokens),
            _add(self.cached_tokens, other.cached_tokens),
        )

    def to_dict(self) -> dict[str, int]:
        """The counts as a dict; the optional ones only when reported."""
        counts = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            counts["reasoning_tokens"] = self.reasoning_tokens
        if self.cached_tokens is not None:
            counts["cached_tokens"] = self.cached_tokens
        return counts


def _count(name: str, value: Any) -> int:
    if type(value) is int and 0 <= value <= 10**15:
        return value
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is {value!r}, not a number of tokens")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} is {value!r}, not a whole number of tokens")
        value = int(value)
    if value < 0 or value > 10**15:
        raise ValueError(f"{name} is {value!r}, not a possible number of tokens")
    return value


def _add(first: int | None, second: int | None) -> int | None:
    if first is None and second is None:
        return None
    return (first or 0) + (second or 0)


@dataclass(slots=True, repr=False)
class ModelResponse:
    """The result of one call; which fields are set depends on the model type.

    ``raw`` is the service's reply as plain JSON-like data, for what modelwire does
    not read itself; ``extra`` holds provider-specific fields a plugin documents.

    For chat, ``content`` is the blocks the model produced (thinking, text,
    ``tool_use``), ``tool_calls`` its ``tool_use`` blocks, ``thinking`` the reasoning
    text and ``parsed`` the validated ``structured_model`` object. A plugin sets either
    side: ``content`` is built from ``text``/``tool_calls``/``thinking``, or those are
    read from ``content``, so that both always agree.
    """

    text: str | None = None
    embedding: list[list[float]] | None = None
    image_urls: list[str] | None = None
    raw: Any = None
    usage: Usage | None = None
    model_name: str | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    content: list[ContentBlock] | None = None
    tool_calls: list[ToolUseBlock] | None = None
    thinking: str | None = None
    parsed: Any = None

    def __post_init__(self) -> None:
        if self.content is None:
            if self.text is not None or self.tool_calls or self.thinking:
                self.content = content_of(self.text, self.tool_calls, self.thinking)
            return
        blocks = [block for block in self.content if isinstance(block, dict)]
        if self.text is None:
            self.text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        if self.tool_calls is None:
            calls = [b for b in blocks if b.get("type") == "tool_use"]
            self.tool_calls = calls or None  # type: ignore[assignment]
        if self.thinking is None:
            thinking = "".join(b.get("thinking", "") for b in blocks if b.get("type") == "thinking")
            self.thinking = thinking or None

    def to_msg(self, name: str = "assistant") -> Msg:
        """The reply as an assistant ``Msg`` (content: the block list), to send back
        with the tool results that answer its ``tool_calls``."""
        import copy

        from modelwire.message import Msg

        blocks = self.content
        if blocks is None:
            blocks = [{"type": "text", "text": self.text or ""}]
        return Msg(name, copy.deepcopy(blocks), role="assistant")

    def __repr__(self) -> str:
        shown = []
        if self.text is not None:
            text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
            shown.append(f"text={text!r}")
        if self.tool_calls:
            names = ", ".join(str(call.get("name")) for call in self.tool_calls)
            shown.append(f"tool_calls=<{names}>")
        if self.thinking:
            shown.append(f"thinking=<{len(self.thinking)} chars>")
        if self.parsed is not None:
            shown.append(f"parsed=<{type(self.parsed).__name__}>")
        if self.embedding is not None:
            dims = len(self.embedding[0]) if self.embedding else 0
            shown.append(f"embedding=<{len(self.embedding)} x {dims}>")
        if self.image_urls is not None:
            shown.append(f"image_urls=<{len(self.image_urls)} image(s)>")
        if self.usage is not None:
            shown.append(f"usage={self.usage.total_tokens} tokens")
        if self.model_name:
            shown.append(f"model_name={self.model_name!r}")
        if self.finish_reason:
            shown.append(f"finish_reason={self.finish_reason!r}")
        return f"ModelResponse({', '.join(shown)})"


@dataclass(slots=True)
class ModelChunk:
    """One piece of a streamed reply.

    A stream is complete only once a chunk carries a ``finish_reason``; the last
    chunk carries ``usage`` when the service reports it, and the complete
    ``tool_calls`` (assembled by the stream from the fragments a plugin hands to
    ``Stream.tool_call_delta``). ``thinking`` is a reasoning delta. ``block_fields``
    are provider fields for the stream's ``"text"`` or ``"thinking"`` block (e.g.
    ``{"text": {"signature": ...}}``), kept on that block of the assembled content.
    """

    text: str = ""
    raw: Any = None
    usage: Usage | None = None
    model_name: str | None = None
    finish_reason: str | None = None
    thinking: str = ""
    tool_calls: list[ToolUseBlock] | None = None
    parsed: Any = None
    block_fields: dict[str, dict[str, Any]] | None = None
