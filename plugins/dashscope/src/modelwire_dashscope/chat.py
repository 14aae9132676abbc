"""``dashscope_chat``: Qwen chat models over DashScope's native protocol.

Text models answer at the text-generation endpoint; vision/audio models at the
multimodal-generation endpoint, whose content is a list of parts (``{"image": url}``,
``{"text": ...}``). ``dashscope_multimodal`` (``multimodal.py``) is this wrapper with
the multimodal endpoint always on.

Tools, ``tool_choice`` and ``structured_model`` are DashScope's ``tools``,
``tool_choice`` and ``response_format`` parameters (``result_format: "message"``, which
the SDK always sets); they are worked out only for calls that give them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

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
    data_url,
    function_tool_call,
    function_tool_messages,
    function_tools,
    image_url,
    iter_msgs,
    parse_structured,
    parse_tool_arguments,
    structured_schema,
    text_of,
)
from modelwire_dashscope.client import DashScopeWrapper
from modelwire_dashscope.pricing import CHAT_PRICES

if TYPE_CHECKING:
    from dashscope.v2.types.common import Usage as SdkUsage
    from dashscope.v2.types.completions import ChatCompletion, ChatCompletionChunk

__all__ = ["DashScopeChatWrapper", "DashScopeConversationWrapper"]

Message = dict[str, Any]

#: Name fragments of models that only the multimodal-generation endpoint serves.
MULTIMODAL_MARKERS = ("-vl", "qvq", "omni", "-audio")
_VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".flv"})
_AUDIO_SUFFIXES = frozenset({".mp3", ".wav", ".m4a", ".flac", ".ogg", ".aac", ".amr"})

#: The request key holding the call's ``structured_model``; never sent.
_STRUCTURED = "structured_model"
#: The call arguments that need the tool/structured-output work (absent: none is done).
_AGENT_ARGS = ("tools", "tool_choice", "structured_model")


class DashScopeConversationWrapper(DashScopeWrapper):
    """What ``dashscope_chat`` and ``dashscope_multimodal`` share: message rules, tools,
    structured output, reasoning. ``multimodal`` says which endpoint a call goes to."""

    pricing_table = CHAT_PRICES
    agent_arguments = AGENT_ARGUMENTS
    multimodal: bool = False

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Tools, a tool choice and a structured model in ``generate_args`` are checked
        at load, like every other key: a bad one fails the config, not its first call."""
        issues = super().validate_params(params)
        generate_args = params.get("generate_args")
        if not isinstance(generate_args, Mapping) or not any(
            generate_args.get(key) is not None for key in _AGENT_ARGS
        ):
            return issues
        try:
            _agent_parameters(dict(generate_args), [])
        except BadRequestError as exc:
            issues.append(ConfigIssue("?", "generate_args", exc.message))
        return issues

    # -- input ------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> list[Message]:
        """DashScope messages: one leading system message, then alternating turns.

        System messages are merged into one at the front, consecutive user (or
        assistant) messages into one turn, and a conversation that opens with the
        assistant has that turn sent as the user's (DashScope rejects an assistant first
        turn). ``tool_use`` blocks become the assistant's ``tool_calls``, each
        ``tool_result`` block a ``role: "tool"`` message; thinking blocks are not sent
        back (DashScope does not take them). On the multimodal endpoint every content is
        a list of parts; images (``Msg.url``, image blocks) need it.
        """
        msgs = list(iter_msgs(*args))
        as_parts = self.multimodal or any(_is_parts(msg.content) for msg in msgs)
        system: list[Any] = []
        turns: list[Message] = []
        for msg in msgs:
            blocks = blocks_of(msg.content)
            results = [block for block in blocks if block["type"] == "tool_result"]
            if results or msg.role == "tool":
                turns += self._tool_messages(msg, results, as_parts)
                continue
            content = self._content(msg, blocks, as_parts)
            calls = [function_tool_call(block) for block in blocks if block["type"] == "tool_use"]
            if msg.role == "system":
                system.append(content)
                continue
            role = "user" if not turns and not calls else msg.role
            last = turns[-1] if turns else None
            if last is not None and last["role"] == role and role in ("user", "assistant"):
                last["content"] = _join([last["content"], content])
                if calls:
                    last["tool_calls"] = [*last.get("tool_calls", ()), *calls]
                continue
            turn: Message = {"role": role, "content": content}
            if calls:
                turn["tool_calls"] = calls
            turns.append(turn)
        if system:
            turns.insert(0, {"role": "system", "content": _join(system)})
        return turns

    def _content(
        self, msg: Msg, blocks: list[dict[str, Any]], as_parts: bool
    ) -> str | list[dict[str, Any]]:
        urls = msg.urls
        images = [block for block in blocks if block["type"] == "image"]
        if (urls or images) and not self.multimodal:
            raise self._text_only(len(urls) + len(images))
        if blocks:
            if not as_parts:
                return text_of(msg.content)
            parts = [_media_part(url) for url in urls]
            for block in blocks:
                if block["type"] == "text" and block.get("text"):
                    parts.append({"text": block["text"]})
                elif block["type"] == "image":
                    parts.append({"image": _image(block)})
            return parts
        if _is_parts(msg.content):
            parts = list(msg.content)
        else:
            text = text_of(msg.content)
            if not as_parts:
                return text
            parts = [{"text": text}] if text else []
        return [_media_part(url) for url in urls] + parts

    def _tool_messages(
        self, msg: Msg, results: list[dict[str, Any]], as_parts: bool
    ) -> list[Message]:
        """One ``role: "tool"`` message per result, each answering its call's id."""
        if not results:  # answered by the metadata's tool_call_id, as OpenAI's are
            (message,) = function_tool_messages(msg, [], config_name=self.config_name)
            if as_parts:
                message["content"] = [{"text": message["content"]}]
            return [message]
        messages = []
        for result in results:
            output = result.get("output")
            images = [block for block in blocks_of(output) if block["type"] == "image"]
            if images and not self.multimodal:
                raise self._text_only(len(images), f"tool result {result.get('id')!r}")
            content = text_of(output)
            if as_parts:
                content = [{"image": _image(block)} for block in images]
                content += [{"text": text_of(output)}]
            message = {"role": "tool", "content": content, "tool_call_id": result["id"]}
            if result.get("name"):
                message["name"] = result["name"]
            messages.append(message)
        return messages

    def _text_only(self, count: int, where: str = "the messages") -> BadRequestError:
        return BadRequestError(
            f"model {self.model_name!r} takes text only as model_type {self.model_type!r}:"
            f" {count} image/media item(s) in {where} cannot be sent; use model_type"
            " 'dashscope_multimodal' with a vision model (qwen-vl-...) for them",
            config_name=self.config_name,
            model_type=self.model_type,
        )

    def _resource(self, client: Any) -> Any:
        return client.multimodal.chat if self.multimodal else client.chat.completions

    # -- the provider step --------------------------------------------------------------
    def _request(self, messages: list[Message] | str, **kwargs: Any) -> dict[str, Any]:
        parameters = {**self.generate_args, **kwargs}
        request: dict[str, Any] = {"messages": messages, "parameters": parameters}
        if "tools" in parameters or "tool_choice" in parameters or _STRUCTURED in parameters:
            structured_model = _agent_parameters(parameters, messages)
            if structured_model is not None:
                request["messages"] = _with_schema(messages, parameters.pop(_SCHEMA_TEXT))
                request[_STRUCTURED] = structured_model
        return request

    def _send(self, request: dict[str, Any]) -> Any:
        return self._resource(self.clients.sync).create(
            model=self.model_name, messages=request["messages"], parameters=request["parameters"]
        )

    async def _asend(self, request: dict[str, Any]) -> Any:
        return await self._resource(self.clients.async_).create(
            model=self.model_name, messages=request["messages"], parameters=request["parameters"]
        )

    def _parse(self, reply: ChatCompletion, request: dict[str, Any]) -> ModelResponse:
        try:
            if not reply.choices:
                raise ResponseParseError(
                    "DashScope's reply holds no choices",
                    body=json.dumps(_dump(reply), ensure_ascii=False),
                )
            choice = reply.choices[0]
            message = choice.message
            text = message.content or ""
            calls = _tool_calls(message.tool_calls) if message.tool_calls else None
            structured_model = request.get(_STRUCTURED)
            return ModelResponse(
                text=text,
                raw=_dump(reply),
                usage=_usage(reply.usage),
                model_name=reply.model or self.model_name,
                finish_reason=_finish_reason(choice.finish_reason),
                tool_calls=calls,
                thinking=message.reasoning_content or None,
                parsed=None
                if structured_model is None
                else parse_structured(text, structured_model),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"DashScope's reply has an unexpected shape: {exc}") from exc

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        stream = self._resource(self.clients.sync).create(
            model=self.model_name, stream=True, **_streamed(request)
        )
        try:
            yield from stream
        finally:
            stream.close()

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        stream = await self._resource(self.clients.async_).create(
            model=self.model_name, stream=True, **_streamed(request)
        )
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()

    def _parse_chunk(self, event: ChatCompletionChunk, stream: Stream) -> ModelChunk | None:
        """One event; DashScope repeats the running usage on every event, so it is held
        in ``stream.state`` and passed on with the finishing event only. Tool-call
        fragments go to ``stream.tool_call_delta``, which assembles them."""
        try:
            usage = _usage(event.usage) or stream.state.get("usage")
            stream.state["usage"] = usage
            choice = event.choices[0] if event.choices else None
            text = thinking = ""
            finish_reason = None
            if choice is not None:
                delta = choice.delta
                text = delta.content or ""
                thinking = delta.reasoning_content or ""
                for fragment in delta.tool_calls or ():
                    function = fragment.function
                    stream.tool_call_delta(
                        index=fragment.index,
                        id=fragment.id or None,
                        name=function.name or None,
                        arguments=function.arguments or None,
                    )
                finish_reason = _finish_reason(choice.finish_reason)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"DashScope's stream event has an unexpected shape: {exc}"
            ) from exc
        if not text and not thinking and finish_reason is None:
            return None
        if finish_reason is not None and _STRUCTURED in stream.request:
            stream.structured_model = stream.request[_STRUCTURED]
        return ModelChunk(
            text=text,
            raw=_dump(event),
            usage=usage if finish_reason else None,
            model_name=event.model or self.model_name,
            finish_reason=finish_reason,
            thinking=thinking,
        )


