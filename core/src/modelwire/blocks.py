"""Content blocks: what a ``Msg``'s content and a ``ModelResponse``'s ``content`` hold.

A ``Msg``'s content is a string or a list of blocks (plain dicts, typed here).
Tool calling lives in ``modelwire.tools`` and structured output in
``modelwire.structured``; ``collect`` / ``acollect`` turn a stream into the response
of a plain call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from modelwire.response import content_of, merge_block_fields

if TYPE_CHECKING:
    from modelwire.response import ModelChunk, ModelResponse

__all__ = [
    "Base64Source",
    "ContentBlock",
    "ImageBlock",
    "ImageSource",
    "TextBlock",
    "ThinkingBlock",
    "ToolResultBlock",
    "ToolUseBlock",
    "URLSource",
    "acollect",
    "collect",
    "content_of",
    "tool_result",
]


# -- the blocks --------------------------------------------------------------------------
class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


class URLSource(TypedDict):
    type: Literal["url"]
    url: str


class Base64Source(TypedDict):
    type: Literal["base64"]
    media_type: str
    data: str


ImageSource = URLSource | Base64Source


class ImageBlock(TypedDict):
    """An image; a ``url`` may also be a local path or ``file://`` URL (read and inlined)."""

    type: Literal["image"]
    source: ImageSource


class ToolUseBlock(TypedDict):
    """A tool call the model made (in an assistant message); ``input`` is always a dict."""

    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(TypedDict):
    """What a tool returned, answering the ``tool_use`` block of the same ``id``."""

    type: Literal["tool_result"]
    id: str
    name: str
    output: str | list[ContentBlock]


class ThinkingBlock(TypedDict):
    """The model's reasoning. Provider fields needed to send it back (a signature, say)
    are kept in the block under their own keys."""

    type: Literal["thinking"]
    thinking: str
    signature: NotRequired[str]


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock


def tool_result(call: Mapping[str, Any], output: Any) -> ToolResultBlock:
    """The ``tool_result`` block answering ``call`` (a ``tool_use`` block); non-text
    output is sent as JSON."""
    if not isinstance(output, (str, list)):
        output = json.dumps(output, ensure_ascii=False, default=str)
    return {"type": "tool_result", "id": call["id"], "name": call["name"], "output": output}


# -- streams -----------------------------------------------------------------------------
def collect(chunks: Iterable[ModelChunk]) -> ModelResponse:
    """The ``ModelResponse`` a plain call would have given, from a stream's chunks.

    ``raw`` is the list of the chunks' ``raw``; ``parsed`` is the last chunk's.
    """
    merged = _Collected()
    for chunk in chunks:
        merged.add(chunk)
    return merged.response()


async def acollect(chunks: AsyncIterable[ModelChunk]) -> ModelResponse:
    """``collect`` for ``astream``."""
    merged = _Collected()
    async for chunk in chunks:
        merged.add(chunk)
    return merged.response()


class _Collected:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.raw: list[Any] = []
        self.last: ModelChunk | None = None
        self.usage: Any = None
        self.model_name: str | None = None
        self.finish_reason: str | None = None
        self.tool_calls: list[ToolUseBlock] | None = None
        self.parsed: Any = None
        self.block_fields: dict[str, dict[str, Any]] = {}

    def add(self, chunk: ModelChunk) -> None:
        if chunk.text:
            self.text.append(chunk.text)
        if chunk.thinking:
            self.thinking.append(chunk.thinking)
        if chunk.block_fields:
            merge_block_fields(self.block_fields, chunk.block_fields)
        self.raw.append(chunk.raw)
        self.usage = chunk.usage or self.usage
        self.model_name = chunk.model_name or self.model_name
        self.finish_reason = chunk.finish_reason or self.finish_reason
        if chunk.tool_calls is not None:
            self.tool_calls = chunk.tool_calls
        if chunk.parsed is not None:
            self.parsed = chunk.parsed

    def response(self) -> ModelResponse:
        from modelwire.response import ModelResponse

        text = "".join(self.text)
        thinking = "".join(self.thinking) or None
        content = None
        if self.block_fields:
            content = content_of(text, self.tool_calls, thinking, self.block_fields)
        return ModelResponse(
            text=text,
            raw=self.raw,
            usage=self.usage,
            model_name=self.model_name,
            finish_reason=self.finish_reason,
            tool_calls=self.tool_calls,
            thinking=thinking,
            parsed=self.parsed,
            content=content,
        )
