"""Ollama-compatible routes, so `ollama` SDK clients and modelwire's `ollama_*` configs
can use this server by pointing `host` at it.

`POST /api/chat`, `POST /api/generate`, `POST /api/embed`, `POST /api/embeddings`,
`GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version`, and `GET /`
(the liveness probe, no key needed). Replies
stream as NDJSON by default, as Ollama's do (`"stream": false` for one object);
counts and `*_duration` fields (nanoseconds) come with the last line; errors are
Ollama's `{"error": "..."}` with the status Ollama uses (400 bad request, 404
unknown model). What Ollama can do and this server cannot (images, tools,
thinking, custom templates, constrained `format` decoding) is a 400 saying so,
except `format`: it is checked, and the check is reported (`format_valid`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response

from modelwire_serving import __version__
from modelwire_serving.bodies import read_json_object
from modelwire_serving.errors import RequestError
from modelwire_serving.jobs import Completion, GenerationFailedError
from modelwire_serving.params import GenerationOptions, parse_messages, parse_ollama_options
from modelwire_serving.service import Service

CHAT_KEYS = frozenset(
    {"model", "messages", "tools", "stream", "think", "format", "options", "keep_alive"}
    | {"logprobs", "top_logprobs"}
)
GENERATE_KEYS = frozenset(
    {"model", "prompt", "suffix", "system", "template", "context", "stream", "raw", "think"}
    | {"format", "images", "options", "keep_alive", "logprobs", "top_logprobs"}
)
EMBED_KEYS = frozenset({"model", "input", "truncate", "options", "keep_alive", "dimensions"})
EMBEDDINGS_KEYS = frozenset({"model", "prompt", "options", "keep_alive"})


@dataclass(frozen=True)
class ModelCard:
    """What /api/tags and /api/show say about one served model."""

    name: str
    capabilities: tuple[str, ...]
    family: str = ""
    file_format: str = ""
    parameter_count: int = 0
    quantization: str = ""
    size: int = 0
    context_length: int = 0
    embedding_length: int = 0
    template: str = ""
    modified_at: str = ""
    digest: str = ""
    model_info: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": self.file_format,
            "family": self.family,
            "families": [self.family] if self.family else None,
            "parameter_size": _parameter_size(self.parameter_count),
            "quantization_level": self.quantization,
        }

    def tag(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        }


def _parameter_size(count: int) -> str:
    if count >= 1_000_000_000:
        return f"{count / 1e9:.1f}B"
    return f"{count / 1e6:.0f}M" if count else ""


def _files_of(path: str, gguf_file: str | None) -> list[str]:
    if gguf_file:
        return [os.path.join(path, gguf_file)]
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        return [
            os.path.join(path, name)
            for name in sorted(os.listdir(path))
            if os.path.isfile(os.path.join(path, name))
        ]
    return []


def model_card(
    name: str,
    model: Any,
    location: Any,
    *,
    dtype: str,
    context_length: int,
    capabilities: tuple[str, ...],
    template: str = "",
    embedding_length: int = 0,
) -> ModelCard:
    """Describe a loaded model from its config and files (no hashing of large files)."""
    files = _files_of(location.path, location.gguf_file)
    size = sum(os.path.getsize(path) for path in files)
    mtime = max((os.path.getmtime(path) for path in files), default=time.time())
    stamp = f"{location.spec}|{size}|{mtime}".encode()
    config = getattr(model, "config", None)
    family = str(getattr(config, "model_type", "") or "")
    try:
        parameters = int(model.num_parameters())
    except (AttributeError, TypeError):
        parameters = 0
    # Weights run in `dtype` whatever the file holds (a GGUF file is dequantized on load).
    quantization = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}.get(dtype, dtype)
    file_type = ""
    if location.gguf_file:
        found = re.search(r"(?i)\b(I?Q\d\w*|F16|F32|BF16)\.gguf$", location.gguf_file)
        file_type = found.group(1).upper() if found else ""
    info: dict[str, Any] = {
        "general.architecture": family,
        "general.parameter_count": parameters,
        f"{family}.context_length": context_length,
        "modelwire.runtime_dtype": dtype,
    }
    if file_type:
        info["general.file_type"] = file_type
    if embedding_length:
        info[f"{family}.embedding_length"] = embedding_length
    return ModelCard(
        name=name,
        capabilities=capabilities,
        family=family,
        file_format="gguf" if location.gguf_file else "safetensors",
        parameter_count=parameters,
        quantization=quantization,
        size=size,
        context_length=context_length,
        embedding_length=embedding_length,
        template=template,
        modified_at=_timestamp(mtime),
        digest=hashlib.sha256(stamp).hexdigest(),
        model_info=info,
    )


def _timestamp(seconds: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(
        time.time() if seconds is None else seconds, tz=datetime.UTC
    )
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ndjson(lines: Iterator[dict[str, Any]]) -> Response:
    def encode() -> Iterator[str]:
        for line in lines:
            yield json.dumps(line, ensure_ascii=False) + "\n"

    return Response(encode(), mimetype="application/x-ndjson")


def _json(payload: object) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), mimetype="application/json")


def _reject_unknown(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(key for key in body if key not in allowed)
    if unknown:
        names = ", ".join(f"'{key}'" for key in unknown)
        raise RequestError(f"unknown field(s) {names}; accepted: {', '.join(sorted(allowed))}")


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"'{key}' must be true or false")
    return value


# -- format ("json" or a JSON schema) ----------------------------------------------------


def parse_format(value: object) -> str | dict[str, Any] | None:
    """Ollama's `format`: "json", a JSON schema object, or nothing."""
    if value is None or value == "":
        return None
    if value == "json" or isinstance(value, dict):
        return value  # type: ignore[return-value]
    raise RequestError('invalid format: expected "json" or a JSON schema object')


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _schema_error(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """The first way `value` breaks `schema` (type, enum, properties, required, items)."""
    wanted = schema.get("type")
    if wanted is not None:
        names = wanted if isinstance(wanted, list) else [wanted]
        kinds = tuple(kind for name in names for kind in _TYPES.get(str(name), ()))
        is_bool = isinstance(value, bool)
        if kinds and (not isinstance(value, kinds) or (is_bool and bool not in kinds)):
            return f"{where} is not of type {wanted}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} is not one of {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{where} lacks the required property '{key}'"
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and isinstance(sub, Mapping):
                problem = _schema_error(value[key], sub, f"{where}.{key}")
                if problem:
                    return problem
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problem = _schema_error(item, schema["items"], f"{where}[{index}]")
            if problem:
                return problem
    return None


def check_format(text: str, wanted: str | dict[str, Any]) -> str | None:
    """Why `text` does not satisfy `format`, or None if it does.

    Decoding is not constrained here (Ollama's is), so the reply is checked and
    the result reported instead of silently passing for valid JSON.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the reply is not valid JSON: {exc}"
    if isinstance(wanted, dict):
        return _schema_error(value, wanted, "the reply")
    return None


# -- the routes ----------------------------------------------------------------------------


def register(app: Flask, service: Service, cards: list[ModelCard]) -> None:
    """Add the /api/ routes to `app`; `cards` describe the chat and embedding models."""
    chat_cards = [card for card in cards if "completion" in card.capabilities]
    embed_cards = [card for card in cards if "embedding" in card.capabilities]

    def find(body: Mapping[str, Any], purpose: str, wanted: list[ModelCard]) -> ModelCard:
        name = body.get("model", body.get("name"))
        if not isinstance(name, str) or not name:
            raise RequestError("model is required")
        for card in cards:
            if name in (card.name, f"{card.name}:latest"):
                if card not in wanted:
                    raise RequestError(f'"{name}" does not support {purpose}')
                return card
        served = ", ".join(f'"{card.name}"' for card in cards)
        raise RequestError(f'model "{name}" not found; this server serves {served}', 404)

    def check_common(body: Mapping[str, Any], card: ModelCard) -> GenerationOptions:
        think = body.get("think")
        if think not in (None, False):
            raise RequestError(f'"{card.name}" does not support thinking')
        if body.get("logprobs"):
            raise RequestError("'logprobs' is not supported by this server")
        return parse_ollama_options(body.get("options"))

    @app.post("/api/chat", endpoint="ollama_chat")
    def chat() -> Response:
        body = read_json_object()
        _reject_unknown(body, CHAT_KEYS)
        card = find(body, "chat", chat_cards)
        options = check_common(body, card)
        if body.get("tools"):
            raise RequestError(f'"{card.name}" does not support tools')
        messages = _chat_messages(body.get("messages"), card.name)
        wanted = parse_format(body.get("format"))
        stream = _flag(body, "stream", True)
        if not messages:  # Ollama: an empty chat only loads the model
            return _loaded(card, stream, {"message": {"role": "assistant", "content": ""}})
        return _run(service, card, messages, options, stream, wanted, chat=True)

    @app.post("/api/generate", endpoint="ollama_generate")
    def generate() -> Response:
        body = read_json_object()
        _reject_unknown(body, GENERATE_KEYS)
        card = find(body, "generate", chat_cards)
        options = check_common(body, card)
        for key, why in (
            ("images", f'"{card.name}" is a text-only model: images are not supported'),
            ("suffix", "'suffix' (fill-in-the-middle) is not supported"),
            ("template", "'template' is not supported: the model's own chat template is used"),
            ("context", "'context' is not supported: send the conversation to /api/chat"),
        ):
            if body.get(key):
                raise RequestError(why)
        prompt = body.get("prompt")
        system = body.get("system")
        for key, value in (("prompt", prompt), ("system", system)):
            if value is not None and not isinstance(value, str):
                raise RequestError(f"'{key}' must be a string")
        wanted = parse_format(body.get("format"))
        stream = _flag(body, "stream", True)
        if not prompt:  # Ollama: an empty prompt only loads the model
            return _loaded(card, stream, {"response": ""})
        raw = _flag(body, "raw", False) or not service.prompter.has_chat_template
        inputs: str | list[dict[str, str]] = prompt
        if not raw:
            turns = [{"role": "system", "content": system}] if system else []
            inputs = [*turns, {"role": "user", "content": prompt}]
        return _run(service, card, inputs, options, stream, wanted, chat=False)

    @app.post("/api/embed", endpoint="ollama_embed")
    def embed() -> Response:
        body = read_json_object()
        _reject_unknown(body, EMBED_KEYS)
        card = find(body, "embeddings", embed_cards)
        parse_ollama_options(body.get("options"))
        value = body.get("input", "")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise RequestError("'input' must be a string or a list of strings")
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != card.embedding_length:
            raise RequestError(f"'dimensions' must be {card.embedding_length} for this model")
        started = time.perf_counter_ns()
        vectors, tokens = _embed(service, texts, _flag(body, "truncate", True))
        return _json(
            {
                "model": card.name,
                "embeddings": vectors,
                "total_duration": time.perf_counter_ns() - started,
                "load_duration": 0,
                "prompt_eval_count": tokens,
            }
        )

    @app.post("/api/embeddings", endpoint="ollama_embeddings")
    def embeddings() -> Response:
        body = read_json_object()
        _reject_unknown(body, EMBEDDINGS_KEYS)
        find(body, "embeddings", embed_cards)
        parse_ollama_options(body.get("options"))
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise RequestError("'prompt' must be a string")
        if not prompt:
            return _json({"embedding": []})
        vectors, _ = _embed(service, [prompt], True)
        return _json({"embedding": vectors[0]})

    @app.get("/api/tags", endpoint="ollama_tags")
    def tags() -> Response:
        return _json({"models": [card.tag() for card in cards]})

    @app.get("/api/ps", endpoint="ollama_ps")
    def running() -> Response:
        models = [
            {**card.tag(), "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0}
            | {"context_length": card.context_length}
            for card in cards
        ]
        return _json({"models": models})

    @app.post("/api/show", endpoint="ollama_show")
    def show() -> Response:
        body = read_json_object()
        _reject_unknown(body, frozenset({"model", "name", "verbose", "system", "template"}))
        card = find(body, "show", cards)
        return _json(
            {
                "modelfile": f"# served by modelwire-serve\nFROM {card.name}\n",
                "parameters": "",
                "template": card.template,
                "details": card.details(),
                "model_info": card.model_info,
                "capabilities": list(card.capabilities),
                "modified_at": card.modified_at,
            }
        )

    @app.get("/", endpoint="ollama_root")
    def root() -> Response:
        # Ollama answers "Ollama is running"; its CLI and some UIs probe this (GET or HEAD).
        return Response("modelwire-serve is running (Ollama API on /api)", mimetype="text/plain")

    @app.get("/api/version", endpoint="ollama_version")
    def version() -> Response:
        return _json({"version": __version__})


def _chat_messages(value: object, model: str) -> list[dict[str, str]]:
    """Ollama chat messages as text messages; images and tool calls are a 400."""
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        raise RequestError("'messages' must be a list of messages")
    for message in value:
        if isinstance(message, dict):
            if message.get("images"):
                raise RequestError(f'"{model}" is a text-only model: images are not supported')
            if message.get("tool_calls"):
                raise RequestError(f'"{model}" does not support tools')
            if not isinstance(message.get("content", ""), str | None):
                raise RequestError("a message's 'content' must be a string")
    return parse_messages(value)


def _embed(service: Service, texts: list[str], truncate: bool) -> tuple[list[list[float]], int]:
    if service.embedder is None:  # unreachable: `find` found an embedding card
        raise RequestError("no embedding model is loaded: start with --embedding-model", 404)
    if not texts:
        return [], 0
    if any(not text for text in texts):
        raise RequestError("'input' strings must not be empty")
    return service.embedder.embed(texts, truncate=truncate)


def _loaded(card: ModelCard, stream: bool, empty: dict[str, Any]) -> Response:
    line = {"model": card.name, "created_at": _timestamp(), **empty}
    line |= {"done_reason": "load", "done": True}
    return _ndjson(iter([line])) if stream else _json(line)


def _run(
    service: Service,
    card: ModelCard,
    inputs: str | list[dict[str, str]],
    options: GenerationOptions,
    stream: bool,
    wanted: str | dict[str, Any] | None,
    *,
    chat: bool,
) -> Response:
    """Submit the job now (so queue and prompt errors are HTTP errors), then reply."""
    started = time.perf_counter_ns()
    # Always a streaming job: the first delta's time splits prompt and eval durations.
    job = service.submit(inputs, options, stream=True)

    def piece(text: str) -> dict[str, Any]:
        line: dict[str, Any] = {"model": card.name, "created_at": _timestamp()}
        if chat:
            line["message"] = {"role": "assistant", "content": text}
        else:
            line["response"] = text
        return line | {"done": False}

    def last(completion: Completion, first: int, text: str) -> dict[str, Any]:
        now = time.perf_counter_ns()
        line = piece(text)
        line |= {
            "done": True,
            "done_reason": "length" if completion.finish_reason == "length" else "stop",
            "total_duration": now - started,
            "load_duration": 0,
            "prompt_eval_count": completion.prompt_tokens,
            "prompt_eval_duration": first - started,
            "eval_count": completion.completion_tokens,
            "eval_duration": now - first,
        }
        if wanted is not None:
            problem = check_format(completion.text, wanted)
            line["format_valid"] = problem is None
            if problem:
                line["format_error"] = problem
        return line

    def events() -> Iterator[dict[str, Any]]:
        first = 0
        for item in job.iter_events(timeout=service.limits.request_timeout):
            first = first or time.perf_counter_ns()
            if isinstance(item, Completion):
                yield last(item, first, "" if stream else item.text)
                return
            if stream:
                yield piece(item)

    def lines() -> Iterator[dict[str, Any]]:
        """The NDJSON stream; a failure after the first line is an `{"error"}` line."""
        try:
            yield from events()
        except (GenerationFailedError, TimeoutError) as exc:
            yield {"error": str(exc)}
        finally:
            job.cancel()  # also when the client went away

    if stream:
        return _ndjson(lines())
    try:
        # Timeouts and failures reach the app's handlers (504, 500) in Ollama's shape.
        return _json(list(events())[-1])
    finally:
        job.cancel()
