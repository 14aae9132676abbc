"""``gemini_chat``: Gemini's ``generateContent`` through ``google-genai``.

``format`` turns ``Msg``s into Gemini's shape (``user``/``model`` turns, system
messages as ``system_instruction``); the call returns the first candidate's text
and the usage from ``usageMetadata``. A reply Gemini withheld (safety,
recitation, ...) raises ``BlockedResponseError`` rather than returning empty text.

Calls read Gemini's JSON from the HTTP reply (``kept_replies``: the SDK's reply
model drops fields it does not know); stream events arrive as the SDK's models
and are dumped to the same camelCase JSON, so one parser reads both.

``tools``, ``tool_choice`` and ``structured_model`` (per call or in
``generation_config``) become Gemini's ``function_declarations``,
``tool_config.function_calling_config`` and ``response_json_schema``; the reply's
``functionCall`` parts become ``tool_use`` blocks and its thought parts ``thinking``
blocks, each keeping the part's thought signature (under ``"signature"``), which
``format`` sends back in the part it came with.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, TypedDict

from modelwire import (
    AGENT_ARGUMENTS,
    BadRequestError,
    ConfigIssue,
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    Stream,
    Usage,
    blocks_of,
    check_tool_choice,
    check_value,
    image_media,
    iter_msgs,
    normalize_tools,
    parse_structured,
    parse_tool_arguments,
    read_media,
    structured_schema,
    text_of,
)
from modelwire_gemini.client import GeminiWrapper, kept_replies
from modelwire_gemini.errors import BlockedResponseError

__all__ = [
    "BLOCKED_FINISH_REASONS",
    "TOOL_FAILURE_FINISH_REASONS",
    "GeminiChatWrapper",
    "GeminiPrompt",
    "GenerationConfig",
    "Prompt",
    "SafetySetting",
    "ThinkingConfig",
]

#: Finish reasons meaning Gemini withheld (part of) the answer.
BLOCKED_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)

#: Finish reasons meaning the model's tool use failed: a ``ResponseParseError``, with
#: the service's ``finishMessage``, never an empty answer.
TOOL_FAILURE_FINISH_REASONS: dict[str, str] = {
    "MALFORMED_FUNCTION_CALL": "the model produced a malformed function call",
    "UNEXPECTED_TOOL_CALL": "the model called a tool, but the request enabled none",
    "TOO_MANY_TOOL_CALLS": "the model made too many tool calls",
    "MALFORMED_RESPONSE": "the model produced a malformed response",
    "MISSING_THOUGHT_SIGNATURE": (
        "the service missed a thought signature in the request (send the model's"
        " turns back with response.to_msg())"
    ),
}


class ThinkingConfig(TypedDict, total=False):
    """``generation_config.thinking_config`` for thinking models."""

    include_thoughts: bool
    thinking_budget: int
    thinking_level: str


class GenerationConfig(TypedDict, total=False):
    """The ``generation_config`` key (and per-call keyword arguments); keys are checked."""

    temperature: float
    top_p: float
    top_k: int
    candidate_count: int
    max_output_tokens: int
    stop_sequences: list[str]
    presence_penalty: float
    frequency_penalty: float
    seed: int
    response_mime_type: str
    response_schema: dict[str, Any]
    response_json_schema: dict[str, Any]
    response_logprobs: bool
    logprobs: int
    thinking_config: ThinkingConfig
    #: modelwire's: function dicts, Python functions, pydantic classes, or Gemini's own
    #: ``types.Tool`` dicts (``{"google_search": {}}``, ``{"function_declarations": [...]}``)
    tools: list[Any]
    #: ``"auto"``, ``"none"``, ``"required"``, a tool's name, or a ``function_calling_config``
    tool_choice: str | dict[str, Any]
    #: a pydantic model class or a JSON-schema dict; the reply is validated against it
    structured_model: Any


class SafetySetting(TypedDict):
    """One entry of ``safety_settings``, e.g. ``HARM_CATEGORY_HARASSMENT`` / ``BLOCK_NONE``."""

    category: str
    threshold: str


class GeminiPrompt(TypedDict, total=False):
    """What ``format`` returns and a call takes."""

    contents: list[dict[str, Any]]
    system_instruction: dict[str, Any]


#: What a call takes: ``format``'s result, ``Msg``s, Gemini contents or plain text.
Prompt = GeminiPrompt | Msg | list[Any] | str


#: Yielded after the SDK's last stream event, so that ``_parse_chunk`` sees the end.
_END = object()


class GeminiChatWrapper(GeminiWrapper):
    """Chat with a Gemini model; also ``vertexai: true`` for Vertex AI.

    ``tools``, ``tool_choice`` and ``structured_model`` are taken per call or in
    ``generation_config`` (where every call's Gemini arguments live); the reply's
    calls are in ``response.tool_calls``, its thought summaries in ``response.thinking``.
    """

    model_type = "gemini_chat"
    agent_arguments = AGENT_ARGUMENTS

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Tools, a tool choice and a structured model in ``generation_config`` are
        checked at load, like every other key: a bad one fails the config, not a call."""
        issues = super().validate_params(params)
        config = params.get("generation_config")
        if isinstance(config, Mapping) and any(key in config for key in _AGENT_ARGS):
            try:
                _agent_config(dict(config))
            except BadRequestError as exc:
                issues.append(ConfigIssue("?", "generation_config", exc.message))
        return issues

    def __init__(
        self,
        config_name: str,
        *,
        generation_config: GenerationConfig | None = None,
        safety_settings: list[SafetySetting] | dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.generation_config: dict[str, Any] = dict(generation_config or {})
        if isinstance(safety_settings, dict):  # the old SDK's {category: threshold} form
            safety_settings = [
                {"category": category, "threshold": threshold}
                for category, threshold in safety_settings.items()
            ]
        self.safety_settings: list[dict[str, Any]] = [dict(s) for s in safety_settings or []]

    def format(self, *args: Msg | list[Msg] | None) -> GeminiPrompt:
        """Gemini turns alternate ``user``/``model``: merge neighbours, lift system messages."""
        system_parts: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for msg in iter_msgs(*args):
            parts = _parts(msg)
            if msg.role == "system":
                system_parts.extend(parts)
                continue
            role = "model" if msg.role == "assistant" else "user"
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        prompt: GeminiPrompt = {"contents": contents}
        if system_parts:
            prompt["system_instruction"] = {"parts": system_parts}
        return prompt

    def _request(self, prompt: Prompt, **overrides: Any) -> dict[str, Any]:
        """Contents and config, validated here so that a bad request is never sent.

        Plain-text contents (what ``format`` makes) are taken as they are; anything
        else, and any config, is checked against the SDK's models first.
        """
        problems = (
            check_value(overrides, GenerationConfig, "generation_config") if overrides else []
        )
        if problems:
            raise BadRequestError(
                "invalid call arguments: " + "; ".join(f"{key}: {msg}" for key, msg in problems)
            )
        contents, system_instruction = self._split(prompt)
        config: dict[str, Any] = {**self.generation_config, **overrides}
        structured_model = None
        if "tools" in config or "tool_choice" in config or _STRUCTURED in config:
            structured_model = _agent_config(config)  # only calls using them pay
        if self.safety_settings:
            config["safety_settings"] = self.safety_settings
        if system_instruction:
            config["system_instruction"] = system_instruction
        if config:
            # No tools are sent, and no hidden follow-up calls may be made either.
            config["automatic_function_calling"] = {"disable": True}
        plain = _plain_text(contents)
        if not plain or config:
            import pydantic
            from google.genai import types

            try:
                if not plain:
                    for content in contents:
                        types.Content.model_validate(content)
                if config:
                    types.GenerateContentConfig.model_validate(config)
            except pydantic.ValidationError as exc:
                raise BadRequestError(f"invalid request for Gemini: {exc}") from exc
        request = {"model": self.model_name, "contents": contents, "config": config}
        if structured_model is not None:
            request[_STRUCTURED] = structured_model
        return request

    def _send(self, request: dict[str, Any]) -> list[Any]:
        with kept_replies() as replies:
            self.clients.sync.models.generate_content(**_sdk_call(request))
        return replies

    async def _asend(self, request: dict[str, Any]) -> list[Any]:
        with kept_replies() as replies:
            await self.clients.async_.aio.models.generate_content(**_sdk_call(request))
        return replies

    def _parse(self, reply: list[Any], request: dict[str, Any]) -> ModelResponse:
        body = reply[-1].content if reply else b""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
            raise ResponseParseError(
                f"Gemini's reply is not JSON ({type(exc).__name__}: {exc})",
                body=body.decode("utf-8", "replace"),
            ) from None
        parsed = _Reply(payload)
        if parsed.candidate is None:
            raise ResponseParseError("Gemini's reply holds no candidate", body=body)
        if parsed.finish_reason in BLOCKED_FINISH_REASONS:
            raise _blocked(parsed.candidate, parsed.finish_reason, partial_text=parsed.text or None)
        if parsed.finish_reason in TOOL_FAILURE_FINISH_REASONS:
            raise _tool_failure(parsed.candidate, parsed.finish_reason, partial_text=parsed.text)
        # Only replies with more than text parts (calls, thoughts, signatures) are walked again.
        content = _blocks(parsed.parts) if parsed.special else None
        response = ModelResponse(
            text=None if content is not None else parsed.text,
            raw=payload,
            usage=parsed.usage,
            model_name=parsed.model_name or self.model_name,
            finish_reason=parsed.finish_reason,
            content=content,
        )
        structured_model = request.get(_STRUCTURED)
        if structured_model is not None and (response.text or not response.tool_calls):
            # A turn of tool calls only has no answer to validate yet.
            response.parsed = parse_structured(response.text, structured_model)
        return response

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        events = self.clients.sync.models.generate_content_stream(**self._stream_call(request))
        try:
            yield from events
            yield _END
        finally:
            events.close()

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        call = self._stream_call(request)
        events = aiter(await self.clients.async_.aio.models.generate_content_stream(**call))
        try:
            async for event in events:
                yield event
            yield _END
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    def _stream_call(self, request: dict[str, Any]) -> dict[str, Any]:
        """The SDK's arguments for a stream; the core bounds the wait for the first event
        by ``timeout`` and each next one by ``stream_idle_timeout``, so the SDK's own
        per-read timeout must not be the shorter of the two."""
        import math

        call = _stream_call(request)
        if self.stream_idle_timeout > self.timeout:
            http_options = {"timeout": max(1, math.ceil(self.stream_idle_timeout * 1000))}
            call["config"] = {**(call["config"] or {}), "http_options": http_options}
        return call

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """One SDK event; a block is raised only after the text that came with it."""
        if event is _END:
            blocked = stream.state.pop("blocked", None)
            if blocked is not None:
                raise blocked
            return None
        try:
            payload = event.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude={"sdk_http_response"}
            )
        except Exception as exc:  # pydantic refuses to dump what it validated: unusable
            raise ResponseParseError(f"Gemini's stream event cannot be read: {exc}") from None
        parsed = _Reply(payload)
        thinking, block_fields = (
            _stream_parts(parsed.parts, stream) if parsed.special else ("", None)
        )
        structured_model = stream.request.get(_STRUCTURED)
        # As in a call: a turn of tool calls only has no answer to validate yet.
        calls_only = stream.state.get("calls") and not (stream.text or parsed.text)
        stream.structured_model = None if calls_only else structured_model
        if parsed.candidate is not None and (
            parsed.finish_reason in BLOCKED_FINISH_REASONS
            or parsed.finish_reason in TOOL_FAILURE_FINISH_REASONS
        ):
            if parsed.finish_reason in BLOCKED_FINISH_REASONS:
                error = _blocked(parsed.candidate, parsed.finish_reason, partial_text=None)
            else:
                error = _tool_failure(parsed.candidate, parsed.finish_reason, partial_text=None)
            if not parsed.text and not thinking:
                raise error
            stream.state["blocked"] = error
            return ModelChunk(
                text=parsed.text,
                raw=payload,
                model_name=parsed.model_name,
                thinking=thinking,
                block_fields=block_fields,
            )
        return ModelChunk(
            text=parsed.text,
            raw=payload,
            usage=parsed.usage,
            model_name=parsed.model_name or self.model_name,
            finish_reason=parsed.finish_reason,
            thinking=thinking,
            block_fields=block_fields,
        )

    def _split(self, prompt: Prompt) -> tuple[list[Any], Any]:
        """Contents and system instruction of what ``format`` returned (or a str / contents)."""
        if isinstance(prompt, Msg) or (
            isinstance(prompt, list) and prompt and all(isinstance(m, Msg) for m in prompt)
        ):
            prompt = self.format(prompt)
        if isinstance(prompt, str):
            return [{"role": "user", "parts": [{"text": prompt}]}], None
        if isinstance(prompt, dict) and "contents" in prompt:
            contents, system_instruction = prompt["contents"], prompt.get("system_instruction")
        elif isinstance(prompt, list):
            contents, system_instruction = prompt, None
        else:
            raise BadRequestError(
                f"{self.model_type} takes model.format(...)'s result, a list of Gemini"
                f" contents or a string, not {type(prompt).__name__}"
            )
        if not contents:
            raise BadRequestError(
                "nothing to send: Gemini needs at least one user or assistant message"
            )
        return list(contents), system_instruction


def _sdk_call(request: dict[str, Any]) -> dict[str, Any]:
    """The SDK's arguments for a call (no ``config`` when it sets nothing: the SDK
    converts any config it is given)."""
    return {
        "model": request["model"],
        "contents": request["contents"],
        "config": request["config"] or None,
    }


def _stream_call(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": request["model"],
        "contents": request["contents"],
        "config": request["config"] or None,
    }


#: Call arguments modelwire reads itself; what they become is sent, never they.
_AGENT_ARGS = ("tools", "tool_choice", "structured_model")

#: The request key holding the call's ``structured_model``; never sent.
_STRUCTURED = "structured_model"

#: The keys of Gemini's own tools (``types.Tool``), snake_case and camelCase: such a
#: dict in ``tools`` is sent as it is (and validated by the SDK before sending).
_GEMINI_TOOL_KEYS = frozenset(
    {
        "code_execution",
        "computer_use",
        "enterprise_web_search",
        "exa_ai_search",
        "file_search",
        "function_declarations",
        "google_maps",
        "google_search",
        "google_search_retrieval",
        "mcp_servers",
        "parallel_ai_search",
        "retrieval",
        "url_context",
        "codeExecution",
        "computerUse",
        "enterpriseWebSearch",
        "exaAiSearch",
        "fileSearch",
        "functionDeclarations",
        "googleMaps",
        "googleSearch",
        "googleSearchRetrieval",
        "mcpServers",
        "parallelAiSearch",
        "urlContext",
    }
)

#: modelwire's tool choices as Gemini's ``function_calling_config`` modes.
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def _agent_config(config: dict[str, Any]) -> Any:
    """Turn ``tools``/``tool_choice``/``structured_model`` in ``config`` into Gemini's
    ``tools``, ``tool_config`` and JSON response schema, in place; returns the
    structured model (``BadRequestError`` for anything that cannot be sent)."""
    tools = config.pop("tools", None)
    choice = config.pop("tool_choice", None)
    structured_model = config.pop(_STRUCTURED, None)
    wire_tools, names = _wire_tools(tools) if tools is not None else ([], [])
    if wire_tools:  # an empty list is not sent
        config["tools"] = wire_tools
    if choice is not None:
        config["tool_config"] = {"function_calling_config": _calling_config(choice, names)}
    if structured_model is not None:
        for key in ("response_schema", "response_json_schema"):
            if config.get(key) is not None:
                raise BadRequestError(
                    f"give `structured_model` or `{key}`, not both:"
                    " structured_model sets the response schema"
                )
        if config.get("response_mime_type") not in (None, "application/json"):
            raise BadRequestError(
                "`structured_model` needs response_mime_type 'application/json',"
                f" not {config['response_mime_type']!r}"
            )
        _, schema = structured_schema(structured_model)
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = schema
    return structured_model


def _wire_tools(tools: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Gemini's ``tools`` (one ``function_declarations`` tool for modelwire's tools,
    then Gemini's own tool dicts as given) and the names of the functions declared."""
    if isinstance(tools, Iterable) and not isinstance(tools, (str, bytes, Mapping)):
        tools = list(tools)
    else:
        normalize_tools(tools)  # raises the core's message for a non-list
    native = [tool for tool in tools if _is_gemini_tool(tool)]
    specs = normalize_tools([tool for tool in tools if not _is_gemini_tool(tool)])
    declarations = []
    for spec in specs:
        declaration: dict[str, Any] = {"name": spec["name"]}
        if spec["description"]:
            declaration["description"] = spec["description"]
        parameters = spec["parameters"]
        if parameters.get("properties") or set(parameters) - {"type", "properties"}:
            declaration["parameters_json_schema"] = parameters  # none: a call without arguments
        declarations.append(declaration)
    names = [spec["name"] for spec in specs]
    for tool in native:
        for declaration in (
            tool.get("function_declarations") or tool.get("functionDeclarations") or ()
        ):
            name = declaration.get("name") if isinstance(declaration, Mapping) else None
            if not isinstance(name, str) or not name:
                raise BadRequestError(
                    f"Gemini function declaration {declaration!r} has no name"[:200]
                )
            names.append(name)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BadRequestError(f"two tools are named {twice[0]!r}: tool names must differ")
    wire = [{"function_declarations": declarations}] if declarations else []
    return wire + [dict(tool) for tool in native], names


def _is_gemini_tool(tool: Any) -> bool:
    return isinstance(tool, Mapping) and bool(tool) and tool.keys() <= _GEMINI_TOOL_KEYS


def _calling_config(choice: Any, names: list[str]) -> dict[str, Any]:
    """``auto``/``none``/``required`` as ``AUTO``/``NONE``/``ANY``; a tool's name as
    ``ANY`` limited to it; Gemini's own ``function_calling_config`` dict as given."""
    if isinstance(choice, Mapping):
        return dict(choice)
    choice = check_tool_choice(choice, names)
    if choice in _MODES:
        return {"mode": _MODES[choice]}
    return {"mode": "ANY", "allowed_function_names": [choice]}


def _plain_text(contents: list[Any]) -> bool:
    """Whether every content is ``{"role": str, "parts": [{"text": str}, ...]}``.

    ``format()`` makes exactly that for text messages, and ``types.Content`` accepts
    it, so only other shapes are validated before sending.
    """
    for content in contents:
        if type(content) is not dict or content.keys() != {"role", "parts"}:
            return False
        parts = content["parts"]
        if type(content["role"]) is not str or type(parts) is not list:
            return False
        for part in parts:
            if type(part) is not dict or part.keys() != {"text"} or type(part["text"]) is not str:
                return False
    return True


def _parts(msg: Msg) -> list[dict[str, Any]]:
    blocks = blocks_of(msg.content)
    if blocks:
        parts = _block_parts(msg, blocks)
    elif msg.role == "tool":
        parts = [_tool_message_part(msg)]
    else:
        text = text_of(msg.content)
        parts = [{"text": text}] if text or not msg.urls else []
    parts += [_media_part(url) for url in msg.urls]
    return parts or [{"text": ""}]  # Gemini refuses a turn without parts


def _block_parts(msg: Msg, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A message's blocks as Gemini parts, in order; a signature goes back in its part."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            part: dict[str, Any] = {"text": block.get("text") or ""}
        elif kind == "image":
            part = _image_part(block)
        elif kind == "tool_use":
            if not isinstance(block.get("name"), str) or not block["name"]:
                raise BadRequestError(f"tool_use block {block.get('id')!r} has no name")
            call = {"name": block["name"], "args": dict(block.get("input") or {})}
            if block.get("id"):
                call["id"] = block["id"]
            part = {"function_call": call}
        elif kind == "tool_result":
            parts.append(_function_response(block))
            parts += [
                _image_part(b) for b in blocks_of(block.get("output")) if b["type"] == "image"
            ]
            continue
        elif kind == "thinking" and msg.role == "assistant":
            part = {"text": block.get("thinking") or "", "thought": True}
        else:  # thinking of other turns is not the model's: not sent
            continue
        signature = block.get("signature")
        if isinstance(signature, str) and signature:
            part["thought_signature"] = signature
        if part.keys() == {"text"} and not part["text"]:
            continue
        parts.append(part)
    return parts


def _function_response(block: Mapping[str, Any]) -> dict[str, Any]:
    """Gemini's documented shape: ``{"name", "response": {"output": ...}}``; JSON
    objects and arrays (what ``tool_result`` makes of non-text output) go as JSON."""
    output = text_of(block.get("output"))
    value: Any = output
    if output[:1] in ("{", "["):
        try:
            value = json.loads(output)
        except ValueError:
            value = output
    response: dict[str, Any] = {"name": block.get("name") or "", "response": {"output": value}}
    if block.get("id"):
        response["id"] = block["id"]
    if not response["name"]:
        raise BadRequestError(
            f"tool_result {block.get('id')!r} has no name: Gemini matches results to calls"
            " by name (build results with modelwire.tool_result(call, output))"
        )
    return {"function_response": response}


def _tool_message_part(msg: Msg) -> dict[str, Any]:
    """A ``role="tool"`` message with plain text content, named by its metadata."""
    metadata = msg.metadata or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequestError(
            "a tool message needs tool_result blocks (modelwire.tool_result(call, output))"
            " or metadata={'name': <the tool's name>}"
        )
    block = {"type": "tool_result", "id": metadata.get("tool_call_id"), "name": name}
    return _function_response({**block, "output": text_of(msg.content)})


def _image_part(block: Mapping[str, Any]) -> dict[str, Any]:
    """An image block: web and ``gs://`` URLs as ``file_data``, the rest inline."""
    source = block.get("source")
    url = source.get("url") if isinstance(source, Mapping) else None
    if isinstance(url, str) and "://" in url and not url.startswith("file://"):
        return _media_part(url, default_type="image/png")
    media = image_media(block)
    return {"inline_data": {"mime_type": media.mime_type or "image/png", "data": media.data}}


def _media_part(url: str, default_type: str = "application/octet-stream") -> dict[str, Any]:
    """Remote files by URI (``file_data``: http(s), ``gs://``); local files and data URLs inline."""
    if "://" in url and not url.startswith("file://"):
        import mimetypes

        mime_type = mimetypes.guess_type(url)[0] or default_type
        return {"file_data": {"file_uri": url, "mime_type": mime_type}}
    media = read_media(url)
    return {
        "inline_data": {
            "mime_type": media.mime_type or "application/octet-stream",
            "data": media.data,
        }
    }


class _Reply:
    """What modelwire reads of one ``GenerateContentResponse`` JSON (camelCase, as sent).

    ``special`` tells whether a part is more than ``{"text": ...}`` (a function call,
    a thought, a signature): only then are the parts read again, into blocks.
    """

    __slots__ = ("candidate", "finish_reason", "model_name", "parts", "special", "text", "usage")

    def __init__(self, payload: Any) -> None:
        if not isinstance(payload, Mapping):
            raise ResponseParseError(
                f"Gemini's reply is a JSON {type(payload).__name__}, not an object"
            )
        _check_prompt(payload.get("promptFeedback"))
        candidates = payload.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if candidate is not None and not isinstance(candidate, Mapping):
            raise ResponseParseError("Gemini's reply has a candidate that is not an object")
        self.candidate = candidate
        self.parts = _candidate_parts(candidate) if candidate is not None else []
        self.text, self.special = _text(self.parts)
        reason = candidate.get("finishReason") if candidate is not None else None
        self.finish_reason = str(reason) if reason else None
        version = payload.get("modelVersion")
        self.model_name = version if isinstance(version, str) and version else None
        self.usage = _usage(payload.get("usageMetadata"))


def _candidate_parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if parts is None:
        return []
    if not isinstance(parts, list):
        raise ResponseParseError("Gemini's reply has candidate parts that are not a list")
    for part in parts:
        if not isinstance(part, Mapping):
            raise ResponseParseError("Gemini's reply has a part that is not an object")
    return parts


def _text(parts: list[Mapping[str, Any]]) -> tuple[str, bool]:
    """The answer's text parts (thought summaries are not part of the answer), and
    whether any part is more than text."""
    texts = []
    special = False
    for part in parts:
        text = part.get("text")
        if len(part) != 1 or text is None:
            special = True
            if part.get("thought"):
                continue
        if text:
            if not isinstance(text, str):
                raise ResponseParseError("Gemini's reply has a text part that is not a string")
            texts.append(text)
    return "".join(texts), special


def _signature(part: Mapping[str, Any]) -> str | None:
    signature = part.get("thoughtSignature")
    if signature is None or signature == "":
        return None
    if not isinstance(signature, str):
        raise ResponseParseError("Gemini's reply has a thought signature that is not a string")
    return signature


def _blocks(parts: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A reply's parts as blocks, in order: thought parts as ``thinking``, text parts as
    ``text``, function calls as ``tool_use``; each part's signature stays in its block
    (neighbouring parts of one kind merge unless one of them carries a signature).
    Other parts (inline data, executable code...) stay in ``raw``."""
    blocks: list[dict[str, Any]] = []
    calls = 0
    for part in parts:
        signature = _signature(part)
        if "functionCall" in part:
            blocks.append(_tool_use(part["functionCall"], calls, signature))
            calls += 1
            continue
        text = part.get("text")
        if text is None or (text == "" and signature is None):
            continue
        if not isinstance(text, str):
            raise ResponseParseError("Gemini's reply has a text part that is not a string")
        kind = "thinking" if part.get("thought") else "text"
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and last["type"] == kind
            and signature is None
            and "signature" not in last
        ):
            last[kind] += text
            continue
        block: dict[str, Any] = {"type": kind, kind: text}
        if signature is not None:
            block["signature"] = signature
        blocks.append(block)
    return blocks


def _call_fields(call: Any, position: int) -> tuple[str, str]:
    """A function call's name and id (``call_<n>`` when Gemini gives none, as in streams)."""
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or not call["name"]:
        raise ResponseParseError(
            f"Gemini's reply has a function call without a name: {call!r}"[:300]
        )
    call_id = call.get("id")
    return call["name"], call_id if isinstance(call_id, str) and call_id else f"call_{position}"


def _tool_use(call: Any, position: int, signature: str | None) -> dict[str, Any]:
    name, call_id = _call_fields(call, position)
    arguments = parse_tool_arguments(call.get("args"), name=name, call_id=call_id)
    block: dict[str, Any] = {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
    if signature is not None:
        block["signature"] = signature
    return block


def _stream_parts(
    parts: list[Mapping[str, Any]], stream: Stream
) -> tuple[str, dict[str, dict[str, Any]] | None]:
    """A stream event's function calls, handed to the stream (each arrives whole, with
    its arguments as an object); returns the event's thought text, and the signature of
    a text or thought part as ``block_fields`` (kept on that block of the response)."""
    thinking = []
    fields: dict[str, dict[str, Any]] = {}
    for part in parts:
        if "functionCall" in part:
            position = stream.state.get("calls", 0)
            stream.state["calls"] = position + 1
            name, call_id = _call_fields(part["functionCall"], position)
            # The SDK validated the event: the arguments are an object, or absent.
            arguments = part["functionCall"].get("args") or {}
            signature = _signature(part)
            stream.tool_call_delta(
                index=position,
                id=call_id,
                name=name,
                arguments=arguments,
                extra={"signature": signature} if signature is not None else None,
            )
        else:
            is_thought = bool(part.get("thought"))
            if is_thought and isinstance(part.get("text"), str):
                thinking.append(part["text"])
            signature = _signature(part)
            if signature is not None:
                fields["thinking" if is_thought else "text"] = {"signature": signature}
    return "".join(thinking), fields or None


def _usage(metadata: Any) -> Usage | None:
    """Thinking tokens are billed as output, tool-use prompt tokens as input."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ResponseParseError("Gemini's usageMetadata is not an object")
    try:  # Usage.of checks each count; its total adds the two it is given
        prompt = Usage.of(metadata.get("promptTokenCount"), metadata.get("toolUsePromptTokenCount"))
        completion = Usage.of(
            metadata.get("candidatesTokenCount"), metadata.get("thoughtsTokenCount")
        )
        cached = metadata.get("cachedContentTokenCount")
        thoughts = metadata.get("thoughtsTokenCount")
        return Usage.of(
            prompt.total_tokens,
            completion.total_tokens,
            reasoning_tokens=thoughts,
            cached_tokens=cached,
        )
    except ValueError as exc:
        raise ResponseParseError(f"Gemini reported impossible token counts: {exc}") from None


def _ratings(ratings: Any) -> list[dict[str, Any]]:
    if not isinstance(ratings, list):
        return []
    return [dict(rating) for rating in ratings if isinstance(rating, Mapping)]


def _flagged(ratings: list[dict[str, Any]]) -> str:
    flagged = [
        f"{r.get('category', '?')} ({r.get('probability', '?')})"
        for r in ratings
        if r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH")
    ]
    return f"; flagged: {', '.join(flagged)}" if flagged else ""


def _check_prompt(feedback: Any) -> None:
    if not isinstance(feedback, Mapping):
        return
    reason = feedback.get("blockReason")
    if not reason or reason == "BLOCKED_REASON_UNSPECIFIED":
        return
    ratings = _ratings(feedback.get("safetyRatings"))
    message = feedback.get("blockReasonMessage")
    detail = f": {message}" if message else ""
    raise BlockedResponseError(
        f"Gemini refused the prompt (block reason {reason}){detail}{_flagged(ratings)}",
        finish_reason=str(reason),
        blocked="prompt",
        safety_ratings=ratings,
    )


def _blocked(
    candidate: Mapping[str, Any], finish_reason: str, *, partial_text: str | None
) -> BlockedResponseError:
    ratings = _ratings(candidate.get("safetyRatings"))
    message = candidate.get("finishMessage")
    detail = f": {message}" if message else ""
    return BlockedResponseError(
        f"Gemini withheld the response (finish reason {finish_reason}){detail}{_flagged(ratings)}",
        finish_reason=finish_reason,
        blocked="response",
        safety_ratings=ratings,
        partial_text=partial_text,
    )


def _tool_failure(
    candidate: Mapping[str, Any], finish_reason: str, *, partial_text: str | None
) -> ResponseParseError:
    """A failed tool call as an error carrying Gemini's ``finishMessage`` (often the
    model's broken call itself), never a reply without text or calls."""
    message = candidate.get("finishMessage")
    detail = f": {message}" if isinstance(message, str) and message else ""
    error = ResponseParseError(
        f"{TOOL_FAILURE_FINISH_REASONS[finish_reason]} (finish reason {finish_reason}){detail}",
        partial_text=partial_text or None,
    )
    error.finish_reason = finish_reason  # type: ignore[attr-defined]
    error.finish_message = message if isinstance(message, str) else None  # type: ignore[attr-defined]
    return error
