"""Tools for chat calls: the provider-neutral half of tool calling.

- ``normalize_tools`` turns OpenAI-style function dicts, Python functions and
  pydantic model classes into one list of ``ToolSpec``;
- ``parse_tool_arguments`` turns a call's arguments into a dict, repairing them
  only when the repair is unambiguous;
- ``ToolCallAssembler`` (behind ``Stream.tool_call_delta``) joins streamed
  argument fragments, whatever their order or interleaving.

pydantic is never imported here unless a pydantic class is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from modelwire.errors import BadRequestError, ResponseParseError
from modelwire.redact import modelwire_logger

if TYPE_CHECKING:
    from modelwire.blocks import ToolUseBlock

__all__ = [
    "ToolCallAssembler",
    "ToolSpec",
    "check_tool_choice",
    "function_tool_call",
    "function_tool_messages",
    "function_tools",
    "normalize_tools",
    "parse_tool_arguments",
    "reasoning_text",
    "tool_use_blocks",
]


class ToolSpec(TypedDict):
    """One tool, provider-neutral: a plugin turns it into its service's shape."""

    name: str
    description: str
    parameters: dict[str, Any]
    strict: NotRequired[bool]


# -- tools -------------------------------------------------------------------------------
def normalize_tools(tools: Iterable[Any] | None) -> list[ToolSpec]:
    """One canonical list from OpenAI-style function dicts, ``ToolSpec`` dicts, Python
    functions and pydantic model classes.

    Raises ``BadRequestError`` naming the tool for anything else, and for two tools
    of one name: nothing is sent for a call whose tools cannot be described.
    """
    if tools is None:
        return []
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
        raise BadRequestError(f"`tools` must be a list of tools, not {type(tools).__name__}")
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for tool in tools:
        spec = _tool_spec(tool)
        if spec["name"] in seen:
            raise BadRequestError(f"two tools are named {spec['name']!r}: tool names must differ")
        seen.add(spec["name"])
        specs.append(spec)
    return specs


# -- OpenAI's function-calling shape, which most services share ------------------------------
def function_tools(tools: Iterable[Any] | None) -> list[dict[str, Any]]:
    """``tools`` as OpenAI-style ``{"type": "function", "function": {...}}`` dicts, the
    shape OpenAI, DashScope, vLLM and most compatible servers take: function dicts as
    given, functions and pydantic classes described (``normalize_tools``)."""
    if isinstance(tools, Iterable) and not isinstance(tools, (str, bytes, Mapping)):
        tools = list(tools)
    specs = normalize_tools(tools)
    wire = []
    for tool, spec in zip(tools or (), specs, strict=True):
        if isinstance(tool, Mapping) and tool.get("type") == "function":
            wire.append(dict(tool))
            continue
        function: dict[str, Any] = {"name": spec["name"], "parameters": spec["parameters"]}
        if spec["description"]:
            function["description"] = spec["description"]
        if "strict" in spec:
            function["strict"] = spec["strict"]
        wire.append({"type": "function", "function": function})
    return wire


