"""Finding the answer in whatever JSON a service replies: paths, recognised shapes, usage.

In-house services answer in their own shapes. A dotted path in the config says where
the answer is; without one, the shapes that the seed's Flask script, the serving
distribution, OpenAI-compatible servers (vLLM, FastChat), Hugging Face's Inference
API / TGI and Ollama reply with are recognised, and anything else fails with the
reply's keys and the path to set, never with a silent empty answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

from modelwire.errors import ProviderError, ResponseParseError
from modelwire.response import ModelChunk, Usage
from modelwire.structs import FrozenStruct, Struct
from modelwire_postapi.errors import error_in
from modelwire_postapi.streaming import Event

__all__ = [
    "Answer",
    "Path",
    "ReplyParser",
    "StreamParser",
    "describe",
    "usage_in",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: What resolving a path gives when the reply has nothing there.
MISSING: Final = _Missing()

#: ``[0]``/``[*]`` steps; compiled by ``re`` on the first path that has one.
_BRACKET = r"\[\s*(-?\d+|\*)\s*\]\.?"


class Path(FrozenStruct):
    """A dotted path into JSON: keys, list indices (``0``, ``-1``) and ``*`` for every item.

    ``data.response.choices.0.message.content`` and ``choices[0].message.content`` are
    the same path; ``data.*.embedding`` collects ``embedding`` from every item of ``data``.
    """

    __slots__ = ("text", "parts")
    text: str
    parts: tuple[str, ...]

    def __init__(self, text: str, parts: tuple[str, ...]) -> None:
        self._set(text, parts)

    @classmethod
    def parse(cls, text: str) -> Path:
        stripped = text.strip()
        normalized = stripped
        if "[" in stripped:
            normalized = re.sub(_BRACKET, lambda match: f".{match.group(1)}.", stripped)
        if stripped.startswith("["):
            normalized = normalized.removeprefix(".")
        if stripped.endswith("]"):
            normalized = normalized.removesuffix(".")
        parts = tuple(normalized.split("."))
        if not normalized or any(not part or "[" in part or "]" in part for part in parts):
            raise ValueError(
                f"{text!r} is not a dotted path: write keys and list indices separated by dots,"
                " e.g. 'data.response.choices.0.message.content'"
            )
        return cls(text, parts)

    @classmethod
    def optional(cls, text: str | None) -> Path | None:
        return None if text is None else cls.parse(text)

    def resolve(self, payload: Any) -> Any:
        """The value at this path, or ``MISSING``."""
        return _resolve(payload, self.parts)

    def explain(self, payload: Any) -> str:
        """Where resolving stops, for error messages."""
        value: Any = payload
        walked: list[str] = []
        for index, part in enumerate(self.parts):
            where = f"'{'.'.join(walked)}'" if walked else "the reply"
            if part == "*":
                rest = ".".join(self.parts[index + 1 :])
                if not isinstance(value, list):
                    return f"{where} is {describe(value)}, not a list"
                return f"{where} is {describe(value)}, and not every item has '{rest}'"
            found = _step(value, part)
            if found is MISSING:
                return f"{where} is {describe(value)}, with no {part!r}"
            value = found
            walked.append(part)
        return f"it holds {describe(value)}"

    def __str__(self) -> str:
        return self.text


def _step(value: Any, part: str) -> Any:
    if isinstance(value, dict):
        return value.get(part, MISSING)
    if isinstance(value, list):
        try:
            return value[int(part)]
        except (ValueError, IndexError):
            return MISSING
    return MISSING


def _resolve(value: Any, parts: tuple[str, ...]) -> Any:
    for index, part in enumerate(parts):
        if type(value) is dict and part != "*":  # the common step, without a call per step
            value = value.get(part, MISSING)
        elif part == "*":
            if not isinstance(value, list):
                return MISSING
            items = [_resolve(item, parts[index + 1 :]) for item in value]
            return MISSING if any(item is MISSING for item in items) else items
        else:
            value = _step(value, part)
        if value is MISSING:
            return MISSING
    return value


def describe(value: Any) -> str:
    """A short description of a JSON value: its type and, for objects, their keys."""
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(repr(str(key)) for key in keys[:12])
        more = f", ... ({len(keys)} keys)" if len(keys) > 12 else ""
        return f"an object with keys [{shown}{more}]" if keys else "an empty object"
    if isinstance(value, list):
        if not value:
            return "an empty list"
        return f"a list of {len(value)} item(s), the first {describe(value[0])}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


# -- the shapes recognised without a path --------------------------------------------------
#: Where services put the generated text, most specific first.
TEXT_SHAPES: Final = tuple(
    Path.parse(text)
    for text in (
        "response",  # the seed's Flask script, the serving distribution, Ollama /api/generate
        "data.response.choices.0.message.content",  # the seed's post_api_chat shape
        "choices.0.message.content",  # OpenAI chat completions (vLLM, FastChat)
        "choices.0.text",  # OpenAI completions
        "0.generated_text",  # Hugging Face Inference API
        "generated_text",  # TGI /generate
        "message.content",  # Ollama /api/chat
        "output.text",  # DashScope
        "text",
        "output",
    )
)
#: Where a streamed event carries its piece of text; then whole-reply shapes, for services
#: that answer a stream request with one JSON document.
DELTA_SHAPES: Final = tuple(
    Path.parse(text)
    for text in (
        "choices.0.delta.content",  # OpenAI chat chunks
        "choices.0.text",  # OpenAI completion chunks
        "token.text",  # Hugging Face TGI
        "message.content",  # Ollama /api/chat
        "delta",
        "response",  # Ollama /api/generate, seed-style services
        "text",
        "output",
        "choices.0.message.content",
        "data.response.choices.0.message.content",
        "0.generated_text",
        "generated_text",
        "output.text",
    )
)
EMBEDDING_SHAPES: Final = tuple(
    Path.parse(text)
    for text in ("data.*.embedding", "embeddings", "embedding", "output.embeddings.*.embedding")
)
IMAGE_SHAPES: Final = tuple(
    Path.parse(text) for text in ("data.*.url", "image_urls", "images", "output.results.*.url")
)
USAGE_PLACES: Final = tuple(Path.parse(text) for text in ("usage", "data.response.usage"))
#: (prompt, completion) count names: OpenAI, Anthropic-style, the seed's Flask script, Ollama.
USAGE_NAMES: Final = (
    ("prompt_tokens", "completion_tokens"),
    ("input_tokens", "output_tokens"),
    ("n_token_prompt", "n_token_response"),
    ("prompt_eval_count", "eval_count"),
)
FINISH_SHAPES: Final = tuple(
    Path.parse(text)
    for text in (
        "choices.0.finish_reason",
        "data.response.choices.0.finish_reason",
        "finish_reason",
        "done_reason",
        "details.finish_reason",
        "0.details.finish_reason",
    )
)
MODEL_SHAPES: Final = tuple(Path.parse(text) for text in ("model", "data.response.model"))


def _first_keys(shapes: tuple[Path, ...]) -> frozenset[str]:
    return frozenset(shape.parts[0] for shape in shapes)


# An object can match a shape only if it has the shape's first key (see ``_first``), and
# hold token counts at its top level only if it has one of their names: one set test in
# C tells.
_EMBEDDING_KEYS: Final = _first_keys(EMBEDDING_SHAPES)
_IMAGE_KEYS: Final = _first_keys(IMAGE_SHAPES)
_USAGE_KEYS: Final = _first_keys(USAGE_PLACES)
_COUNT_KEYS: Final = frozenset(name for names in USAGE_NAMES for name in names)
_FINISH_KEYS: Final = _first_keys(FINISH_SHAPES)
_MODEL_KEYS: Final = _first_keys(MODEL_SHAPES)


def _first(shapes: tuple[Path, ...], payload: Any, kind: type | tuple[type, ...]) -> Any:
    """The first shape's value of the given kind, or ``None``.

    For an object, only the shapes whose first key it has can match (exact, and it
    spares resolving a dozen shapes per reply), and a one-step shape is one lookup.
    Written as one loop without helper calls: it runs on every reply, and between two
    real HTTP calls each Python call here costs several times its warm price
    (benchmarks/README.md).
    """
    if type(payload) is dict:
        for shape in shapes:
            parts = shape.parts
            if parts[0] in payload:
                value = payload[parts[0]] if len(parts) == 1 else _resolve(payload, parts)
                if isinstance(value, kind):
                    return value
        return None
    for shape in shapes:
        value = _resolve(payload, shape.parts)
        if isinstance(value, kind):
            return value
    return None


def _scan(shapes: tuple[Path, ...], payload: Any, convert: Callable[[Any], Any]) -> Any:
    """The first shape's value that ``convert`` turns into something (not ``None``).

    For an object, only the shapes whose first key it has can match.
    """
    is_object = type(payload) is dict
    for shape in shapes:
        parts = shape.parts
        if not is_object:
            value = _resolve(payload, parts)
        elif parts[0] not in payload:
            continue
        else:  # a one-step shape is one lookup, as in _first
            value = payload[parts[0]] if len(parts) == 1 else _resolve(payload, parts)
        found = convert(value)
        if found is not None:
            return found
    return None


def _some_urls(value: Any) -> list[str] | None:
    """URLs at a recognised shape: a non-empty list, else no match."""
    return _urls(value, strict=True) or None


def _count(value: Any) -> int | None:
    if type(value) is int:  # the usual case, decided in one check
        return value if value >= 0 else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value) if float(value).is_integer() else None


def usage_in(value: Any) -> Usage | None:
    """Token counts of an object that names them in one of the usual ways."""
    if not isinstance(value, dict):
        return None
    for prompt_key, completion_key in USAGE_NAMES:
        prompt, completion = _count(value.get(prompt_key)), _count(value.get(completion_key))
        if prompt is not None or completion is not None:
            return Usage.of(prompt, completion)
    return None


def _vectors(value: Any) -> list[list[float]] | None:
    """One vector or a list of vectors, as a list of float vectors; ``None`` if not numbers."""
    if not isinstance(value, list):
        return None
    if _numbers(value):
        return [list(map(float, value))]
    if all(map(_numbers, value)):
        return [list(map(float, item)) for item in value]
    return None


#: What JSON numbers decode to (``bool`` is left out: ``true`` is not a number here).
_NUMBER_TYPES = frozenset({int, float})


def _numbers(item: Any) -> bool:
    """A non-empty list of numbers; the check runs in C (a 1,536-float vector in ~10 µs)."""
    return isinstance(item, list) and bool(item) and set(map(type, item)) <= _NUMBER_TYPES


def _urls(value: Any, *, strict: bool) -> list[str] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    if strict and not all("://" in item or item.startswith("data:") for item in items):
        return None
    return list(items)


def _longest_string(payload: Any) -> str | None:
    """The path of the longest string in the reply: most likely the text, to suggest."""
    best: tuple[int, str] | None = None
    stack: list[tuple[Any, tuple[str, ...]]] = [(payload, ())]
    visited = 0
    while stack and visited < 5000:
        value, where = stack.pop()
        visited += 1
        if isinstance(value, str) and where and (best is None or len(value) > best[0]):
            best = (len(value), ".".join(where))
        elif isinstance(value, dict):
            stack += [(v, (*where, str(k))) for k, v in value.items() if "." not in str(k)]
        elif isinstance(value, list):
            stack += [(v, (*where, str(i))) for i, v in enumerate(value[:50])]
    return best[1] if best else None


def _dump(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, default=repr)


class Answer(Struct):
    """What a reply holds, in modelwire's terms."""

    __slots__ = ("text", "embedding", "image_urls", "usage", "finish_reason", "model_name")

    def __init__(
        self,
        text: str | None = None,
        embedding: list[list[float]] | None = None,
        image_urls: list[str] | None = None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        model_name: str | None = None,
    ) -> None:
        self.text = text
        self.embedding = embedding
        self.image_urls = image_urls
        self.usage = usage
        self.finish_reason = finish_reason
        self.model_name = model_name


