"""Finding the answer in whatever JSON a service replies: paths, recognised shapes, usage.

In-house services answer in their own shapes. A dotted path in the config says where
the answer is; without one, the shapes that the seed's Flask script, the serving
distribution, OpenAI-compatible servers (vLLM, FastChat), Hugging Face's Inference
API / TGI and Ollama reply with are recognised, and anything else fails with the
reply's keys and the path to set, never with a silent empty answer.

For ``post_api_chat`` the parser also reads what OpenAI-shaped replies carry beside
the text: tool calls (``choices[0].message.tool_calls``, streamed as
``choices[0].delta.tool_calls`` fragments), reasoning (``reasoning_content``) and a
refusal. Those are read only at OpenAI's places, whatever ``response_path`` says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from modelwire import (
    ModelChunk,
    ProviderError,
    ResponseParseError,
    Usage,
    reasoning_text,
    tool_use_blocks,
)
from modelwire_postapi.errors import error_in
from modelwire_postapi.streaming import Event

__all__ = [
    "Answer",
    "Path",
    "ReplyParser",
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


class Path(NamedTuple):
    """A dotted path into JSON: keys, list indices (``0``, ``-1``) and ``*`` for every item.

    ``data.response.choices.0.message.content`` and ``choices[0].message.content`` are
    the same path; ``data.*.embedding`` collects ``embedding`` from every item of ``data``.
    """

    text: str
    parts: tuple[str, ...]

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
        if part == "*":
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
class Shapes(NamedTuple):
    """Paths tried in order, and the keys they start with: a reply object that has none
    of those keys cannot match any of them."""

    paths: tuple[Path, ...]
    first_keys: frozenset[str]


def _shapes(*texts: str) -> Shapes:
    paths = tuple(Path.parse(text) for text in texts)
    return Shapes(paths, frozenset(path.parts[0] for path in paths))


#: Where services put the generated text, most specific first.
TEXT_SHAPES: Final = _shapes(
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
#: Where a streamed event carries its piece of text; then whole-reply shapes, for services
#: that answer a stream request with one JSON document.
DELTA_SHAPES: Final = _shapes(
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
EMBEDDING_SHAPES: Final = _shapes(
    "data.*.embedding", "embeddings", "embedding", "output.embeddings.*.embedding"
)
IMAGE_SHAPES: Final = _shapes("data.*.url", "image_urls", "images", "output.results.*.url")
USAGE_PLACES: Final = _shapes("usage", "data.response.usage")
#: (prompt, completion) count names: OpenAI, Anthropic-style, the seed's Flask script, Ollama.
USAGE_NAMES: Final = (
    ("prompt_tokens", "completion_tokens"),
    ("input_tokens", "output_tokens"),
    ("n_token_prompt", "n_token_response"),
    ("prompt_eval_count", "eval_count"),
)
FINISH_SHAPES: Final = _shapes(
    "choices.0.finish_reason",
    "data.response.choices.0.finish_reason",
    "finish_reason",
    "done_reason",
    "details.finish_reason",
    "0.details.finish_reason",
)
#: Keys of stream events whose protocol ends with a marker (OpenAI, TGI, Ollama, the
#: serving distribution): such a stream is complete only once the marker arrives.
_MARKED_KEYS: Final = frozenset({"choices", "token", "done", "response", "message"})
MODEL_SHAPES: Final = _shapes("model", "data.response.model")
#: Where an OpenAI-shaped reply keeps its message: OpenAI-compatible servers, and the
#: completion the seed's shape (and the serving distribution's ``/llm/``) nests.
MESSAGE_SHAPES: Final = _shapes("choices.0.message", "data.response.choices.0.message")
#: What ``ReplyParser`` hands streamed tool-call fragments to (``Stream.tool_call_delta``).
ToolCallSink = Callable[..., None]


def _scan(shapes: Shapes, payload: Any, convert: Callable[[Any], Any]) -> Any:
    """The first shape's value that ``convert`` turns into something (not ``None``)."""
    keys = payload if isinstance(payload, dict) else None
    if keys is not None and shapes.first_keys.isdisjoint(keys):
        return None
    for shape in shapes.paths:
        if keys is not None and shape.parts[0] not in keys:
            continue  # the reply has no such key: the shape cannot match
        value = _resolve(payload, shape.parts)
        if value is not MISSING:
            found = convert(value)
            if found is not None:
                return found
    return None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _some_urls(value: Any) -> list[str] | None:
    """URLs at a recognised shape: a non-empty list, else no match."""
    return _urls(value, strict=True) or None