def function_tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI-style ``tool_calls`` entry (JSON-text arguments)."""
    return {
        "id": block["id"],
        "type": "function",
        "function": {
            "name": block["name"],
            "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
        },
    }


def function_tool_messages(
    msg: Any, results: list[dict[str, Any]], *, config_name: str | None = None
) -> list[dict[str, Any]]:
    """OpenAI-style ``role: "tool"`` messages: one per ``tool_result`` block (each call is
    answered on its own), or the message's text for a ``tool_call_id`` in its metadata.

    Such messages take text only: images in a result's output (or the message) are left
    out, with a warning on the ``modelwire`` logger naming ``config_name``."""
    from modelwire.content import text_of

    if not results:
        call_id = (msg.metadata or {}).get("tool_call_id")
        if not isinstance(call_id, str):
            raise BadRequestError(
                "a tool message needs tool_result blocks (modelwire.tool_result(call, output))"
                " or metadata={'tool_call_id': ...}"
            )
        _warn_of_images(config_name, _image_count(msg.content))
        return [{"role": "tool", "tool_call_id": call_id, "content": text_of(msg.content)}]
    _warn_of_images(config_name, sum(_image_count(result.get("output")) for result in results))
    return [
        {"role": "tool", "tool_call_id": result["id"], "content": text_of(result.get("output"))}
        for result in results
    ]


def _image_count(content: Any) -> int:
    """The image blocks in a message's content or a tool result's output."""
    if not isinstance(content, list):
        return 0
    return sum(
        1 for block in content if isinstance(block, Mapping) and block.get("type") == "image"
    )


def _warn_of_images(config_name: str | None, images: int) -> None:
    if images:
        modelwire_logger().warning(
            "%s: OpenAI-style tool messages take no images; %d image(s) of a tool message"
            " were left out, only its text is sent",
            config_name or "?",
            images,
        )


def reasoning_text(message: Mapping[str, Any]) -> str | None:
    """The reasoning of an OpenAI-compatible message or delta: ``reasoning_content``
    (DeepSeek, Qwen, vLLM) or ``reasoning`` (some newer servers)."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def tool_use_blocks(calls: Any) -> list[ToolUseBlock] | None:
    """OpenAI-style ``tool_calls`` (plain dicts) as ``tool_use`` blocks, arguments parsed.

    Calls of another ``type`` (custom tools) are left out; a call without a function
    name, or ``calls`` that are not a list, raise ``ResponseParseError``.
    """
    if not calls:
        return None
    if not isinstance(calls, list):
        raise ResponseParseError(f"the reply's tool_calls are {calls!r}, not a list"[:300])
    blocks: list[ToolUseBlock] = []
    for position, call in enumerate(calls):
        if isinstance(call, Mapping) and call.get("type", "function") != "function":
            continue
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ResponseParseError(f"tool call {position} of the reply has no function name")
        call_id = call.get("id") or f"call_{position}"
        arguments = parse_tool_arguments(
            function.get("arguments"), name=function["name"], call_id=call_id
        )
        blocks.append(
            {"type": "tool_use", "id": call_id, "name": function["name"], "input": arguments}
        )
    return blocks or None


#: The tool choices every chat type takes, besides the name of one of the call's tools.
TOOL_CHOICES = ("auto", "none", "required")


def check_tool_choice(choice: Any, names: Iterable[str]) -> str:
    """``choice`` checked: ``"auto"``, ``"none"``, ``"required"`` or a tool's name.

    A plugin maps the answer to its service's shape; ``BadRequestError`` for a
    choice that is none of these, before anything is sent.
    """
    if not isinstance(choice, str):
        raise BadRequestError(
            f"tool_choice must be 'auto', 'none', 'required' or a tool's name, not {choice!r}"[:200]
        )
    if choice in TOOL_CHOICES:
        return choice
    names = list(names)
    if choice not in names:
        raise BadRequestError(
            f"tool_choice {choice!r} names no tool of the call"
            f" ({', '.join(map(repr, names)) or 'no tools given'})"
        )
    return choice


_TOOL_NAME = r"[A-Za-z0-9_-]{1,64}"


def _tool_spec(tool: Any) -> ToolSpec:
    if isinstance(tool, Mapping):
        spec = _spec_from_dict(tool)
    elif is_pydantic_class(tool):
        spec = {
            "name": tool.__name__,
            "description": _first_paragraph(tool.__doc__),
            "parameters": tool.model_json_schema(),
        }
    elif callable(tool) and not isinstance(tool, type):
        spec = _spec_from_function(tool)
    else:
        raise BadRequestError(
            f"tool {tool!r} is not a function dict, a Python function or a pydantic model class"
        )
    if not re.fullmatch(_TOOL_NAME, spec["name"]):
        raise BadRequestError(
            f"tool name {spec['name']!r} must be 1-64 letters, digits, '_' or '-'"
        )
    return spec


def _spec_from_dict(tool: Mapping[str, Any]) -> ToolSpec:
    function = tool.get("function") if tool.get("type") == "function" else tool
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise BadRequestError(
            f"tool {dict(tool)!r} is not a function dict:"
            ' expected {"type": "function", "function": {"name", "description", "parameters"}}'
        )
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, Mapping):
        raise BadRequestError(f"tool {function['name']!r}: `parameters` must be a JSON schema")
    spec: ToolSpec = {
        "name": function["name"],
        "description": str(function.get("description") or ""),
        "parameters": dict(parameters),
    }
    if isinstance(function.get("strict"), bool):
        spec["strict"] = function["strict"]
    return spec