class ReplyParser:
    """Reads replies for one config: its paths, or the recognised shapes."""

    def __init__(
        self,
        *,
        response_path: str | None = None,
        usage_path: str | None = None,
        stream_path: str | None = None,
        embedding_path: str | None = None,
        image_urls_path: str | None = None,
        outputs: frozenset[str] = frozenset({"text"}),
    ) -> None:
        self.response_path = Path.optional(response_path)
        self.usage_path = Path.optional(usage_path)
        self.stream_path = Path.optional(stream_path)
        self.embedding_path = Path.optional(embedding_path)
        self.image_urls_path = Path.optional(image_urls_path)
        self.outputs = outputs
        self._by_shape_only = (
            self.response_path is None
            and self.usage_path is None
            and self.embedding_path is None
            and self.image_urls_path is None
        )

    def parse(self, payload: Any) -> Answer:
        """The answer in a whole reply; ``ResponseParseError`` when there is none."""
        if self._by_shape_only and type(payload) is dict:
            return self._parse_object(payload)
        text = self._text(payload)
        embedding = self._embedding(payload) if "embedding" in self.outputs else None
        image_urls = self._image_urls(payload) if "image_urls" in self.outputs else None
        if text is None and embedding is None and image_urls is None:
            raise self._unrecognised(payload)
        return Answer(
            text=text,
            embedding=embedding,
            image_urls=image_urls,
            usage=self.usage(payload, strict=True),
            finish_reason=_first(FINISH_SHAPES, payload, str),
            model_name=_first(MODEL_SHAPES, payload, str),
        )

    def _parse_object(self, payload: dict[str, Any]) -> Answer:
        """``parse`` of an object when no path is configured: the same lookups, written out.

        Every reply of the usual config takes this path, and between two HTTP calls each
        helper frame costs several times its warm price (benchmarks/README.md): an
        output whose shapes cannot match (none of their first keys is in the object)
        is skipped with one set test instead of a call.
        """
        keys = payload.keys()
        text = _first(TEXT_SHAPES, payload, str)
        embedding = image_urls = None
        if "embedding" in self.outputs and not keys.isdisjoint(_EMBEDDING_KEYS):
            embedding = _scan(EMBEDDING_SHAPES, payload, _vectors)
        if "image_urls" in self.outputs and not keys.isdisjoint(_IMAGE_KEYS):
            image_urls = _scan(IMAGE_SHAPES, payload, _some_urls)
        if text is None and embedding is None and image_urls is None:
            raise self._unrecognised(payload)
        usage = None
        if not keys.isdisjoint(_USAGE_KEYS):
            usage = _scan(USAGE_PLACES, payload, usage_in)
        if usage is None and not keys.isdisjoint(_COUNT_KEYS):
            usage = usage_in(payload)
        return Answer(
            text,
            embedding,
            image_urls,
            usage,
            None if keys.isdisjoint(_FINISH_KEYS) else _first(FINISH_SHAPES, payload, str),
            None if keys.isdisjoint(_MODEL_KEYS) else _first(MODEL_SHAPES, payload, str),
        )

    def stream(self) -> StreamParser:
        """A parser for the events of one stream."""
        return StreamParser(self)

    def usage(self, payload: Any, *, strict: bool) -> Usage | None:
        if self.usage_path is None:
            found = _scan(USAGE_PLACES, payload, usage_in)
            return found if found is not None else usage_in(payload)
        found = usage_in(self.usage_path.resolve(payload))
        if found is None and strict:
            raise ResponseParseError(
                f"`usage_path` {self.usage_path.text!r} does not lead to token counts:"
                f" {self.usage_path.explain(payload)}",
                body=_dump(payload),
            )
        return found

    # -- the three outputs -----------------------------------------------------------------
    def _text(self, payload: Any) -> str | None:
        if self.response_path is None:
            return _first(TEXT_SHAPES, payload, str)
        value = self._at(self.response_path, "response_path", payload)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ResponseParseError(
                f"`response_path` {self.response_path.text!r} leads to {describe(value)},"
                " not to text",
                body=_dump(payload),
            )
        return value

    def _embedding(self, payload: Any) -> list[list[float]] | None:
        if self.embedding_path is None:
            vectors = _scan(EMBEDDING_SHAPES, payload, _vectors)
            return vectors if vectors is not None else _vectors(payload)
        value = self._at(self.embedding_path, "embedding_path", payload)
        vectors = [] if value == [] else _vectors(value)
        if vectors is None:
            raise ResponseParseError(
                f"`embedding_path` {self.embedding_path.text!r} leads to {describe(value)},"
                " not to a vector or a list of vectors",
                body=_dump(payload),
            )
        return vectors

    def _image_urls(self, payload: Any) -> list[str] | None:
        if self.image_urls_path is None:
            return _scan(IMAGE_SHAPES, payload, _some_urls)
        value = self._at(self.image_urls_path, "image_urls_path", payload)
        urls = _urls(value, strict=False)
        if urls is None:
            raise ResponseParseError(
                f"`image_urls_path` {self.image_urls_path.text!r} leads to {describe(value)},"
                " not to a URL or a list of URLs",
                body=_dump(payload),
            )
        return urls

    @staticmethod
    def _at(path: Path, option: str, payload: Any) -> Any:
        value = path.resolve(payload)
        if value is MISSING:
            raise ResponseParseError(
                f"`{option}` {path.text!r} is not in the reply: {path.explain(payload)}",
                body=_dump(payload),
            )
        return value

    def _unrecognised(self, payload: Any) -> ProviderError:
        error = error_in(payload)
        if error:
            return ProviderError(
                f"the service answered with an error instead of a reply: {error}",
                body=_dump(payload),
            )
        wanted = "the generated text"
        options = '"response_path"'
        if self.outputs != {"text"}:
            wanted += ", embeddings or image URLs"
            options += ' (or "embedding_path" / "image_urls_path")'
        suggestion = _longest_string(payload)
        example = f'"response_path": "{suggestion or "result.text"}"'
        if suggestion:
            example += " (the longest string of the reply is there)"
        shapes = ", ".join(shape.text for shape in TEXT_SHAPES)
        return ResponseParseError(
            f"cannot find {wanted} in the reply, which is {describe(payload)}."
            f" Set {options} in the config to where it is: a dotted path, list indices"
            f" allowed, e.g. {example}. Recognised without a path: {shapes}",
            body=_dump(payload),
        )