def _count(value: Any) -> int | None:
    """A token count: a whole number, not negative (``true`` is no count)."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value >= 0 and value.is_integer():
        return int(value)
    return None


#: Where OpenAI (and vLLM) detail the counts: reasoning tokens (part of the completion)
#: and prompt tokens served from a cache.
USAGE_DETAILS: Final = (
    ("completion_tokens_details", "reasoning_tokens"),
    ("prompt_tokens_details", "cached_tokens"),
)


def usage_in(value: Any) -> Usage | None:
    """Token counts of an object that names them in one of the usual ways, with the
    reasoning and cached tokens where it details them in OpenAI's way."""
    if not isinstance(value, dict):
        return None
    for prompt_key, completion_key in USAGE_NAMES:
        prompt, completion = _count(value.get(prompt_key)), _count(value.get(completion_key))
        if prompt is not None or completion is not None:
            details = {}
            for key, name in USAGE_DETAILS:
                part = value.get(key)
                count = _count(part.get(name)) if isinstance(part, dict) else None
                if count is not None:
                    details[name] = count
            return Usage.of(prompt, completion, **details)
    return None


def _vectors(value: Any) -> list[list[float]] | None:
    """One vector or a non-empty list of vectors, as float vectors; else ``None``.

    An empty list is no answer: a service that embedded nothing has failed.
    """
    if not isinstance(value, list) or not value:
        return None
    if _numbers(value):
        return [list(map(float, value))]
    if all(map(_numbers, value)):
        return [list(map(float, item)) for item in value]
    return None


#: What JSON numbers decode to (``bool`` is left out: ``true`` is not a number here).
_NUMBER_TYPES = frozenset({int, float})


def _numbers(item: Any) -> bool:
    """A non-empty list of numbers."""
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


@dataclass(slots=True)
class Answer:
    """What a reply holds, in modelwire's terms."""

    text: str | None = None
    embedding: list[list[float]] | None = None
    image_urls: list[str] | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    model_name: str | None = None
    #: The OpenAI message's calls as ``tool_use`` blocks, and as the service sent them.
    tool_calls: list[dict[str, Any]] | None = None
    raw_tool_calls: list[Any] | None = None
    thinking: str | None = None
    refusal: str | None = None


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

    def parse(self, payload: Any) -> Answer:
        """The answer in a whole reply; ``ResponseParseError`` when there is none."""
        text = self._text(payload)
        embedding = self._embedding(payload) if "embedding" in self.outputs else None
        image_urls = self._image_urls(payload) if "image_urls" in self.outputs else None
        answer = Answer()
        if "tool_calls" in self.outputs:
            message = _scan(MESSAGE_SHAPES, payload, _mapping)
            if message is not None:
                _read_message(message, answer)
                if text is None and (answer.tool_calls or answer.thinking or answer.refusal):
                    text = ""  # a reply of tool calls only has ``content: null``
        if text is None and embedding is None and image_urls is None:
            raise self._unrecognised(payload)
        answer.text = text
        answer.embedding = embedding
        answer.image_urls = image_urls
        answer.usage = self.usage(payload, strict=True)
        answer.finish_reason = _scan(FINISH_SHAPES, payload, _string)
        answer.model_name = _scan(MODEL_SHAPES, payload, _string)
        return answer

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
            return _scan(TEXT_SHAPES, payload, _string)
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
        vectors = _vectors(value)
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
        if not urls:  # an empty list is no answer, as for embeddings
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
        if "embedding" in self.outputs or "image_urls" in self.outputs:
            wanted += ", embeddings or image URLs"
            options += ' (or "embedding_path" / "image_urls_path")'
        suggestion = _longest_string(payload)
        example = f'"response_path": "{suggestion or "result.text"}"'
        if suggestion:
            example += " (the longest string of the reply is there)"
        shapes = ", ".join(shape.text for shape in TEXT_SHAPES.paths)
        return ResponseParseError(
            f"cannot find {wanted} in the reply, which is {describe(payload)}."
            f" Set {options} in the config to where it is: a dotted path, list indices"
            f" allowed, e.g. {example}. Recognised without a path: {shapes}",
            body=_dump(payload),
        )

    # -- streams -----------------------------------------------------------------------------
    def chunk(
        self, event: Event, state: dict[str, Any], tool_calls: ToolCallSink | None = None
    ) -> ModelChunk | None:
        """The chunk of one event of a stream, or ``None`` when it carries nothing (a role
        delta, say); ``state`` is the stream's own scratch dict. Tool-call fragments go
        to ``tool_calls`` (``Stream.tool_call_delta``), for the stream to assemble."""
        data = event.data
        state.setdefault("first", data)
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
            state["recognised"] = True
        thinking = ""
        if tool_calls is not None and "tool_calls" in self.outputs and isinstance(data, dict):
            thinking, fragments = _read_delta(data, tool_calls)
            if thinking or fragments:  # an answer without text is still an answer
                state["recognised"] = True
        usage = self.usage(data, strict=False)
        finish_reason = _scan(FINISH_SHAPES, data, _string)
        if isinstance(data, dict):
            if data.get("done") is True:  # Ollama's and /llm/-style streams' end marker
                finish_reason = finish_reason or "stop"
            if self.stream_path is None and not _MARKED_KEYS.isdisjoint(data):
                state["marked"] = True
        if not text and not thinking and usage is None and finish_reason is None:
            return None
        state["usage"] = usage or state.get("usage")
        state["usage_sent"] = usage is not None
        state["finish_reason"] = finish_reason or state.get("finish_reason")
        return ModelChunk(
            text=text or "",
            raw=data,
            usage=usage,
            model_name=_scan(MODEL_SHAPES, data, _string),
            finish_reason=finish_reason,
            thinking=thinking,
        )

    def end(self, state: dict[str, Any]) -> ModelChunk | None:
        """The last chunk, once the body ended cleanly (``state["done"]`` when ``[DONE]``
        came). An error if the events follow a protocol with an end marker that never
        came; else the usage and a finish reason ("stop" when the service sent none),
        or ``None`` when the last event carried both."""
        if not state.get("recognised"):
            first = state.get("first", MISSING)
            if first is MISSING:
                raise ResponseParseError("the stream ended without sending any event")
            suggestion = _longest_string(first) or "token.text"
            raise ResponseParseError(
                "cannot find the text in the stream's events; the first is"
                f' {describe(first)}. Set "stream_path" in the config to where each'
                f' event carries its piece of text, e.g. "stream_path": "{suggestion}"',
                body=_dump(first),
            )
        if state.get("marked") and not state.get("finish_reason") and not state.get("done"):
            raise ResponseParseError(
                "the stream ended before the service said it was complete (its events"
                " follow a protocol with an end marker: [DONE], a finish reason or done: true)"
            )
        usage = state.get("usage")
        owed_usage = usage is not None and not state.get("usage_sent")
        if state.get("finish_reason") and not owed_usage:
            return None
        state["usage_sent"] = True
        return ModelChunk(usage=usage, finish_reason=state.get("finish_reason") or "stop")

    def _delta(self, data: Any) -> str | None:
        if isinstance(data, str):
            return data
        if self.stream_path is not None:
            value = self.stream_path.resolve(data)
            if value is None:
                return ""
            return value if isinstance(value, str) else None
        token = data.get("token") if isinstance(data, dict) else None
        if isinstance(token, dict) and token.get("special") is True:
            return ""  # TGI's special tokens (</s>) are not text
        return _scan(DELTA_SHAPES, data, _string)