def is_pydantic_class(value: Any) -> bool:
    """Whether ``value`` is a pydantic model class (told without importing pydantic)."""
    return isinstance(value, type) and callable(getattr(value, "model_json_schema", None))


def _spec_from_function(function: Callable[..., Any]) -> ToolSpec:
    """A tool from a function: names, type hints and defaults give the schema, the
    docstring the descriptions (its first paragraph, and Google-style ``Args:`` or
    ``:param x:`` lines)."""
    import inspect
    import typing

    name = getattr(function, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise BadRequestError(f"tool {function!r} has no name: use a def, not a lambda")
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise BadRequestError(f"tool {name!r}: its signature cannot be read ({exc})") from None
    docs = _param_docs(function.__doc__)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        try:
            schema = _schema_of_type(hints.get(param.name, Any))
        except TypeError as exc:
            raise BadRequestError(f"tool {name!r}, parameter {param.name!r}: {exc}") from None
        if param.name in docs and "description" not in schema:
            schema["description"] = docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif _plain_json(param.default):
            schema["default"] = param.default
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {
        "name": name,
        "description": _first_paragraph(function.__doc__),
        "parameters": parameters,
    }


def _plain_json(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _schema_of_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; ``TypeError`` for one JSON cannot carry."""
    import enum
    import types
    import typing

    if hint is Any:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema = _schema_of_type(args[0])
        notes = [note for note in args[1:] if isinstance(note, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if hint is None or hint is type(None):
        return {"type": "null"}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    if origin in (typing.Union, types.UnionType):
        options = [_schema_of_type(arg) for arg in args]
        return {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if is_pydantic_class(hint):
        return hint.model_json_schema()
    if hint in (list, set, frozenset, tuple) or origin in (list, set, frozenset, tuple):
        schema: dict[str, Any] = {"type": "array"}
        if args and not (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            if origin is tuple:
                schema["prefixItems"] = [_schema_of_type(arg) for arg in args]
            else:
                schema["items"] = _schema_of_type(args[0])
        elif args:
            schema["items"] = _schema_of_type(args[0])
        return schema
    if hint is dict or origin is dict or typing.is_typeddict(hint):
        if typing.is_typeddict(hint):
            fields = typing.get_type_hints(hint)
            return {
                "type": "object",
                "properties": {key: _schema_of_type(value) for key, value in fields.items()},
                "required": sorted(hint.__required_keys__),
            }
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = _schema_of_type(args[1])
        return schema
    raise TypeError(f"{hint!r} has no JSON schema")


def _first_paragraph(doc: str | None) -> str:
    import inspect

    text = inspect.cleandoc(doc or "")
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


def _param_docs(doc: str | None) -> dict[str, str]:
    """Parameter descriptions from Google-style ``Args:`` sections and ``:param x:``."""
    import inspect

    docs: dict[str, str] = {}
    text = inspect.cleandoc(doc or "")
    for match in re.finditer(r"^\s*:param\s+(?:\S+\s+)?(\w+):\s*(.+)$", text, re.M):
        docs[match[1]] = match[2].strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", text, re.M)
    if section:
        for match in re.finditer(r"^[ \t]+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section[1], re.M):
            docs.setdefault(match[1], match[2].strip())
    return docs


# -- tool-call arguments -----------------------------------------------------------------
def parse_tool_arguments(
    raw: Any, *, name: str = "?", call_id: str | None = None
) -> dict[str, Any]:
    """A call's arguments as a dict: an object as is, JSON text parsed.

    Repaired only when the repair is unambiguous: empty text (a call without
    arguments), a Markdown code fence around the JSON, JSON encoded twice, trailing
    commas, and one object sent twice over. Anything else raises
    ``ResponseParseError`` with the raw text as ``.arguments``: never a silent ``{}``.
    """
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise _bad_arguments(name, call_id, raw, f"arguments are a {type(raw).__name__}")
    text = raw.strip()
    if not text:
        return {}
    for candidate in _repairs(text):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, str):  # encoded twice
            try:
                value = json.loads(value)
            except ValueError:
                continue
        if isinstance(value, dict):
            return value
        raise _bad_arguments(name, call_id, raw, f"arguments are a JSON {type(value).__name__}")
    doubled = _one_object_twice(text)
    if doubled is not None:
        return doubled
    raise _bad_arguments(name, call_id, raw, "arguments are not valid JSON")


def _repairs(text: str) -> Iterable[str]:
    yield text
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    if fenced:
        text = fenced[1]
        yield text
    without_commas = _drop_trailing_commas(text)
    if without_commas != text:
        yield without_commas


def _drop_trailing_commas(text: str) -> str:
    """``text`` without commas directly before ``}`` or ``]`` (outside strings)."""
    out: list[str] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == ",":
            after = index + 1
            while after < len(text) and text[after].isspace():
                after += 1
            if after < len(text) and text[after] in "}]":
                continue
        out.append(char)
    return "".join(out)


def _one_object_twice(text: str) -> dict[str, Any] | None:
    """Some servers stream a call's arguments twice: ``{..}{..}`` of one object."""
    decoder = json.JSONDecoder()
    values = []
    position = 0
    try:
        while position < len(text):
            value, position = decoder.raw_decode(text, position)
            values.append(value)
            while position < len(text) and text[position].isspace():
                position += 1
    except ValueError:
        return None
    if len(values) > 1 and isinstance(values[0], dict) and all(v == values[0] for v in values):
        return values[0]
    return None