class StreamParser:
    """Turns the events of one stream into chunks; ``close()`` checks the stream made sense."""

    def __init__(self, replies: ReplyParser) -> None:
        self._replies = replies
        self._path = replies.stream_path
        self._recognised = False
        self._first: Any = MISSING
        self._usage: Usage | None = None
        self._usage_sent = False
        self._finish_reason: str | None = None

    def chunk(self, event: Event) -> ModelChunk | None:
        """The chunk of one event, or ``None`` when it carries nothing (e.g. a role delta)."""
        data = event.data
        if self._first is MISSING:
            self._first = data
        if event.name == "error":
            raise ProviderError(
                f"the service reported an error mid-stream: {error_in(data) or _dump(data)}"
            )
        text = self._delta(data)
        if text is None:
            error = error_in(data)
            if error:
                raise ProviderError(f"the service reported an error mid-stream: {error}")
        else:
            self._recognised = True
        usage = self._replies.usage(data, strict=False)
        finish_reason = _first(FINISH_SHAPES, data, str)
        if not text and usage is None and finish_reason is None:
            return None
        self._usage = usage or self._usage
        self._usage_sent = usage is not None
        self._finish_reason = finish_reason or self._finish_reason
        return ModelChunk(
            text=text or "",
            raw=data,
            usage=usage,
            model_name=_first(MODEL_SHAPES, data, str),
            finish_reason=finish_reason,
        )

    def close(self) -> list[ModelChunk]:
        """Chunks still owed at the end (the usage, when the last chunk lacked it)."""
        if not self._recognised:
            if self._first is MISSING:
                raise ResponseParseError("the stream ended without sending any event")
            suggestion = _longest_string(self._first) or "token.text"
            raise ResponseParseError(
                "cannot find the text in the stream's events; the first is"
                f' {describe(self._first)}. Set "stream_path" in the config to where each'
                f' event carries its piece of text, e.g. "stream_path": "{suggestion}"',
                body=_dump(self._first),
            )
        if self._usage is not None and not self._usage_sent:
            self._usage_sent = True
            return [ModelChunk(usage=self._usage, finish_reason=self._finish_reason)]
        return []

    def _delta(self, data: Any) -> str | None:
        if isinstance(data, str):
            return data
        if self._path is not None:
            value = self._path.resolve(data)
            if value is None:
                return ""
            return value if isinstance(value, str) else None
        token = data.get("token") if isinstance(data, dict) else None
        if isinstance(token, dict) and token.get("special") is True:
            return ""  # TGI's special tokens (</s>) are not text
        return _first(DELTA_SHAPES, data, str)
