"""What a wrapper returns: ``ModelResponse``, ``ModelChunk`` and ``Usage``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelwire.structs import FrozenStruct, Struct

__all__ = ["LazyRaw", "ModelChunk", "ModelResponse", "Usage"]


class LazyRaw:
    """A ``raw`` payload built on first read: pass ``raw=LazyRaw(lambda: ...)``.

    Dumping an SDK's reply model into a dict costs 10-40 µs of client CPU per call,
    a sizeable part of a wrapper's overhead over the raw SDK, and most callers never
    read ``raw``. The response keeps the SDK object until then; reading ``raw`` (or
    comparing, copying or pickling the response) builds the dict once.
    """

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build

    def __repr__(self) -> str:
        return "LazyRaw(<not built yet>)"


class _WithRaw(Struct):
    """``raw`` as a property over the ``_raw`` slot, resolving a ``LazyRaw`` on first read.

    Subclasses list ``raw`` in ``_public``: equality, ``repr`` and pickling use the
    property (so ``raw`` is built), never the private slot.
    """

    __slots__ = ()

    @property
    def raw(self) -> Any:
        value = self._raw  # type: ignore[attr-defined]
        if type(value) is LazyRaw:
            value = self._raw = value.build()
        return value

    @raw.setter
    def raw(self, value: Any) -> None:
        self._raw = value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), self._fields())


class Usage(FrozenStruct):
    """Token counts of one call, as the service reported them (immutable)."""

    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def __init__(
        self, prompt_tokens: int = 0, completion_tokens: int = 0, total_tokens: int = 0
    ) -> None:
        setter = object.__setattr__  # not _set: a Usage is made on every call
        setter(self, "prompt_tokens", prompt_tokens)
        setter(self, "completion_tokens", completion_tokens)
        setter(self, "total_tokens", total_tokens)

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


class ModelResponse(_WithRaw):
    """The result of one call; which fields are set depends on the model type."""

    __slots__ = (
        "text",
        "embedding",
        "image_urls",
        "_raw",
        "usage",
        "model_name",
        "finish_reason",
        "extra",
    )
    _public = (
        "text",
        "embedding",
        "image_urls",
        "raw",
        "usage",
        "model_name",
        "finish_reason",
        "extra",
    )

    def __init__(
        self,
        text: str | None = None,
        embedding: list[list[float]] | None = None,
        image_urls: list[str] | None = None,
        raw: Any = None,
        usage: Usage | None = None,
        model_name: str | None = None,
        finish_reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.text = text
        self.embedding = embedding
        self.image_urls = image_urls
        self._raw = raw
        self.usage = usage
        self.model_name = model_name
        self.finish_reason = finish_reason
        self.extra: dict[str, Any] = {} if extra is None else extra

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


class ModelChunk(_WithRaw):
    """One piece of a streamed reply; the last chunk carries ``usage`` when reported."""

    __slots__ = ("text", "_raw", "usage", "model_name", "finish_reason")
    _public = ("text", "raw", "usage", "model_name", "finish_reason")

    def __init__(
        self,
        text: str = "",
        raw: Any = None,
        usage: Usage | None = None,
        model_name: str | None = None,
        finish_reason: str | None = None,
    ) -> None:
        self.text = text
        self._raw = raw
        self.usage = usage
        self.model_name = model_name
        self.finish_reason = finish_reason
