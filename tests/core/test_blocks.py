"""Content blocks, tools and structured output: the provider-neutral helpers in
``modelwire.blocks`` that every chat plugin builds on."""

from __future__ import annotations

import asyncio
import enum
import json
import subprocess
import sys
from typing import Annotated, Any, Literal

import pytest

import modelwire
from modelwire import (
    BadRequestError,
    ModelChunk,
    ModelResponse,
    Msg,
    ResponseParseError,
    ToolCallAssembler,
    Usage,
    acollect,
    blocks_of,
    check_tool_choice,
    collect,
    image_media,
    image_url,
    normalize_tools,
    parse_structured,
    parse_tool_arguments,
    structured_schema,
    text_of,
    tool_result,
)


# -- the package ---------------------------------------------------------------------------
def test_blocks_load_lazily() -> None:
    code = (
        "import sys, modelwire; "
        "mods = ('modelwire.blocks', 'modelwire.tools', 'modelwire.structured'); "
        "print(any(m in sys.modules for m in mods), 'pydantic' in sys.modules); "
        "modelwire.ModelResponse(text='x'); modelwire.normalize_tools([{'name': 'f'}]); "
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_block_types_are_exported() -> None:
    for name in ("TextBlock", "ImageBlock", "ToolUseBlock", "ToolResultBlock", "ThinkingBlock"):
        assert name in modelwire.__all__
        assert getattr(modelwire, name).__annotations__["type"]


# -- responses -----------------------------------------------------------------------------
CALL = {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}


def test_content_is_built_from_text_thinking_and_tool_calls() -> None:
    response = ModelResponse(text="Let me look.", tool_calls=[CALL], thinking="The user wants")
    assert response.content == [
        {"type": "thinking", "thinking": "The user wants"},
        {"type": "text", "text": "Let me look."},
        CALL,
    ]


def test_text_tool_calls_and_thinking_are_read_from_content() -> None:
    response = ModelResponse(
        content=[
            {"type": "thinking", "thinking": "hm"},
            {"type": "text", "text": "a"},
            CALL,
            {"type": "text", "text": "b"},
        ]
    )
    assert response.text == "ab"
    assert response.tool_calls == [CALL]
    assert response.thinking == "hm"


def test_plain_responses_keep_their_fields() -> None:
    assert ModelResponse(text="hi").content == [{"type": "text", "text": "hi"}]
    assert ModelResponse(text="hi").tool_calls is None
    assert ModelResponse(embedding=[[1.0]]).content is None
    assert ModelResponse(text="").content == []


def test_to_msg_gives_an_assistant_msg_of_the_blocks() -> None:
    response = ModelResponse(text="Checking.", tool_calls=[CALL])
    msg = response.to_msg("agent")
    assert isinstance(msg, Msg)
    assert (msg.name, msg.role) == ("agent", "assistant")
    assert msg.content == [{"type": "text", "text": "Checking."}, CALL]
    msg.content[1]["input"]["city"] = "Rome"  # the Msg's blocks are its own
    assert response.tool_calls[0]["input"] == {"city": "Paris"}


def test_repr_names_tool_calls() -> None:
    assert "tool_calls=<get_weather>" in repr(ModelResponse(tool_calls=[CALL]))


def test_tool_result_answers_a_call() -> None:
    assert tool_result(CALL, {"temp": 21}) == {
        "type": "tool_result",
        "id": "call_1",
        "name": "get_weather",
        "output": '{"temp": 21}',
    }
    assert tool_result(CALL, "sunny")["output"] == "sunny"


def test_text_of_blocks() -> None:
    content = [
        {"type": "thinking", "thinking": "secret"},
        {"type": "text", "text": "a"},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        CALL,
        {"type": "text", "text": "b"},
    ]
    assert text_of(content) == "ab"
    assert text_of([tool_result(CALL, "sunny")]) == "sunny"
    assert text_of([tool_result(CALL, [{"type": "text", "text": "warm"}])]) == "warm"


def test_a_tool_msg_is_accepted() -> None:
    assert Msg("tool", [tool_result(CALL, "sunny")], role="tool").role == "tool"


# -- collect -------------------------------------------------------------------------------
def chunks() -> list[ModelChunk]:
    return [
        ModelChunk(thinking="Think", model_name="m"),
        ModelChunk(thinking="ing"),
        ModelChunk(text="Hel"),
        ModelChunk(text="lo"),
        ModelChunk(finish_reason="tool_calls", tool_calls=[CALL]),
        ModelChunk(usage=Usage.of(3, 4), tool_calls=[CALL]),
    ]


def test_collect_gives_the_plain_calls_response() -> None:
    response = collect(chunks())
    expected = ModelResponse(
        text="Hello", tool_calls=[CALL], thinking="Thinking", usage=Usage(3, 4, 7)
    )
    assert response.content == expected.content
    assert (response.text, response.thinking, response.tool_calls) == ("Hello", "Thinking", [CALL])
    assert response.usage == Usage(3, 4, 7)
    assert (response.model_name, response.finish_reason) == ("m", "tool_calls")


def test_acollect() -> None:
    async def stream() -> Any:
        for chunk in chunks():
            yield chunk

    response = asyncio.run(acollect(stream()))
    assert response.text == "Hello" and response.tool_calls == [CALL]


def test_collect_keeps_block_fields_on_their_blocks() -> None:
    response = collect(
        [
            ModelChunk(thinking="plan", block_fields={"thinking": {"signature": "t1"}}),
            ModelChunk(text="Hi"),
            ModelChunk(block_fields={"text": {"signature": "x1"}}),
            ModelChunk(block_fields={"text": {"signature": "x2"}}, finish_reason="stop"),
        ]
    )
    assert response.content == [
        {"type": "thinking", "thinking": "plan", "signature": "t1"},
        {"type": "text", "text": "Hi", "signature": "x2"},  # the later value wins
    ]
    assert (response.text, response.thinking) == ("Hi", "plan")


def test_an_empty_text_block_is_kept_for_its_fields() -> None:
    response = collect(
        [ModelChunk(block_fields={"text": {"signature": "s"}}, finish_reason="stop")]
    )
    assert response.content == [{"type": "text", "text": "", "signature": "s"}]


# -- argument assembly ---------------------------------------------------------------------
def test_interleaved_fragments_of_parallel_calls() -> None:
    assembler = ToolCallAssembler()
    assembler.add(index=1, id="b", name="get_time", arguments='{"tz"')
    assembler.add(index=0, id="a", name="get_weather", arguments="")
    assembler.add(index=0, arguments='{"city":')
    assembler.add(index=1, arguments=': "UTC"}')
    assembler.add(index=0, arguments=' "Paris"}')
    assert assembler.result() == [
        {"type": "tool_use", "id": "a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "b", "name": "get_time", "input": {"tz": "UTC"}},
    ]


def test_fragments_by_id_only_and_a_new_id_at_a_used_index() -> None:
    assembler = ToolCallAssembler()
    assembler.add(index=0, id="a", name="f", arguments='{"x": 1}')
    assembler.add(index=0, id="b", name="g", arguments='{"y"')  # a server numbering all 0
    assembler.add(id="b", arguments=": 2}")
    assembler.add(arguments="")  # continues the last call
    calls = assembler.result()
    assert [(c["id"], c["name"], c["input"]) for c in calls] == [
        ("a", "f", {"x": 1}),
        ("b", "g", {"y": 2}),
    ]


def test_complete_object_arguments_and_missing_ids() -> None:
    assembler = ToolCallAssembler()
    assembler.add(name="f", arguments={"x": 1})
    assembler.add(index=None, id=None, name=None, arguments=None)
    assert assembler.result() == [
        {"type": "tool_use", "id": "call_0", "name": "f", "input": {"x": 1}}
    ]


def test_provider_fields_of_a_fragment_are_kept_in_the_block() -> None:
    assembler = ToolCallAssembler()
    assembler.add(index=0, id="a", name="f", arguments='{"x"', extra={"signature": "sig-1"})
    assembler.add(index=0, arguments=": 1}")
    assert assembler.result() == [
        {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}, "signature": "sig-1"}
    ]


def test_a_call_without_a_name_is_a_parse_error() -> None:
    assembler = ToolCallAssembler()
    assembler.add(index=0, arguments="{}")
    with pytest.raises(ResponseParseError):
        assembler.result()


# -- argument repair -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"city": "Paris"}', {"city": "Paris"}),
        ({"city": "Paris"}, {"city": "Paris"}),
        ("", {}),
        ("  ", {}),
        (None, {}),
        ('```json\n{"city": "Paris"}\n```', {"city": "Paris"}),
        ('"{\\"city\\": \\"Paris\\"}"', {"city": "Paris"}),
        ('{"cities": ["Paris", "Rome",],}', {"cities": ["Paris", "Rome"]}),
        ('{"note": "a,}"}', {"note": "a,}"}),
        ('{"city": "Paris"}{"city": "Paris"}', {"city": "Paris"}),
    ],
)
def test_arguments_repaired_when_unambiguous(raw: Any, expected: dict[str, Any]) -> None:
    assert parse_tool_arguments(raw, name="get_weather") == expected


