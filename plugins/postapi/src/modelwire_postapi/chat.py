"""``post_api_chat``: POST OpenAI-style messages to your own chat service.

``format(*msgs)`` gives ``[{"role", "content"}]`` dicts, the shape the seed's Flask
service, the serving distribution's ``/llm/``, vLLM and FastChat take; media URLs
attached to a message and image blocks become OpenAI ``image_url`` parts.

Tools, a tool choice and a ``structured_model`` (per call, or in ``json_args``) are
sent in OpenAI's shape (``tools``, ``tool_choice``, a ``json_schema``
``response_format``), since the services this type talks to are OpenAI-compatible
when they take them at all; tool calls and reasoning are read from OpenAI-shaped
replies (see ``parsing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from modelwire import (
    AGENT_ARGUMENTS,
    BadRequestError,
    ConfigIssue,
    Msg,
    blocks_of,
    check_tool_choice,
    data_url,
    function_tool_call,
    function_tool_messages,
    function_tools,
    image_url,
    iter_msgs,
    structured_schema,
    text_of,
    thinking_of,
)
from modelwire_postapi.client import PostAPIWrapper, PostRequest

__all__ = ["PostAPIChatWrapper"]

#: The call arguments modelwire turns into OpenAI's request fields (never sent as given).
_TOOL_KEYS = frozenset({"tools", "tool_choice", "structured_model"})


class PostAPIChatWrapper(PostAPIWrapper):
    """A chat service taking message lists; see the README for every config key.

    ``send_reasoning`` (default ``True``): ``format()`` sends an assistant message's
    thinking blocks back as ``reasoning_content`` when that message carries tool calls,
    as DeepSeek's thinking mode requires; ``False`` for a service that refuses the field.
    """

    model_type = "post_api_chat"
    outputs: ClassVar[frozenset[str]] = frozenset({"text", "tool_calls"})
    agent_arguments = AGENT_ARGUMENTS

    def __init__(self, config_name: str, *, send_reasoning: bool = True, **kwargs: Any) -> None:
        super().__init__(config_name, **kwargs)
        self.send_reasoning = send_reasoning

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Tools, a tool choice and a structured model in ``json_args`` are checked at
        load, like every other key: a bad one fails the config, not its first call."""
        issues = super().validate_params(params)
        json_args = params.get("json_args")
        if isinstance(json_args, Mapping) and not _TOOL_KEYS.isdisjoint(json_args):
            try:
                _tool_fields(json_args)
            except BadRequestError as exc:
                issues.append(ConfigIssue("?", "json_args", exc.message))
        return issues

    # -- input --------------------------------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        """OpenAI messages: role and content; images as ``image_url`` parts;
        ``tool_use`` blocks as ``tool_calls`` and ``tool_result`` blocks as
        ``role: "tool"`` messages (images in a tool's output are left out, with a
        warning: OpenAI's wire has none there); the thinking of an assistant message
        with tool calls as its ``reasoning_content`` (see ``send_reasoning``), other
        thinking blocks not at all."""
        messages: list[dict[str, Any]] = []
        for msg in iter_msgs(*args):
            blocks = blocks_of(msg.content)
            if not blocks and msg.role != "tool":
                messages.append(_message(msg))
            else:
                messages += self._block_messages(msg, blocks)
        return messages

    def _block_messages(self, msg: Msg, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The OpenAI messages of one ``Msg`` whose content is a list of blocks."""
        results = [block for block in blocks if block["type"] == "tool_result"]
        if results or msg.role == "tool":
            return function_tool_messages(msg, results, config_name=self.config_name)
        message = _block_message(msg, blocks)
        reasoning = thinking_of(blocks) if self.send_reasoning else None
        if reasoning is not None and msg.role == "assistant" and "tool_calls" in message:
            message["reasoning_content"] = reasoning
        return [message]

    # -- the provider step -----------------------------------------------------------
    def _request(self, inputs: Any, **kwargs: Any) -> PostRequest:
        """The bodies, with ``tools``/``tool_choice``/``structured_model`` (of the call,
        else of ``json_args``) in OpenAI's shape; calls without them take the plain path."""
        if _TOOL_KEYS.isdisjoint(kwargs) and _TOOL_KEYS.isdisjoint(self.json_args):
            return self._bodies(inputs, self.json_args, kwargs)
        json_args = {k: v for k, v in self.json_args.items() if k not in _TOOL_KEYS}
        given = {k: v for k, v in self.json_args.items() if k in _TOOL_KEYS}
        call_args = {k: v for k, v in kwargs.items() if k not in _TOOL_KEYS}
        given.update((k, v) for k, v in kwargs.items() if k in _TOOL_KEYS)
        structured_model = given.get("structured_model")
        if structured_model is not None and (
            call_args.get("response_format") is not None
            or json_args.get("response_format") is not None
        ):
            raise BadRequestError(
                "give `structured_model` or `response_format`, not both:"
                " structured_model sets the response format"
            )
        call_args.update(_tool_fields(given))
        return self._bodies(inputs, json_args, call_args, structured_model)


def _tool_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``structured_model`` as OpenAI's request fields;
    ``BadRequestError`` naming what is wrong, before anything is sent."""
    fields: dict[str, Any] = {}
    tools = function_tools(given.get("tools") or [])
    if tools:  # OpenAI-compatible servers refuse an empty list
        fields["tools"] = tools
    choice = given.get("tool_choice")
    if choice is not None:
        choice = _wire_tool_choice(choice, tools)
        if tools or not isinstance(choice, str):
            fields["tool_choice"] = choice
        elif choice == "required":
            raise BadRequestError("tool_choice 'required' needs tools, and the call has none")
        # "auto"/"none" without tools mean nothing, and OpenAI-compatible servers refuse
        # a tool_choice without tools: left out (a call's tools=[] turns json_args' off)
    if given.get("structured_model") is not None:
        name, schema = structured_schema(given["structured_model"])
        # Not strict: vLLM, TGI, llama.cpp and the like enforce the schema as given, and
        # OpenAI's strict rewrite (every property required) would change what it means.
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema},
        }
    return fields


def _wire_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    """``"auto"``/``"none"``/``"required"``, or a tool's name as OpenAI's named choice."""
    if isinstance(choice, Mapping):  # OpenAI's own shape, passed through
        return dict(choice)
    choice = check_tool_choice(choice, [tool["function"]["name"] for tool in tools])
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


# -- messages ----------------------------------------------------------------------------
def _message(msg: Msg) -> dict[str, Any]:
    text = text_of(msg.content)
    if not msg.urls:
        return {"role": msg.role, "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": _url(url)}} for url in msg.urls]
    return {"role": msg.role, "content": parts}


def _block_message(msg: Msg, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAI message of a ``Msg`` of blocks that carries no tool results."""
    parts: list[dict[str, Any]] = []
    calls = []
    for block in blocks:
        if block["type"] == "text" and block.get("text"):
            parts.append({"type": "text", "text": block["text"]})
        elif block["type"] == "image":
            parts.append({"type": "image_url", "image_url": {"url": _block_url(block)}})
        elif block["type"] == "tool_use":
            calls.append(function_tool_call(block))
    parts += [{"type": "image_url", "image_url": {"url": _url(url)}} for url in msg.urls]
    content: Any = parts
    if all(part["type"] == "text" for part in parts):
        content = "".join(part["text"] for part in parts)
    message: dict[str, Any] = {"role": msg.role, "content": content}
    if calls:
        message["tool_calls"] = calls
        if not content:
            message["content"] = None  # OpenAI's shape of a turn of calls only
    return message


def _url(url: str) -> str:
    """Web and data URLs as they are; a local file inlined, since the service cannot read it."""
    try:
        return data_url(url)
    except (OSError, ValueError) as exc:
        raise BadRequestError(
            f"Msg.url {url!r} is neither an http(s)/data URL nor a readable file"
        ) from exc


def _block_url(block: Mapping[str, Any]) -> str:
    """An image block as a URL: a web URL as it is, anything else a data URL."""
    try:
        return image_url(block)
    except (OSError, ValueError) as exc:
        raise BadRequestError(f"image block cannot be sent: {exc}") from exc