class DashScopeChatWrapper(DashScopeConversationWrapper):
    """Chat with a Qwen model; ``format`` builds messages that follow DashScope's rules."""

    model_type = "dashscope_chat"

    def __init__(
        self,
        config_name: str,
        *,
        multimodal: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.multimodal = _looks_multimodal(self.model_name) if multimodal is None else multimodal


# -- tools and structured output ----------------------------------------------------------
#: Where ``_agent_parameters`` leaves the schema instruction for ``_request``; never sent.
_SCHEMA_TEXT = "_modelwire_schema_text"


def _agent_parameters(parameters: dict[str, Any], messages: Any) -> Any:
    """Turn ``tools``/``tool_choice``/``structured_model`` in ``parameters`` into
    DashScope's shapes, in place; the structured model (if any) is returned and its
    instruction left under ``_SCHEMA_TEXT``. ``BadRequestError`` for what DashScope
    cannot be sent."""
    tools = parameters.pop("tools", None)
    wire_tools = function_tools(tools) if tools is not None else []
    if wire_tools:  # an empty list is not sent
        parameters["tools"] = wire_tools
    if parameters.get("tool_choice") is not None:
        parameters["tool_choice"] = _wire_tool_choice(parameters["tool_choice"], wire_tools)
    structured_model = parameters.pop(_STRUCTURED, None)
    if structured_model is None:
        return None
    if parameters.get("response_format") is not None:
        raise BadRequestError(
            "give `structured_model` or `response_format`, not both:"
            " structured_model sets the response format"
        )
    name, schema = structured_schema(structured_model)
    parameters["response_format"] = {"type": "json_object"}
    parameters[_SCHEMA_TEXT] = (
        f"Reply with one JSON object ({name}) that follows this JSON schema,"
        f" and nothing else:\n{json.dumps(schema, ensure_ascii=False)}"
    )
    return structured_model


def _with_schema(messages: list[Message] | str, instruction: str) -> list[Message]:
    """The messages with the schema instruction in their system message (a new one at
    the front if there is none); the caller's list is left as it is."""
    if isinstance(messages, str):
        return [{"role": "system", "content": instruction}, {"role": "user", "content": messages}]
    messages = list(messages)
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") == "system":
        content = first.get("content")
        if isinstance(content, list):
            content = [*content, {"text": instruction}]
        else:
            content = f"{content}\n\n{instruction}" if content else instruction
        messages[0] = {**first, "content": content}
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    return messages


def _wire_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    """``"auto"``/``"none"`` as they are, a tool's name as DashScope's named choice.

    DashScope has no ``"required"``: with exactly one tool it means that tool, and is
    sent as its named choice; with several it is refused.
    """
    if isinstance(choice, Mapping):  # DashScope's own shape, passed through
        return dict(choice)
    names = [tool["function"]["name"] for tool in tools]
    choice = check_tool_choice(choice, names)
    if choice in ("auto", "none"):
        return choice
    if choice == "required":
        if len(names) != 1:
            raise BadRequestError(
                "tool_choice 'required' is not supported by DashScope (it takes 'auto',"
                " 'none' or one tool's name); with exactly one tool it is sent as that"
                f" tool's name, but this call has {len(names)}"
            )
        choice = names[0]
    return {"type": "function", "function": {"name": choice}}


def _tool_calls(calls: list[Any]) -> list[dict[str, Any]]:
    """A reply's ``tool_calls`` (the SDK's ``ToolCall`` models) as ``tool_use`` blocks."""
    blocks = []
    for position, call in enumerate(calls):
        name = call.function.name
        if not name:
            raise ResponseParseError(f"tool call {call.model_dump()!r} has no function name")
        call_id = call.id or f"call_{position}"
        arguments = parse_tool_arguments(call.function.arguments, name=name, call_id=call_id)
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


# -- helpers ----------------------------------------------------------------------------------
def _streamed(request: dict[str, Any]) -> dict[str, Any]:
    """Deltas, not cumulative snapshots: the SDK turns incremental output on for streams."""
    parameters = dict(request["parameters"])
    parameters.pop("incremental_output", None)
    return {"messages": request["messages"], "parameters": parameters}


def _usage(usage: SdkUsage | None) -> Usage | None:
    """DashScope's counts; reasoning and cached tokens where the reply has them
    (``output_tokens_details.reasoning_tokens``, ``prompt_tokens_details.cached_tokens``)."""
    if usage is None:
        return None
    extra = usage.model_extra
    if not extra:
        return Usage.of(usage.input_tokens, usage.output_tokens)
    optional = {}
    output_details = extra.get("output_tokens_details")
    if isinstance(output_details, Mapping) and "reasoning_tokens" in output_details:
        optional["reasoning_tokens"] = output_details["reasoning_tokens"]
    prompt_details = extra.get("prompt_tokens_details")
    if isinstance(prompt_details, Mapping) and "cached_tokens" in prompt_details:
        optional["cached_tokens"] = prompt_details["cached_tokens"]
    return Usage.of(usage.input_tokens, usage.output_tokens, **optional)


def _finish_reason(reason: str | None) -> str | None:
    """DashScope streams the string ``"null"`` until the last event."""
    return None if not reason or reason == "null" else reason


def _looks_multimodal(model_name: str) -> bool:
    name = model_name.lower()
    return any(marker in name for marker in MULTIMODAL_MARKERS)


def _is_parts(content: Any) -> bool:
    """Content given as DashScope's own parts (``{"text": ...}``, ``{"image": ...}``),
    not as modelwire blocks (which carry a ``type``)."""
    return (
        isinstance(content, list)
        and all(isinstance(part, dict) for part in content)
        and not (content and all(isinstance(part.get("type"), str) for part in content))
    )


def _image(block: Mapping[str, Any]) -> str:
    """An image block as DashScope takes it: a web URL as it is, anything else (a local
    file, base64 data) inlined as a data URL, so nothing is uploaded."""
    try:
        return image_url(block)
    except (OSError, ValueError) as exc:
        raise BadRequestError(f"an image block cannot be sent: {exc}") from None


def _media_part(url: str) -> dict[str, str]:
    """``{"image"|"video"|"audio": url}`` by the file extension; images by default.

    A local path or ``file://`` URL is inlined as a data URL: DashScope's SDK would
    upload it to its OSS storage, outside modelwire's transport.
    """
    from pathlib import PurePosixPath  # only for messages carrying media
    from urllib.parse import urlsplit

    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    kind = (
        "video" if suffix in _VIDEO_SUFFIXES else "audio" if suffix in _AUDIO_SUFFIXES else "image"
    )
    if not url.startswith(("http://", "https://", "data:", "oss://")):
        try:
            url = data_url(url)
        except (OSError, ValueError) as exc:
            raise BadRequestError(f"media {url!r} cannot be sent: {exc}") from None
    return {kind: url}


def _join(contents: list[Any]) -> str | list[dict[str, Any]]:
    """Merge the contents of several messages into one turn."""
    if all(isinstance(content, str) for content in contents):
        return "\n".join(content for content in contents if content) or ""
    parts: list[dict[str, Any]] = []
    for content in contents:
        parts.extend(content if isinstance(content, list) else [{"text": content}])
    return parts


def _dump(reply: ChatCompletion | ChatCompletionChunk) -> dict[str, Any]:
    """The reply as JSON, for ``raw``."""
    return reply.model_dump(mode="json", exclude={"headers"})