@pytest.mark.parametrize(
    "raw",
    [
        '{"city": "Par',
        '{"city": "Paris"}{"city": "Rome"}',
        "[1, 2]",
        "Paris",
        '{"a": 1,, "b": 2}',
        17,
    ],
)
def test_unreadable_arguments_raise_with_the_raw_text(raw: Any) -> None:
    with pytest.raises(ResponseParseError) as caught:
        parse_tool_arguments(raw, name="get_weather", call_id="call_9")
    assert caught.value.arguments == raw
    assert "get_weather" in str(caught.value) and "call_9" in str(caught.value)


def test_a_comma_inside_a_string_before_a_brace_is_kept() -> None:
    assert parse_tool_arguments('{"a": "x\\", }", "b": [1,]}') == {"a": 'x", }', "b": [1]}


# -- tools ---------------------------------------------------------------------------------
class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def get_weather(
    city: str,
    days: int = 1,
    unit: Unit = Unit.C,
    detail: Literal["short", "long"] | None = None,
    tags: list[str] | None = None,
    note: Annotated[str, "free text for the forecaster"] = "",
) -> str:
    """Get the weather forecast.

    Only for cities on Earth.

    Args:
        city: The city's name.
        days (int): How many days ahead.
    """
    return "sunny"


def test_a_function_becomes_a_tool() -> None:
    (spec,) = normalize_tools([get_weather])
    assert spec["name"] == "get_weather"
    assert spec["description"] == "Get the weather forecast."
    parameters = spec["parameters"]
    assert parameters["required"] == ["city"]
    props = parameters["properties"]
    assert props["city"] == {"type": "string", "description": "The city's name."}
    assert props["days"] == {"type": "integer", "description": "How many days ahead.", "default": 1}
    assert props["unit"] == {"enum": ["celsius", "fahrenheit"]}
    assert props["detail"] == {
        "anyOf": [{"enum": ["short", "long"]}, {"type": "null"}],
        "default": None,
    }
    assert props["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert props["note"]["description"] == "free text for the forecaster"


def test_sphinx_docstrings_and_variadics() -> None:
    def search(query: str, *args: Any, limit: int = 5, **kwargs: Any) -> list[str]:
        """Search.

        :param query: what to look for
        :param int limit: how many hits
        """
        return []

    (spec,) = normalize_tools([search])
    assert list(spec["parameters"]["properties"]) == ["query", "limit"]
    assert spec["parameters"]["properties"]["query"]["description"] == "what to look for"
    assert spec["parameters"]["properties"]["limit"]["description"] == "how many hits"


def test_function_dicts_and_specs_are_one_shape() -> None:
    parameters = {"type": "object", "properties": {"q": {"type": "string"}}}
    openai_style = {
        "type": "function",
        "function": {"name": "search", "description": "Search.", "parameters": parameters},
    }
    plain = {"name": "lookup", "parameters": parameters, "strict": True}
    assert normalize_tools([openai_style, plain]) == [
        {"name": "search", "description": "Search.", "parameters": parameters},
        {"name": "lookup", "description": "", "parameters": parameters, "strict": True},
    ]


def test_a_pydantic_class_becomes_a_tool() -> None:
    import pydantic

    class Lookup(pydantic.BaseModel):
        """Look a word up."""

        word: str
        language: str = "en"

    (spec,) = normalize_tools([Lookup])
    assert spec["name"] == "Lookup"
    assert spec["description"] == "Look a word up."
    assert spec["parameters"]["required"] == ["word"]


@pytest.mark.parametrize(
    ("tools", "named"),
    [
        ([42], "42"),
        (["search"], "search"),
        ([{"type": "function", "function": {"description": "no name"}}], "no name"),
        ([{"name": "bad name!"}], "bad name!"),
        ([{"name": "f"}, {"name": "f"}], "'f'"),
        ([lambda x: x], "lambda"),
        ({"name": "f"}, "list"),
    ],
)
def test_a_tool_that_cannot_be_described_is_refused(tools: Any, named: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        normalize_tools(tools)
    assert named in str(caught.value)


def test_a_parameter_type_without_a_schema_names_the_tool() -> None:
    def upload(data: bytes) -> None:
        """Upload."""

    with pytest.raises(BadRequestError, match=r"upload.*data"):
        normalize_tools([upload])


# -- structured output ---------------------------------------------------------------------
SCHEMA = {
    "title": "City Info",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "population": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        "size": {"enum": ["small", "big"]},
    },
    "required": ["name", "population"],
    "additionalProperties": False,
    "$defs": {"tag": {"type": "string", "maxLength": 5}},
}


def test_a_schema_dict_validates_and_gives_a_dict() -> None:
    assert structured_schema(SCHEMA)[0] == "City_Info"
    reply = '{"name": "Paris", "population": 2100000, "tags": ["old"], "size": "big"}'
    assert parse_structured(reply, SCHEMA)["population"] == 2100000
    assert parse_structured(f"```json\n{reply}\n```", SCHEMA)["name"] == "Paris"


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('{"name": "Paris"}', "population: required"),
        ('{"name": "Paris", "population": -1}', "population: -1 breaks minimum"),
        ('{"name": "", "population": 1}', "name: length 0"),
        ('{"name": "P", "population": "many"}', "population: 'many' is not of type integer"),
        ('{"name": "P", "population": 1, "extra": 1}', "extra: not allowed"),
        ('{"name": "P", "population": 1, "tags": ["toolong"]}', "tags[0]: length 7"),
        ('{"name": "P", "population": 1, "size": "huge"}', "size: 'huge' is not one of"),
        ("Paris has two million people.", "not JSON"),
        ("[]", "is not of type object"),
    ],
)
def test_a_reply_off_the_schema_raises_with_text_and_errors(reply: str, problem: str) -> None:
    with pytest.raises(ResponseParseError) as caught:
        parse_structured(reply, SCHEMA)
    assert caught.value.text == reply
    assert any(problem in error for error in caught.value.validation_errors), (
        caught.value.validation_errors
    )