def _bad_arguments(name: str, call_id: str | None, raw: Any, why: str) -> ResponseParseError:
    shown = raw if isinstance(raw, str) else repr(raw)
    error = ResponseParseError(
        f"the arguments of tool call {call_id or '?'} ({name}) cannot be read: {why}", body=shown
    )
    error.arguments = raw
    return error


class ToolCallAssembler:
    """Joins streamed tool-call fragments into complete ``tool_use`` blocks.

    A fragment names its call by ``index`` (OpenAI), by ``id``, or both; fragments of
    parallel calls may interleave. A fragment with neither continues the last call. An
    ``id`` new at a known index starts another call (servers that number every call 0).
    ``arguments`` are text pieces, joined, or a complete dict (Ollama, Gemini).
    """

    def __init__(self) -> None:
        self._calls: list[dict[str, Any]] = []
        self._by_index: dict[int, dict[str, Any]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(
        self,
        *,
        index: int | None = None,
        id: str | None = None,
        name: str | None = None,
        arguments: str | Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Add one fragment; ``extra`` holds provider fields kept in the block (a
        Gemini thought signature, say), so that the call can be sent back as it came."""
        call = self._find(index, id)
        if extra:
            call["extra"].update(extra)
        if id and not call["id"]:
            call["id"] = id
            self._by_id[id] = call
        if name and name != call["name"]:
            call["name"] = call["name"] + name if call["name"] else name
        if isinstance(arguments, Mapping):
            call["object"] = dict(arguments)
        elif isinstance(arguments, str):
            call["parts"].append(arguments)
        elif arguments is not None:
            raise _bad_arguments(
                call["name"] or name or "?", call["id"] or id, arguments, "a fragment is not text"
            )

    def _find(self, index: int | None, id: str | None) -> dict[str, Any]:
        if id and id in self._by_id:
            return self._by_id[id]
        known = self._by_index.get(index) if index is not None else None
        if known is not None and not (id and known["id"] and known["id"] != id):
            return known
        if index is None and not id and self._calls:
            return self._calls[-1]
        call: dict[str, Any] = {
            "index": index,
            "id": None,
            "name": "",
            "parts": [],
            "object": None,
            "extra": {},
            "order": len(self._calls),
        }
        self._calls.append(call)
        if index is not None:
            self._by_index[index] = call
        return call

    def result(self) -> list[ToolUseBlock]:
        """The complete calls, in index order (arrival order where there is none).

        Raises ``ResponseParseError`` for arguments that cannot be read, or a call
        without a name.
        """
        ordered = sorted(
            self._calls,
            key=lambda c: (c["index"] if c["index"] is not None else float("inf"), c["order"]),
        )
        blocks: list[ToolUseBlock] = []
        for position, call in enumerate(ordered):
            call_id = call["id"] or f"call_{position}"
            if not call["name"]:
                raise _bad_arguments("?", call_id, "".join(call["parts"]), "the call has no name")
            if call["object"] is not None:
                arguments = call["object"]
            else:
                arguments = parse_tool_arguments(
                    "".join(call["parts"]), name=call["name"], call_id=call_id
                )
            block = {"type": "tool_use", "id": call_id, "name": call["name"], "input": arguments}
            blocks.append({**call["extra"], **block})  # type: ignore[typeddict-item]
        return blocks
