"""Validate request bodies into typed requests, before any model work.

Everything a client can get wrong is checked here and raised as a
`RequestError` (HTTP 400) naming the field, so bad input never reaches
`generate` and never turns into a 500. Pure Python: no torch, no Flask.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from modelwire_serving.errors import RequestError

# Generation keyword arguments accepted on /llm/ (the seed passed them to `generate`).
LLM_GENERATION_KEYS: frozenset[str] = frozenset(
    {
        "max_length",
        "max_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "do_sample",
        "repetition_penalty",
        "seed",
        "stop",
        "raw",
    }
)

# `generate` arguments that exist but cannot be honoured by a shared batch.
UNSUPPORTED_GENERATION_KEYS: dict[str, str] = {
    "num_beams": "beam search is not supported by the batching worker",
    "num_return_sequences": "only one sequence per request is returned",
    "stream": "streaming is available on POST /v1/chat/completions",
}

CHAT_KEYS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "do_sample",
        "repetition_penalty",
        "seed",
        "stop",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "metadata",
        "store",
    }
)

COMPLETION_KEYS: frozenset[str] = frozenset(
    {
        "model",
        "prompt",
        "stream",
        "stream_options",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "do_sample",
        "repetition_penalty",
        "seed",
        "stop",
        "n",
        "best_of",
        "echo",
        "suffix",
        "logprobs",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
    }
)

#: OpenAI's default `max_tokens` for /v1/completions (vLLM uses it too).
COMPLETION_DEFAULT_MAX_TOKENS = 16

EMBEDDING_KEYS: frozenset[str] = frozenset(
    {"model", "input", "encoding_format", "dimensions", "user"}
)

MAX_STOP_STRINGS = 4
#: Below these, sampling divides logits into inf/nan ("probability tensor contains
#: inf"); the values are far past where sampling is already greedy in practice.
MIN_TEMPERATURE = 0.01
MIN_REPETITION_PENALTY = 0.01
MAX_SEED = 2**63 - 1
MAX_EMBEDDING_INPUTS = 2048

_unique = itertools.count()


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are picked; requests batch together only when these agree."""

    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def resolve(self, default_do_sample: bool) -> SamplingParams:
        """Fix `do_sample`: explicit value, else temperature > 0, else the model's default."""
        do_sample = self.do_sample
        if do_sample is None:
            do_sample = self.temperature > 0 if self.temperature is not None else default_do_sample
        if do_sample and self.temperature == 0:
            raise RequestError(
                "temperature must be > 0 when do_sample is true (use temperature 0 for greedy)",
                param="temperature",
            )
        if do_sample and self.temperature is not None and self.temperature < MIN_TEMPERATURE:
            raise RequestError(
                f"'temperature' must be 0 (greedy) or at least {MIN_TEMPERATURE} when sampling, "
                f"got {self.temperature:g}",
                param="temperature",
            )
        return replace(self, do_sample=do_sample)

    def batch_key(self) -> tuple[object, ...]:
        """Requests with equal keys may share one `generate` call.

        Greedy requests ignore the sampling knobs, so they all group together.
        A seeded request runs alone, so its seed reproduces its own sample.
        """
        if not self.do_sample:
            return ("greedy", self.repetition_penalty)
        seed_slot = ("seed", next(_unique)) if self.seed is not None else None
        return (
            "sample",
            self.temperature,
            self.top_p,
            self.top_k,
            self.repetition_penalty,
            seed_slot,
        )


@dataclass(frozen=True)
class GenerationOptions:
    """Length limits, sampling and stop strings of one request."""

    sampling: SamplingParams = SamplingParams()
    max_new_tokens: int | None = None
    max_length: int | None = None
    stop: tuple[str, ...] = ()
    max_tokens_param: str = "max_new_tokens"


@dataclass(frozen=True)
class LLMRequest:
    """A validated POST /llm/ body."""

    inputs: str | list[dict[str, str]]
    options: GenerationOptions
    #: A string prompt as it is (true), through the chat template (false), or the
    #: server's default (None, see `--raw-prompts`).
    raw: bool | None = None