def test_a_pydantic_class_validates_and_gives_an_instance() -> None:
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    assert structured_schema(City)[0] == "City"
    city = parse_structured('{"name": "Paris", "population": 3}', City)
    assert isinstance(city, City) and city.population == 3
    with pytest.raises(ResponseParseError) as caught:
        parse_structured('{"name": "Paris", "population": "lots"}', City)
    assert caught.value.validation_errors[0].startswith("population:")
    assert json.loads(caught.value.text)["population"] == "lots"


def test_a_structured_model_of_another_kind_is_refused() -> None:
    with pytest.raises(BadRequestError):
        structured_schema("City")


def test_long_hostile_arguments_are_read_in_linear_time() -> None:
    import time

    many = "1, " * 200_000
    started = time.monotonic()
    assert len(parse_tool_arguments('{"a": [' + many + "]}")["a"]) == 200_000
    with pytest.raises(ResponseParseError):
        parse_tool_arguments('{"a": [' + many + '"x}')
    assert time.monotonic() - started < 20  # quadratic repair would take hours


# -- shared helpers for plugins ------------------------------------------------------------
def test_blocks_of_keeps_only_blocks() -> None:
    text = {"type": "text", "text": "hi"}
    assert blocks_of("hi") == []
    assert blocks_of([text, "stray", {"no": "type"}]) == [text]


