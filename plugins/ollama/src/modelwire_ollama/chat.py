"""``ollama_chat``: a conversation with a local model through ``/api/chat``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from modelwire import (
    AGENT_ARGUMENTS,
    BadRequestError,
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    Stream,
    blocks_of,
    check_tool_choice,
    image_media,
    iter_msgs,
    normalize_tools,
    parse_tool_arguments,
    text_of,
    thinking_of,
)
from modelwire_ollama.client import (
    OllamaWrapper,
    OutputFormat,
    images_of,
    parsed_of,
    put_structured,
    reply_fields,
)

__all__ = ["OllamaChatArgs", "OllamaChatWrapper"]


class OllamaChatArgs(TypedDict, total=False):
    """What ``generate_args`` may hold: arguments every call gets (a call's own win)."""

    tools: list[Any]
    tool_choice: str
    structured_model: Any
    #: ``True``/``False``, or a level (``"low"``, ``"medium"``, ``"high"``) for models that
    #: take one; passed through, so the server judges the level.
    think: bool | str


#: The per-call arguments ``ollama_chat`` takes, besides the messages.
CALL_ARGS = tuple(OllamaChatArgs.__annotations__)


class OllamaChatWrapper(OllamaWrapper):
    """Chat with an Ollama model. Adds the config keys ``format`` and ``generate_args``.

    Call it with ``model.format(*msgs)`` and, per call or in ``generate_args``,
    ``tools``, ``tool_choice`` (``"auto"`` or ``"none"``: Ollama cannot force a
    tool), ``structured_model`` (sent as Ollama's ``format`` schema, the reply
    validated into ``response.parsed``) and ``think``.
    """

    model_type = "ollama_chat"
    agent_arguments = AGENT_ARGUMENTS
    _method = "chat"
    _call_arg_names = CALL_ARGS

    def __init__(
        self,
        config_name: str,
        *,
        format: OutputFormat | None = None,
        generate_args: OllamaChatArgs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        # Not ``self.format``: that name is the method turning Msgs into messages.
        self.output_format = format
        self.generate_args: dict[str, Any] = dict(generate_args or {})

    @classmethod
    def _put_call_args(cls, request: dict[str, Any], args: dict[str, Any]) -> None:
        _call_args(request, args)

    # -- input --------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        """Ollama messages: a ``Msg``'s ``url``s and image blocks become the message's
        base64 ``images``; ``tool_use`` blocks its ``tool_calls`` (arguments as
        objects), thinking blocks of an assistant its ``thinking``; each
        ``tool_result`` block a ``role: "tool"`` message with its ``tool_name``."""
        messages = []
        calls: dict[str, str] = {}  # the latest tool call of each id: its tool's name
        for msg in iter_msgs(*args):
            blocks = blocks_of(msg.content)
            if not blocks and msg.role != "tool":  # plain text: the common case, kept cheap
                message: dict[str, Any] = {"role": msg.role, "content": text_of(msg.content)}
                if msg.urls:
                    message["images"] = images_of(msg.urls)
                messages.append(message)
                continue
            results = [block for block in blocks if block["type"] == "tool_result"]
            if results or msg.role == "tool":
                messages += _tool_messages(msg, results, calls)
                continue
            calls.update(
                (block["id"], block["name"]) for block in blocks if block["type"] == "tool_use"
            )
            messages.append(_message(msg, blocks))
        return messages

    # -- the provider step -----------------------------------------------------------
    def _request(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        request = {**self._common(), "messages": messages, "format": self.output_format}
        if kwargs or self.generate_args:  # tools and schemas cost only the calls using them
            _call_args(request, {**self.generate_args, **kwargs} if self.generate_args else kwargs)
        return request

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        """Text, thinking and tool calls of the reply, and ``parsed`` when the call
        gave a ``structured_model``."""
        try:
            message = reply.message
            text = message.content or ""
            calls = _tool_calls(message.tool_calls) if message.tool_calls else None
            fields = reply_fields(reply, self.model_name)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"Ollama's reply does not have the expected shape: {exc}"
            ) from exc
        return ModelResponse(
            text=text,
            tool_calls=calls,
            thinking=message.thinking or None,
            parsed=parsed_of(text, request),
            **fields,
        )

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """One NDJSON line: a text or thinking delta, or complete tool calls (Ollama
        sends each call whole, in one line; several lines may bring several)."""
        chunk = super()._parse_chunk(event, stream)
        message = event.message
        if message.thinking:
            chunk.thinking = message.thinking
        for call in message.tool_calls or ():
            count = stream.state.get("tool_calls", 0)
            stream.state["tool_calls"] = count + 1
            stream.tool_call_delta(
                index=count, name=call.function.name, arguments=call.function.arguments
            )
        return chunk

    def _text(self, reply: Any) -> str | None:
        return reply.message.content


# -- per-call arguments ------------------------------------------------------------------
def _call_args(request: dict[str, Any], args: dict[str, Any]) -> None:
    """``tools``, ``tool_choice``, ``structured_model`` and ``think`` put into
    ``request`` as Ollama takes them; ``BadRequestError`` for what it cannot take."""
    unknown = [key for key in args if key not in CALL_ARGS]
    if unknown:
        raise TypeError(
            f"ollama_chat takes no argument {unknown[0]!r} (it takes the messages and"
            f" {', '.join(CALL_ARGS)})"
        )
    tools = _wire_tools(args["tools"]) if args.get("tools") is not None else []
    choice = args.get("tool_choice")
    if choice is not None:
        choice = check_tool_choice(choice, [tool["function"]["name"] for tool in tools])
        if choice not in ("auto", "none"):
            raise BadRequestError(
                f"tool_choice {choice!r}: Ollama cannot force a tool call (its API has no"
                " tool_choice); use 'auto', or 'none' to send no tools"
            )
    if tools and choice != "none":
        request["tools"] = tools
    think = args.get("think")
    if think is not None:
        if not isinstance(think, (bool, str)):
            raise BadRequestError(
                f"think must be true, false or a level such as 'high', not {think!r}"[:200]
            )
        request["think"] = think
    structured_model = args.get("structured_model")
    if structured_model is not None:
        put_structured(request, structured_model)


# -- tools -------------------------------------------------------------------------------
def _wire_tools(tools: Any) -> list[dict[str, Any]]:
    """Ollama's tools (OpenAI-style function dicts), with parameters the SDK keeps."""
    if isinstance(tools, Iterable) and not isinstance(tools, (str, bytes, Mapping)):
        tools = list(tools)
    wire = []
    for spec in normalize_tools(tools):
        function: dict[str, Any] = {
            "name": spec["name"],
            "parameters": _ollama_parameters(spec["name"], spec["parameters"]),
        }
        if spec["description"]:
            function["description"] = spec["description"]
        wire.append({"type": "function", "function": function})
    return wire


def _ollama_parameters(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameters as Ollama's tool schema can hold them.

    Ollama (server and SDK) keeps, per parameter, only ``type``, ``items``,
    ``description`` and ``enum``: a local ``$ref`` is replaced by what it names and
    an ``anyOf`` of plain types (``str | None``) becomes a list of types, so that
    they are not sent as ``{}``. A schema the SDK would refuse is refused here,
    naming the tool, before anything is sent.
    """
    kind = parameters.get("type", "object")
    if kind != "object":
        raise BadRequestError(
            f"tool {name!r}: Ollama takes parameters of type 'object' only, not {kind!r}"
        )
    properties = parameters.get("properties")
    if properties is None:
        return parameters
    if not isinstance(properties, Mapping):
        raise BadRequestError(f"tool {name!r}: `properties` must be an object")
    shaped = {}
    for key, schema in properties.items():
        if not isinstance(schema, Mapping):
            raise BadRequestError(f"tool {name!r}, parameter {key!r}: not a JSON schema")
        schema = _dereferenced(schema, parameters)
        if "type" not in schema:
            types = _plain_types(schema.get("anyOf") or schema.get("oneOf"))
            if types:
                schema = {**schema, "type": types}
        kind = schema.get("type")
        if kind is not None and not (
            isinstance(kind, str)
            or (isinstance(kind, list) and all(isinstance(k, str) for k in kind))
        ):
            raise BadRequestError(
                f"tool {name!r}, parameter {key!r}: `type` must be a string or a list of them"
            )
        shaped[key] = schema
    return {**parameters, "properties": shaped}


def _dereferenced(schema: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not (isinstance(ref, str) and ref.startswith("#/")):
        return dict(schema)
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part) if isinstance(target, Mapping) else None
    if not isinstance(target, Mapping):
        return dict(schema)
    merged = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
    return merged


def _plain_types(options: Any) -> list[str] | None:
    if not isinstance(options, list) or not options:
        return None
    types = [option.get("type") for option in options if isinstance(option, Mapping)]
    if len(types) != len(options) or not all(isinstance(kind, str) for kind in types):
        return None
    return types


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    """A reply's tool calls as ``tool_use`` blocks. Ollama gives them no ids (the SDK
    keeps none): they are numbered ``call_0``, ``call_1``... in the reply's order."""
    blocks = []
    for position, call in enumerate(calls):
        call_id = f"call_{position}"
        name = call.function.name
        arguments = parse_tool_arguments(call.function.arguments, name=name, call_id=call_id)
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


# -- messages ----------------------------------------------------------------------------
def _message(msg: Msg, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A message with content blocks: text, images, tool calls and thinking."""
    message: dict[str, Any] = {"role": msg.role, "content": text_of(msg.content)}
    images = [_image(block) for block in blocks if block["type"] == "image"]
    if msg.urls:
        images += images_of(msg.urls)
    if images:
        message["images"] = images
    calls = [block for block in blocks if block["type"] == "tool_use"]
    if calls:
        message["tool_calls"] = [
            {"function": {"name": call["name"], "arguments": dict(call.get("input") or {})}}
            for call in calls
        ]
    if msg.role == "assistant":
        thinking = thinking_of(blocks)
        if thinking:
            message["thinking"] = thinking
    return message


def _tool_messages(
    msg: Msg, results: list[dict[str, Any]], calls: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One ``role: "tool"`` message per result, named by ``tool_name``.

    Ollama matches results to calls by that name (and order); it has no call ids. So a
    result whose ``name`` is not the tool of the call its ``id`` answers (``calls``: the
    calls formatted before it) is refused rather than sent as another tool's answer.
    """
    if not results:
        message: dict[str, Any] = {"role": "tool", "content": text_of(msg.content)}
        tool_name = (msg.metadata or {}).get("tool_name")
        if isinstance(tool_name, str):
            message["tool_name"] = tool_name
        return [message]
    messages = []
    for result in results:
        called = calls.get(result["id"])
        if called is not None and called != result["name"]:
            raise BadRequestError(
                f"tool_result {result['id']!r} names the tool {result['name']!r}, but call"
                f" {result['id']!r} is a call of {called!r}: Ollama matches results to calls"
                " by tool name, so build results with tool_result(call, output)"
            )
        output = result.get("output")
        message = {"role": "tool", "content": text_of(output), "tool_name": result["name"]}
        images = [_image(block) for block in blocks_of(output) if block["type"] == "image"]
        if images:
            message["images"] = images
        messages.append(message)
    return messages


def _image(block: Mapping[str, Any]) -> str:
    """An image block as the base64 Ollama takes; it never fetches a URL, nor does
    modelwire, so a web URL is refused."""
    try:
        return image_media(block).base64
    except (ValueError, OSError) as exc:
        raise BadRequestError(
            f"Ollama takes images as base64, local files or data: URLs, not this one: {exc}"
        ) from exc
