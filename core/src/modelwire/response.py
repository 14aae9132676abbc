"""What a wrapper returns: ``ModelResponse``, ``ModelChunk`` and ``Usage``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelChunk", "ModelResponse", "Usage"]


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, as the service reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Usage:
        """Build from possibly-missing counts, deriving the total."""
        prompt = int(prompt_tokens or 0)
        completion = int(completion_tokens or 0)
        return cls(prompt, completion, prompt + completion)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class ModelResponse:
    """The result of one call; which fields are set depends on the model type."""

    text: str | None = None
    embedding: list[list[float]] | None = None
    image_urls: list[str] | None = None
    raw: Any = None
    usage: Usage | None = None
    model_name: str | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = []
        if self.text is not None:
            text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
            shown.append(f"text={text!r}")
        if self.embedding is not None:
            dims = len(self.embedding[0]) if self.embedding else 0
            shown.append(f"embedding=<{len(self.embedding)} x {dims}>")
        if self.image_urls is not None:
            shown.append(f"image_urls={self.image_urls!r}")
        if self.usage is not None:
            shown.append(f"usage={self.usage.total_tokens} tokens")
        if self.model_name:
            shown.append(f"model_name={self.model_name!r}")
        return f"ModelResponse({', '.join(shown)})"


@dataclass
class ModelChunk:
    """One piece of a streamed reply; the last chunk carries ``usage`` when reported."""

    text: str = ""
    raw: Any = None
    usage: Usage | None = None
    model_name: str | None = None
    finish_reason: str | None = None