def test_image_blocks_as_urls_and_media(tmp_path: Any) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(b"\x89PNG-bytes")
    web = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    inline = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
    }
    local = {"type": "image", "source": {"type": "url", "url": str(png)}}
    assert image_url(web) == "https://example.com/a.png"
    assert image_url(inline) == "data:image/gif;base64,R0lG"
    assert image_url(local).startswith("data:image/png;base64,")
    assert image_media(local).data == b"\x89PNG-bytes"
    assert image_media(inline).mime_type == "image/gif"
    with pytest.raises(ValueError, match="web URL"):
        image_media(web)
    with pytest.raises(ValueError, match="needs a source"):
        image_url({"type": "image", "source": "x.png"})


def test_tool_choice_is_checked_against_the_calls_tools() -> None:
    assert check_tool_choice("required", []) == "required"
    assert check_tool_choice("get_weather", ["get_weather"]) == "get_weather"
    with pytest.raises(BadRequestError, match="names no tool"):
        check_tool_choice("search", ["get_weather"])
    with pytest.raises(BadRequestError, match="tool_choice must be"):
        check_tool_choice(3, ["get_weather"])


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"type": "text", "text": 5}, "'text'"),
        ({"type": "tool_use", "name": "f", "input": {}}, "'id'"),
        ({"type": "tool_use", "id": "a", "name": "f", "input": "x"}, "'input'"),
        ({"type": "tool_result", "id": "a", "name": "f"}, "'output'"),
        ({"type": "thinking"}, "'thinking'"),
        ({"type": "image", "source": "x.png"}, "needs a source"),
    ],
)
def test_a_malformed_block_is_a_bad_request_naming_it(block: dict[str, Any], named: str) -> None:
    with pytest.raises(BadRequestError, match=named):
        blocks_of([block])


def test_a_plugins_format_refuses_bad_messages_cleanly() -> None:
    from modelwire import ModelWrapper

    class Strict(ModelWrapper):
        model_type = "strict_test"

        def format(self, *args: Any) -> Any:
            return [msg.metadata["required"] for msg in modelwire.iter_msgs(*args)]

    model = Strict("strict")
    with pytest.raises(BadRequestError, match="the messages cannot be sent: KeyError") as caught:
        model.format(Msg("user", "hi", role="user", metadata={}))
    assert caught.value.config_name == "strict"
    assert model.format(Msg("user", "hi", role="user", metadata={"required": 1})) == [1]
