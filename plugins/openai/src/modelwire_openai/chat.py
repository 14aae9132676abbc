"""``openai`` / ``openai_chat``: chat completions on OpenAI or any OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

from modelwire import (
    AGENT_ARGUMENTS,
    BadRequestError,
    ConfigIssue,
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    Stream,
    blocks_of,
    check_tool_choice,
    data_url,
    function_tool_call,
    function_tool_messages,
    function_tools,
    image_url,
    iter_msgs,
    parse_structured,
    reasoning_text,
    structured_schema,
    text_of,
    thinking_of,
    tool_use_blocks,
)
from modelwire_openai.client import OpenAIWrapper, body_of, payload_of, usage_of
from modelwire_openai.pricing import CHAT_PRICES

__all__ = ["OpenAIChatWrapper"]


def _logger() -> Any:
    import logging  # only to warn about images a model cannot take

    return logging.getLogger("modelwire.openai")


#: OpenAI models known to refuse image input; images sent to them are left out.
#: Any other name (newer OpenAI models, models behind a compatible server) gets them.
_TEXT_ONLY = ("gpt-3.5", "gpt-4-0", "gpt-4-32k", "gpt-4-1106-preview", "o1-mini", "o1-preview")
_TEXT_ONLY_EXACT = ("gpt-4", "o3-mini")

#: Characters OpenAI refuses in a message's ``name`` (compiled on first use, by ``re``).
_NAME_FORBIDDEN = r"[\s<|\\/>]+"


class OpenAIChatWrapper(OpenAIWrapper):
    """Chat completions: ``model(model.format(msgs), **generate_args)`` -> text.

    ``generate_args`` go into every request and a call's kwargs override them.
    ``tools``, ``tool_choice`` and ``structured_model`` (per call or in
    ``generate_args``) become OpenAI's ``tools``, ``tool_choice`` and a strict
    ``json_schema`` ``response_format``; the reply's tool calls are in
    ``response.tool_calls`` (and, as the service sent them, in ``extra["tool_calls"]``),
    its ``reasoning_content`` (DeepSeek, Qwen, vLLM) in ``response.thinking``.

    ``send_reasoning`` (default ``True``): ``format()`` sends an assistant message's
    thinking blocks back as ``reasoning_content`` when that message carries tool calls,
    as DeepSeek's thinking mode requires (it refuses the next request without them);
    ``False`` for a server that refuses the field. Thinking is never sent on other
    messages.
    """

    model_type = "openai"
    pricing_table = CHAT_PRICES
    reserved_args: ClassVar[tuple[str, ...]] = ("model", "messages", "stream")
    agent_arguments = AGENT_ARGUMENTS

    def __init__(self, config_name: str, *, send_reasoning: bool = True, **kwargs: Any) -> None:
        super().__init__(config_name, **kwargs)
        self.send_reasoning = send_reasoning

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Tools, a tool choice and a structured model in ``generate_args`` are checked
        at load, like every other key: a bad one fails the config, not its first call."""
        issues = super().validate_params(params)
        generate_args = params.get("generate_args")
        if not isinstance(generate_args, Mapping):
            return issues
        try:
            tools = function_tools(generate_args.get("tools") or [])
            if generate_args.get("tool_choice") is not None:
                _wire_tool_choice(generate_args["tool_choice"], tools)
            if generate_args.get("structured_model") is not None:
                structured_schema(generate_args["structured_model"])
        except BadRequestError as exc:
            issues.append(ConfigIssue("?", "generate_args", exc.message))
        return issues

    # -- input --------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        """OpenAI messages: role, content and a sanitised ``name``; images for user
        messages; ``tool_use`` blocks as ``tool_calls`` and ``tool_result`` blocks as
        ``role: "tool"`` messages (images in a tool's output are left out, with a
        warning: OpenAI takes none there); the thinking of an assistant message with
        tool calls as its ``reasoning_content`` (see ``send_reasoning``), other thinking
        blocks not at all."""
        messages = []
        for msg in iter_msgs(*args):
            blocks = blocks_of(msg.content)
            results = [block for block in blocks if block["type"] == "tool_result"]
            if results or msg.role == "tool":
                messages += function_tool_messages(msg, results, config_name=self.config_name)
                continue
            message: dict[str, Any] = {"role": msg.role, "content": self._content(msg)}
            calls = [block for block in blocks if block["type"] == "tool_use"]
            if calls:
                message["tool_calls"] = [function_tool_call(call) for call in calls]
                if not message["content"]:
                    message["content"] = None
                reasoning = thinking_of(blocks) if self.send_reasoning else None
                if reasoning is not None and msg.role == "assistant":
                    message["reasoning_content"] = reasoning
            name = re.sub(_NAME_FORBIDDEN, "_", str(msg.name or "")).strip("_")[:64]
            if name:
                message["name"] = name
            messages.append(message)
        return messages

    @property
    def takes_images(self) -> bool:
        """Whether image parts are sent to this model (only known text-only models refuse)."""
        name = (self.model_name or "").lower()
        return not (name in _TEXT_ONLY_EXACT or name.startswith(_TEXT_ONLY))

    def _content(self, msg: Msg) -> str | list[dict[str, Any]]:
        text = text_of(msg.content)
        blocks = blocks_of(msg.content)
        images = [block for block in blocks if block["type"] == "image"]
        urls = msg.urls
        if not urls and not images:
            return text
        if msg.role != "user":
            _logger().warning(
                "%s: OpenAI takes images in user messages only; %d image(s) of a %s message"
                " were left out",
                self.config_name,
                len(urls) + len(images),
                msg.role,
            )
            return text
        if not self.takes_images:
            _logger().warning(
                "%s: model %r does not take images; %d image(s) were left out",
                self.config_name,
                self.model_name,
                len(urls) + len(images),
            )
            return text
        parts: list[dict[str, Any]] = []
        if blocks:
            for block in blocks:
                if block["type"] == "text" and block.get("text"):
                    parts.append({"type": "text", "text": block["text"]})
                elif block["type"] == "image":
                    parts.append({"type": "image_url", "image_url": {"url": image_url(block)}})
        elif text:
            parts.append({"type": "text", "text": text})
        parts += [{"type": "image_url", "image_url": {"url": data_url(url)}} for url in urls]
        return parts

    # -- the provider step -----------------------------------------------------------
    def _request(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        request = {"messages": messages, **self.call_args(kwargs)}
        tools = request.pop("tools", None)
        if tools is not None:
            wire_tools = function_tools(tools)
            if wire_tools:  # OpenAI refuses an empty list
                request["tools"] = wire_tools
        if request.get("tool_choice") is not None:
            request["tool_choice"] = _wire_tool_choice(request["tool_choice"], request.get("tools"))
        structured_model = request.pop("structured_model", None)
        if structured_model is not None:
            if request.get("response_format") is not None:
                raise BadRequestError(
                    "give `structured_model` or `response_format`, not both:"
                    " structured_model sets the response format"
                )
            name, schema = structured_schema(structured_model)
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": _strict(schema), "strict": True},
            }
            request[_STRUCTURED] = structured_model
        return request

    def _send(self, request: dict[str, Any]) -> Any:
        create = self.clients.sync.chat.completions.with_raw_response.create
        return create(model=self.model_name, **self.sdk_args(create, _plain(request)))

    async def _asend(self, request: dict[str, Any]) -> Any:
        create = self.clients.async_.chat.completions.with_raw_response.create
        return await create(model=self.model_name, **self.sdk_args(create, _plain(request)))

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        payload = body_of(reply)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ResponseParseError("the reply has no choices", body=_dump(payload))
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, Mapping):
            raise ResponseParseError("the reply's first choice has no message", body=_dump(payload))
        extra: dict[str, Any] = {}
        for key in ("tool_calls", "function_call"):
            if message.get(key):
                extra[key] = message[key]
        text = _reply_text(message.get("content"))
        structured_model = request.get(_STRUCTURED)
        parsed = None
        if structured_model is not None:
            if message.get("refusal"):
                raise ResponseParseError(
                    f"the model refused to answer in the schema: {message['refusal']}",
                    body=_dump(payload),
                )
            parsed = parse_structured(text, structured_model)
        return ModelResponse(
            text=text,
            raw=payload,
            usage=usage_of(payload),
            model_name=payload.get("model") or self.model_name,
            finish_reason=choice.get("finish_reason"),
            extra=extra,
            tool_calls=tool_use_blocks(message.get("tool_calls")),
            thinking=reasoning_text(message),
            parsed=parsed,
        )

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        create = self.clients.sync.chat.completions.create
        args = self.sdk_args(create, _streamed(request))
        with create(model=self.model_name, stream=True, **args) as stream:
            yield from stream

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        create = self.clients.async_.chat.completions.create
        args = self.sdk_args(create, _streamed(request))
        stream = await create(model=self.model_name, stream=True, **args)
        try:
            async for event in stream:
                yield event
        finally:
            await stream.close()

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """A chunk from one SDK stream event (its JSON, as the service sent it)."""
        payload = payload_of(event)
        text, thinking, finish_reason = "", "", None
        stream.structured_model = stream.request.get(_STRUCTURED)
        for choice in payload.get("choices") or ():
            if isinstance(choice, Mapping) and choice.get("index", 0) in (0, None):
                delta = choice.get("delta")
                if isinstance(delta, Mapping):
                    text = _reply_text(delta.get("content"))
                    thinking = reasoning_text(delta) or ""
                    for fragment in delta.get("tool_calls") or ():
                        _add_fragment(stream, fragment)
                finish_reason = choice.get("finish_reason")
        return ModelChunk(
            text=text,
            raw=payload,
            usage=usage_of(payload),
            model_name=payload.get("model") or self.model_name,
            finish_reason=finish_reason,
            thinking=thinking,
        )


#: The request key holding the call's ``structured_model``; never sent.
_STRUCTURED = "structured_model"


def _wire_tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> Any:
    """``"auto"``/``"none"``/``"required"``, or a tool's name as OpenAI's named choice."""
    if isinstance(choice, Mapping):  # OpenAI's own shape, passed through
        return dict(choice)
    choice = check_tool_choice(choice, [tool["function"]["name"] for tool in tools or ()])
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _strict(schema: Any) -> Any:
    """A schema as OpenAI's strict mode takes it: every object closed, every property
    required, no ``default: null`` (the reply is still validated against the original)."""
    if not isinstance(schema, Mapping):
        return schema
    strict = {
        key: value for key, value in schema.items() if not (key == "default" and value is None)
    }
    for key in ("properties", "$defs", "definitions"):
        if isinstance(strict.get(key), Mapping):
            strict[key] = {name: _strict(value) for name, value in strict[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(strict.get(key), Mapping):
            strict[key] = _strict(strict[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(strict.get(key), list):
            strict[key] = [_strict(value) for value in strict[key]]
    if strict.get("type") == "object" or "properties" in strict:
        strict["additionalProperties"] = False
        strict["required"] = list(strict.get("properties") or {})
    return strict


def _add_fragment(stream: Stream, fragment: Any) -> None:
    if not isinstance(fragment, Mapping):
        raise ResponseParseError(f"a tool-call fragment is {fragment!r}, not an object")
    function = fragment.get("function") or {}
    stream.tool_call_delta(
        index=fragment.get("index"),
        id=fragment.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments"),
    )


def _plain(request: dict[str, Any]) -> dict[str, Any]:
    """A plain call's arguments: ``stream_options`` in ``generate_args`` is for streams."""
    args = dict(request)
    args.pop("stream_options", None)
    args.pop(_STRUCTURED, None)
    return args


def _streamed(request: dict[str, Any]) -> dict[str, Any]:
    """A stream's arguments, asking for usage in its last event unless told otherwise."""
    args = dict(request)
    args.pop(_STRUCTURED, None)
    options = args.pop("stream_options", {})
    if options is not None:  # None: the server must not be sent stream_options at all
        args["stream_options"] = {"include_usage": True, **options}
    return args


def _reply_text(content: Any) -> str:
    """A message's text: a string, or the text parts some compatible servers send."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _dump(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)