# -- what OpenAI-shaped replies carry beside the text ----------------------------------------
def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _read_message(message: Mapping[str, Any], answer: Answer) -> None:
    """Tool calls, reasoning and a refusal of an OpenAI ``message`` into ``answer``."""
    calls = message.get("tool_calls")
    if calls:
        answer.tool_calls = tool_use_blocks(calls)
        answer.raw_tool_calls = calls
    answer.thinking = reasoning_text(message)
    refusal = message.get("refusal")
    answer.refusal = refusal if isinstance(refusal, str) and refusal else None


def _read_delta(data: dict[str, Any], sink: ToolCallSink) -> tuple[str, bool]:
    """The reasoning piece of one OpenAI chunk (``""`` for none), and whether it had
    tool-call fragments, which are handed to ``sink``.

    A service that answers a stream request with one whole completion has a
    ``message`` where chunks have a ``delta``: its calls are fed as whole fragments.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return "", False
    choice = choices[0]
    part, whole = choice.get("delta"), False
    if not isinstance(part, Mapping):
        part, whole = choice.get("message"), True
        if not isinstance(part, Mapping):
            return "", False
    fragments = part.get("tool_calls")
    if fragments:
        if not isinstance(fragments, list):
            raise ResponseParseError(
                f"a streamed tool_calls is {describe(fragments)}, not a list", body=_dump(data)
            )
        for position, fragment in enumerate(fragments):
            _add_fragment(fragment, position if whole else None, sink, data)
    return reasoning_text(part) or "", bool(fragments)


def _add_fragment(fragment: Any, position: int | None, sink: ToolCallSink, data: Any) -> None:
    """One fragment to the sink, by its ``index`` (a whole message's calls by position)."""
    function = (fragment.get("function") or {}) if isinstance(fragment, Mapping) else None
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(arguments, (str, Mapping, type(None))):
        raise ResponseParseError(
            f"a streamed tool-call fragment is {describe(fragment)}, not an OpenAI"
            ' {"index", "id", "function": {"name", "arguments"}} object',
            body=_dump(data),
        )
    index = fragment.get("index")
    sink(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        id=_string(fragment.get("id")),
        name=_string(function.get("name")),
        arguments=arguments,
    )