@dataclass(frozen=True)
class ChatRequest:
    """A validated POST /v1/chat/completions body."""

    messages: list[dict[str, str]]
    options: GenerationOptions
    model: str | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class CompletionRequest:
    """A validated POST /v1/completions body: one raw prompt, no chat template."""

    prompt: str
    options: GenerationOptions
    model: str | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class EmbeddingRequest:
    """A validated POST /v1/embeddings body."""

    inputs: list[str]
    model: str | None
    encoding_format: str
    dimensions: int | None


# -- field checkers --------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value) and abs(value) < 2**53  # type: ignore[arg-type]


def _int(body: Mapping[str, Any], key: str, minimum: int, maximum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_int(value):
        raise RequestError(f"'{key}' must be an integer, got {_type_name(value)}", param=key)
    if value < minimum:
        raise RequestError(f"'{key}' must be >= {minimum}, got {value}", param=key)
    if maximum is not None and value > maximum:
        raise RequestError(f"'{key}' must be <= {maximum}, got {value}", param=key)
    return int(value)


def _number(
    body: Mapping[str, Any],
    key: str,
    minimum: float,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise RequestError(f"'{key}' must be a number, got {_type_name(value)}", param=key)
    number = float(value)
    too_small = number <= minimum if exclusive_minimum else number < minimum
    if too_small or (maximum is not None and number > maximum):
        low = f"> {minimum}" if exclusive_minimum else f">= {minimum}"
        high = f" and <= {maximum}" if maximum is not None else ""
        raise RequestError(f"'{key}' must be {low}{high}, got {value}", param=key)
    return number


def _bool(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise RequestError(f"'{key}' must be true or false, got {_type_name(value)}", param=key)
    return value


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise RequestError("'stop' must be a string or a list of strings", param="stop")
    if len(items) > MAX_STOP_STRINGS:
        raise RequestError(f"'stop' accepts at most {MAX_STOP_STRINGS} strings", param="stop")
    if any(item == "" for item in items):
        raise RequestError("'stop' strings must not be empty", param="stop")
    return tuple(items)


def _type_name(value: object) -> str:
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number" if _is_number(value) else type(value).__name__


def _sampling(body: Mapping[str, Any]) -> SamplingParams:
    return SamplingParams(
        do_sample=_bool(body, "do_sample"),
        temperature=_number(body, "temperature", 0.0, 100.0),
        top_p=_number(body, "top_p", 0.0, 1.0, exclusive_minimum=True),
        top_k=_int(body, "top_k", 0),
        repetition_penalty=_number(body, "repetition_penalty", MIN_REPETITION_PENALTY, 100.0),
        seed=_int(body, "seed", 0, MAX_SEED),
    )


def _reject_unknown(
    body: Mapping[str, Any],
    allowed: frozenset[str],
    what: str,
    unsupported: Mapping[str, str] | None = None,
) -> None:
    for key in body:
        if unsupported and key in unsupported:
            raise RequestError(f"'{key}' is not supported: {unsupported[key]}", param=key)
    unknown = sorted(key for key in body if key not in allowed)
    if unknown:
        names = ", ".join(f"'{key}'" for key in unknown)
        accepted = ", ".join(sorted(allowed))
        raise RequestError(f"unknown {what} {names}; accepted: {accepted}", param=unknown[0])


# -- messages --------------------------------------------------------------------------


def parse_messages(value: object, key: str = "messages") -> list[dict[str, str]]:
    """OpenAI-style messages reduced to `{"role", "content"}` with text content."""
    if not isinstance(value, list) or not value:
        raise RequestError(f"'{key}' must be a non-empty list of messages", param=key)
    messages: list[dict[str, str]] = []
    for index, message in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(message, dict):
            raise RequestError(f"'{where}' must be an object with 'role' and 'content'", param=key)
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise RequestError(f"'{where}.role' must be a non-empty string", param=key)
        messages.append({"role": role, "content": _content_text(message.get("content"), where)})
    return messages


def _content_text(content: object, where: str) -> str:
    """Message content as text: a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise RequestError(
                    f"'{where}.content' parts must be text parts ({{'type': 'text', ...}}); "
                    "this server serves a text-only model",
                    param="messages",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(f"'{where}.content' text part needs a string 'text'")
            texts.append(text)
        return "".join(texts)
    raise RequestError(
        f"'{where}.content' must be a string or a list of text parts", param="messages"
    )


# -- bodies ----------------------------------------------------------------------------


def parse_llm_body(body: Mapping[str, Any]) -> LLMRequest:
    """The seed's body: `{"inputs": str | messages, **generation kwargs}`.

    `messages` is accepted in place of `inputs` (the seed's `messages_key` is
    configurable). Whether a string goes through the chat template is decided by
    the route: `"raw": true` asks for the seed's behaviour (the string as it is).
    """
    key = "inputs" if "inputs" in body else "messages" if "messages" in body else None
    if key is None:
        raise RequestError(
            'missing \'inputs\': send {"inputs": "a prompt" or [messages], ...}', param="inputs"
        )
    if "inputs" in body and "messages" in body:
        raise RequestError("send either 'inputs' or 'messages', not both", param="messages")
    inputs = body[key]
    parsed: str | list[dict[str, str]]
    if isinstance(inputs, str):
        if not inputs:
            raise RequestError(f"'{key}' must not be empty", param=key)
        parsed = inputs
    elif isinstance(inputs, list):
        parsed = parse_messages(inputs, key)
    else:
        raise RequestError(
            f"'{key}' must be a string or a list of messages, got {_type_name(inputs)}", param=key
        )
    rest = {name: value for name, value in body.items() if name != key}
    _reject_unknown(
        rest, LLM_GENERATION_KEYS, "generation parameter(s)", UNSUPPORTED_GENERATION_KEYS
    )
    options = GenerationOptions(
        sampling=_sampling(rest),
        max_new_tokens=_int(rest, "max_new_tokens", 1),
        max_length=_int(rest, "max_length", 1),
        stop=_stop(rest),
    )
    raw = _bool(rest, "raw")
    if raw and not isinstance(parsed, str):
        raise RequestError("'raw' applies to a string 'inputs' only, not to messages", param="raw")
    return LLMRequest(inputs=parsed, options=options, raw=raw)


def parse_chat_body(body: Mapping[str, Any]) -> ChatRequest:
    """An OpenAI chat completion request, limited to what one local model can do."""
    _reject_unknown(body, CHAT_KEYS, "parameter(s)")
    if "messages" not in body:
        raise RequestError("missing 'messages'", param="messages")
    messages = parse_messages(body["messages"])
    model = _openai_common(body)
    if _bool(body, "logprobs"):
        raise RequestError("'logprobs' is not supported", param="logprobs")
    if body.get("tools") or body.get("tool_choice") not in (None, "none"):
        raise RequestError("tool calling is not supported by this server", param="tools")
    messages = _with_response_format(messages, body.get("response_format"))
    stream, include_usage = _stream_settings(body)
    max_tokens_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    options = GenerationOptions(
        sampling=_sampling(body),
        max_new_tokens=_int(body, max_tokens_key, 1),
        stop=_stop(body),
        max_tokens_param=max_tokens_key,
    )
    return ChatRequest(
        messages=messages,
        options=options,
        model=model,
        stream=stream,
        include_usage=include_usage,
    )


def _with_response_format(messages: list[dict[str, str]], value: object) -> list[dict[str, str]]:
    """The messages with a ``json_object``/``json_schema`` response format stated to the
    model in the system message: asked for, not enforced (no constrained decoding), so
    the caller validates the reply (modelwire's ``structured_model`` does)."""
    if value is None or value == {"type": "text"}:
        return messages
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "json_object":
        instruction = "Answer with one JSON object and nothing else."
    elif kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise RequestError(
                "response_format json_schema needs {'json_schema': {'name', 'schema': {...}}}",
                param="response_format",
            )
        instruction = (
            "Answer with one JSON object that follows this JSON schema, and nothing else:\n"
            + json.dumps(schema, ensure_ascii=False)
        )
    else:
        raise RequestError(
            "response_format must be {'type': 'text'}, {'type': 'json_object'} or"
            " {'type': 'json_schema', 'json_schema': {...}}",
            param="response_format",
        )
    if messages[0]["role"] == "system":
        first = messages[0]
        return [
            {"role": "system", "content": f"{first['content']}\n\n{instruction}"},
            *messages[1:],
        ]
    return [{"role": "system", "content": instruction}, *messages]


def _openai_common(body: Mapping[str, Any]) -> str | None:
    """Checks the OpenAI chat and completion routes share; returns `model`."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", param="model")
    n = _int(body, "n", 1)
    if n not in (None, 1):
        raise RequestError("only n=1 is supported", param="n")
    for penalty in ("presence_penalty", "frequency_penalty"):
        if _number(body, penalty, -2.0, 2.0) not in (None, 0.0):
            raise RequestError(
                f"'{penalty}' is not supported; use 'repetition_penalty' instead", param=penalty
            )
    if body.get("logit_bias"):
        raise RequestError("'logit_bias' is not supported", param="logit_bias")
    return model


def _stream_settings(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """`stream` and `stream_options.include_usage`."""
    stream = _bool(body, "stream") or False
    include_usage = False
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise RequestError("'stream_options' must be an object", param="stream_options")
        include_usage = bool(_bool(stream_options, "include_usage"))
    return stream, include_usage


def parse_completion_body(body: Mapping[str, Any]) -> CompletionRequest:
    """An OpenAI (legacy) completion request: a raw prompt continued as it is."""
    _reject_unknown(body, COMPLETION_KEYS, "parameter(s)")
    if "prompt" not in body:
        raise RequestError("missing 'prompt'", param="prompt")
    prompt = body["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list) and all(isinstance(item, str) for item in prompt):
        raise RequestError("only one prompt per request is supported", param="prompt")
    if not isinstance(prompt, str):
        raise RequestError(
            "'prompt' must be a string (token-id prompts are not supported)", param="prompt"
        )
    if not prompt:
        raise RequestError("'prompt' must not be empty", param="prompt")
    model = _openai_common(body)
    if _int(body, "best_of", 1) not in (None, 1):
        raise RequestError("only best_of=1 is supported", param="best_of")
    if _bool(body, "echo"):
        raise RequestError("'echo' is not supported", param="echo")
    if body.get("suffix") not in (None, ""):
        raise RequestError("'suffix' (insertion) is not supported", param="suffix")
    if body.get("logprobs") is not None:
        raise RequestError("'logprobs' is not supported", param="logprobs")
    stream, include_usage = _stream_settings(body)
    max_tokens = _int(body, "max_tokens", 1)
    options = GenerationOptions(
        sampling=_sampling(body),
        max_new_tokens=max_tokens,
        max_length=None,
        stop=_stop(body),
        max_tokens_param="max_tokens",
    )
    return CompletionRequest(
        prompt=prompt, options=options, model=model, stream=stream, include_usage=include_usage
    )


def parse_embedding_body(body: Mapping[str, Any]) -> EmbeddingRequest:
    """An OpenAI embeddings request: `input` is a string or a list of strings."""
    _reject_unknown(body, EMBEDDING_KEYS, "parameter(s)")
    if "input" not in body:
        raise RequestError("missing 'input'", param="input")
    value = body["input"]
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'input' must be a string or a non-empty list of strings", param="input")
    if not all(isinstance(item, str) for item in inputs):
        raise RequestError(
            "'input' must contain strings (token-id input is not supported)", param="input"
        )
    if any(not item for item in inputs):
        raise RequestError("'input' strings must not be empty", param="input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise RequestError(f"'input' accepts at most {MAX_EMBEDDING_INPUTS} strings", param="input")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise RequestError("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", param="model")
    return EmbeddingRequest(
        inputs=list(inputs),
        model=model,
        encoding_format=encoding_format,
        dimensions=_int(body, "dimensions", 1),
    )


def resolve_max_new_tokens(
    options: GenerationOptions, prompt_tokens: int, cap: int, context_length: int
) -> int:
    """How many tokens to generate for this prompt, or a 400 saying why not.

    An explicit `max_new_tokens` / `max_tokens` above the server's cap is an
    error (not silently clamped); the seed's `max_length` bounds prompt plus
    answer, so it is turned into new tokens and then clamped to the cap.
    Without either, the cap is used.
    """
    room = context_length - prompt_tokens
    if room < 1:
        raise RequestError(
            f"the prompt is {prompt_tokens} tokens; this model's context is "
            f"{context_length} tokens",
        )
    key = options.max_tokens_param
    if options.max_new_tokens is not None:
        if options.max_new_tokens > cap:
            raise RequestError(
                f"'{key}'={options.max_new_tokens} exceeds this server's cap of {cap} "
                "new tokens (--max-new-tokens)",
                param=key,
            )
        if options.max_new_tokens > room:
            raise RequestError(
                f"the prompt ({prompt_tokens} tokens) plus '{key}'={options.max_new_tokens} "
                f"exceeds this model's context of {context_length} tokens",
                param=key,
            )
        return options.max_new_tokens
    if options.max_length is not None:
        wanted = options.max_length - prompt_tokens
        if wanted < 1:
            raise RequestError(
                f"'max_length'={options.max_length} leaves no room for new tokens: "
                f"the prompt is already {prompt_tokens} tokens",
                param="max_length",
            )
        return min(wanted, cap, room)
    return min(cap, room)


# -- Ollama ------------------------------------------------------------------------------

#: Ollama options that are honoured.
OLLAMA_OPTIONS: frozenset[str] = frozenset(
    {"temperature", "top_p", "top_k", "num_predict", "seed", "stop", "repeat_penalty"}
)
#: Options about loading and resources (context size, threads, GPUs, memory mapping):
#: they do not change the answer here, so they are accepted and ignored.
OLLAMA_IGNORED_OPTIONS: frozenset[str] = frozenset(
    {
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "embedding_only",
        "num_thread",
        "numa",
        "num_keep",
        "repeat_last_n",
        "penalize_newline",
    }
)
#: Sampling options this server cannot apply, with the value that means "off":
#: accepted only at that value, so an answer is never silently sampled differently.
OLLAMA_NEUTRAL_OPTIONS: dict[str, float] = {
    "min_p": 0.0,
    "typical_p": 1.0,
    "tfs_z": 1.0,
    "mirostat": 0,
    "mirostat_tau": 5.0,
    "mirostat_eta": 0.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def parse_ollama_options(options: object) -> GenerationOptions:
    """Ollama's `options` object as generation options (`num_predict` -1/-2: the cap)."""
    if options is None:
        return GenerationOptions(max_tokens_param="num_predict")
    if not isinstance(options, dict):
        raise RequestError(f"'options' must be an object, got {_type_name(options)}")
    known = OLLAMA_OPTIONS | OLLAMA_IGNORED_OPTIONS | OLLAMA_NEUTRAL_OPTIONS.keys()
    unknown = sorted(key for key in options if key not in known)
    if unknown:
        names = ", ".join(f"'{key}'" for key in unknown)
        raise RequestError(
            f"unknown option(s) {names}; honoured: {', '.join(sorted(OLLAMA_OPTIONS))}"
        )
    for key, neutral in OLLAMA_NEUTRAL_OPTIONS.items():
        value = options.get(key)
        if value is not None and value != neutral:
            raise RequestError(f"option '{key}' is not supported by this server (only {neutral})")
    values = {key: value for key, value in options.items() if value is not None}
    num_predict = values.pop("num_predict", None)
    if num_predict in (-1, -2):
        num_predict = None  # Ollama: "until done" / "fill the context"; here the server's cap
    seed = values.get("seed")
    if _is_int(seed) and seed < 0:
        values.pop("seed")  # Ollama's -1: a random seed
    if "repeat_penalty" in values:
        values["repetition_penalty"] = values.pop("repeat_penalty")
    return GenerationOptions(
        sampling=_sampling(values),
        max_new_tokens=_int({"num_predict": num_predict}, "num_predict", 1),
        stop=_stop(values),
        max_tokens_param="num_predict",
    )
