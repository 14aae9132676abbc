"""Tools, structured output, content blocks and thinking on ``ollama_chat``, and
structured output (without tools) on ``ollama_generate``: the real ``ollama`` SDK over
real HTTP against Ollama's ``/api/chat`` and ``/api/generate`` wire formats."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from modelwire import (
    BadRequestError,
    ConfigError,
    Msg,
    ResponseParseError,
    acollect,
    collect,
    tool_result,
)
from modelwire.testing import FakeServer, Reply
from modelwire.testing.tools import get_time, get_weather, run_tools

from .conftest import PROMPT_TOKENS, config, generate_service, load

CHAT = "/api/chat"
GENERATE = "/api/generate"
PNG = b"\x89PNG\r\n\x1a\n fake image bytes"


def bodies(server: FakeServer) -> list[Any]:
    return [request.json() for request in server.requests_to(CHAT, "POST")]


def ask(model: Any, text: str = "Weather in Paris and the time in Tokyo?") -> list[dict[str, Any]]:
    return model.format(Msg("user", text, role="user"))


# -- Ollama's replies ----------------------------------------------------------------------
def wire_call(name: str, arguments: Any, index: int | None = None) -> dict[str, Any]:
    """A tool call as Ollama sends it: no id, arguments an object, sometimes an index."""
    function: dict[str, Any] = {"name": name, "arguments": arguments}
    if index is not None:
        function["index"] = index
    return {"function": function}


PARALLEL = [
    wire_call("get_weather", {"city": "Paris"}, index=0),
    wire_call("get_time", {"tz": "Asia/Tokyo"}, index=1),
]
EXPECTED_PARALLEL = [
    {"type": "tool_use", "id": "call_0", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "call_1", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
]


def line(done: bool = False, **message: Any) -> dict[str, Any]:
    """One ``/api/chat`` object: a whole reply, or one NDJSON line of a stream."""
    body: dict[str, Any] = {
        "model": "llama3.2",
        "created_at": "2024-06-01T12:00:00.000000Z",
        "message": {"role": "assistant", "content": "", **message},
        "done": done,
    }
    if done:
        body.update(done_reason="stop", prompt_eval_count=PROMPT_TOKENS, eval_count=7)
    return body


def reply(content: str = "", **message: Any) -> Reply:
    return Reply.json(line(done=True, content=content, **message))


def stream(*lines: dict[str, Any]) -> Reply:
    return Reply.ndjson([*lines, line(done=True)])


def spread_stream() -> Reply:
    """Text, thinking and two calls spread over several lines, as Ollama streams them."""
    return stream(
        line(thinking="Two"),
        line(thinking=" tools."),
        line(content="Let me "),
        line(tool_calls=[PARALLEL[0]]),
        line(content="check."),
        line(tool_calls=[PARALLEL[1]]),
    )


# -- tools on the wire -------------------------------------------------------------------
def test_functions_become_ollama_tools_and_a_call_becomes_tool_use(server: FakeServer) -> None:
    server.route("POST", CHAT, reply(tool_calls=PARALLEL[:1]))
    model = load(server, "ollama_chat")
    response = model(ask(model), tools=[get_weather, get_time])
    assert bodies(server)[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather.",
                "parameters": {
                    "type": "object",
                    "properties": {  # Ollama's tool schema has no `default`: the SDK drops it
                        "city": {"type": "string", "description": "The city's name."},
                        "unit": {"type": "string"},
                    },
                    "required": ["city"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "The local time in a time zone.",
                "parameters": {
                    "type": "object",
                    "properties": {"tz": {"type": "string"}},
                    "required": ["tz"],
                },
            },
        },
    ]
    assert response.tool_calls == EXPECTED_PARALLEL[:1]
    assert response.content == response.tool_calls
    assert response.text == ""
    assert response.usage.prompt_tokens == PROMPT_TOKENS


def test_optional_and_nested_parameters_keep_their_types(server: FakeServer) -> None:
    class Address(pydantic.BaseModel):
        """Where someone lives."""

        street: str

    class Lookup(pydantic.BaseModel):
        """Look a person up."""

        name: str | None = None
        home: Address

    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat")
    model(ask(model), tools=[Lookup])
    properties = bodies(server)[0]["tools"][0]["function"]["parameters"]["properties"]
    assert properties["name"]["type"] == ["string", "null"]  # not {} as anyOf would be
    assert properties["home"]["type"] == "object"  # the $ref resolved, not {}
    assert properties["home"]["description"] == "Where someone lives."


def test_pydantic_tools_and_tools_in_generate_args(server: FakeServer) -> None:
    class Lookup(pydantic.BaseModel):
        """Look a word up."""

        word: str

    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat", generate_args={"tools": [{"name": "ping"}]})
    model(ask(model))
    model(ask(model), tools=[Lookup], tool_choice="auto")
    first, second = bodies(server)
    assert first["tools"][0]["function"]["name"] == "ping"
    assert second["tools"][0]["function"]["name"] == "Lookup"
    assert second["tools"][0]["function"]["parameters"]["required"] == ["word"]
    assert "tool_choice" not in first and "tool_choice" not in second  # Ollama has none


def test_a_call_without_tools_sends_none(server: FakeServer) -> None:
    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat")
    model(ask(model))
    model(ask(model), tools=[])
    # the SDK always sends a `tools` list: an empty one is no tools
    assert all(not body["tools"] and "think" not in body for body in bodies(server))


@pytest.mark.parametrize(
    ("model_type", "generate_args", "named"),
    [
        (
            "ollama_chat",
            {"tools": [{"type": "function", "function": {"description": "x"}}]},
            "not a function",
        ),
        ("ollama_chat", {"tools": [{"name": "ping"}], "tool_choice": "pong"}, "'pong'"),
        ("ollama_chat", {"tools": [{"name": "ping"}], "tool_choice": "required"}, "cannot force"),
        ("ollama_chat", {"structured_model": "City"}, "structured_model"),
        ("ollama_chat", {"tools": [{"name": "ls", "parameters": {"type": "array"}}]}, "'ls'"),
        (
            "ollama_generate",
            {"structured_model": "City"},
            "`structured_model` must be a pydantic model class",
        ),
        (
            "ollama_generate",
            {"structured_modle": {"type": "object"}},
            "did you mean 'structured_model'",
        ),
        ("ollama_generate", {"tools": [get_weather]}, "unknown key 'tools'"),
    ],
)
def test_bad_tools_in_generate_args_fail_the_config(
    model_type: str, generate_args: dict[str, Any], named: str, server: FakeServer
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(server, model_type, generate_args=generate_args)
    assert "generate_args" in str(caught.value) and named in str(caught.value)
    assert server.requests == []


def test_an_unknown_generate_arg_gets_a_did_you_mean(server: FakeServer) -> None:
    with pytest.raises(ConfigError, match="tools"):
        load(server, "ollama_chat", generate_args={"tool": []})


# -- tool_choice -------------------------------------------------------------------------
def test_tool_choice_none_sends_no_tools_and_auto_sends_them(server: FakeServer) -> None:
    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat")
    model(ask(model), tools=[get_weather], tool_choice="none")
    model(ask(model), tools=[get_weather], tool_choice="auto")
    first, second = bodies(server)
    assert first["tools"] == []  # what the SDK sends for no tools
    assert second["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("choice", ["required", "get_time"])
def test_forcing_a_tool_is_refused_because_ollama_cannot(choice: str, server: FakeServer) -> None:
    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat")
    with pytest.raises(BadRequestError, match="Ollama cannot force a tool call"):
        model(ask(model), tools=[get_weather, get_time], tool_choice=choice)
    with pytest.raises(BadRequestError, match="Ollama cannot force a tool call"):
        list(model.stream(ask(model), tools=[get_weather, get_time], tool_choice=choice))
    assert bodies(server) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tools": [get_weather], "tool_choice": "get_time"},
        {"tool_choice": "get_time"},
        {"tools": [42]},
        {"tools": [get_weather, get_weather]},
        {"structured_model": "City"},
        {"think": 3},
        {"tool_chioce": "auto"},
    ],
    ids=[
        "unknown-choice",
        "choice-without-tools",
        "bad-tool",
        "twice",
        "bad-model",
        "think",
        "typo",
    ],
)
def test_bad_tool_arguments_are_refused_before_sending(
    kwargs: dict[str, Any], server: FakeServer
) -> None:
    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat")
    with pytest.raises(BadRequestError):
        model(ask(model), **kwargs)
    with pytest.raises(BadRequestError):
        list(model.stream(ask(model), **kwargs))
    assert bodies(server) == []


# -- the round trip ----------------------------------------------------------------------


def test_parallel_calls_round_trip(server: FakeServer) -> None:
    server.route(
        "POST",
        CHAT,
        reply("Let me check.", tool_calls=PARALLEL, thinking="Two tools."),
        reply("Sunny in Paris; noon in Tokyo."),
    )
    model = load(server, "ollama_chat")
    question = Msg("user", "Weather in Paris and the time in Tokyo?", role="user")
    first = model(model.format(question), tools=[get_weather, get_time])
    assert first.tool_calls == EXPECTED_PARALLEL
    assert first.content[:2] == [
        {"type": "thinking", "thinking": "Two tools."},
        {"type": "text", "text": "Let me check."},
    ]
    results = Msg("tools", run_tools(first), role="tool")
    final = model(model.format(question, first.to_msg("agent"), results), tools=[get_weather])
    assert final.text == "Sunny in Paris; noon in Tokyo."
    assert final.tool_calls is None
    sent = bodies(server)[1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "thinking": "Two tools.",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time", "arguments": {"tz": "Asia/Tokyo"}}},
        ],
    }
    assert sent[2:] == [
        {"role": "tool", "content": "21 degrees celsius in Paris", "tool_name": "get_weather"},
        {"role": "tool", "content": "12:00 in Asia/Tokyo", "tool_name": "get_time"},
    ]


def test_tool_names_sent_back_match_their_calls_over_two_turns(server: FakeServer) -> None:
    """Ollama ties a result to its call by ``tool_name`` (and order): each result must
    carry its own call's tool, for calls of one tool too, and for a second turn whose
    calls are numbered ``call_0``... again."""
    three = [
        wire_call("get_weather", {"city": "Paris"}),
        wire_call("get_weather", {"city": "Oslo"}),
        wire_call("get_time", {"tz": "Asia/Tokyo"}),
    ]
    server.route(
        "POST",
        CHAT,
        stream(line(tool_calls=three[:2]), line(tool_calls=three[2:])),
        reply(tool_calls=[wire_call("get_time", {"tz": "Europe/Oslo"})]),
        reply("Done."),
    )
    model = load(server, "ollama_chat")
    tools = [get_weather, get_time]
    question = Msg("user", "Weather in Paris and Oslo, time in Tokyo and Oslo?", role="user")
    first = collect(model.stream(model.format(question), tools=tools))
    turn = [question, first.to_msg("agent"), Msg("tools", run_tools(first), role="tool")]
    second = model(model.format(*turn), tools=tools)
    assert [call["id"] for call in second.tool_calls] == ["call_0"]  # an id seen before
    turn += [second.to_msg("agent"), Msg("tools", run_tools(second), role="tool")]
    assert model(model.format(*turn), tools=tools).text == "Done."
    sent = bodies(server)
    assert [message for message in sent[1]["messages"] if message["role"] == "tool"] == [
        {"role": "tool", "content": "21 degrees celsius in Paris", "tool_name": "get_weather"},
        {"role": "tool", "content": "21 degrees celsius in Oslo", "tool_name": "get_weather"},
        {"role": "tool", "content": "12:00 in Asia/Tokyo", "tool_name": "get_time"},
    ]
    last = sent[2]["messages"]
    assert last[:5] == sent[1]["messages"]
    assert last[5]["tool_calls"] == [
        {"function": {"name": "get_time", "arguments": {"tz": "Europe/Oslo"}}}
    ]
    assert last[6:] == [
        {"role": "tool", "content": "12:00 in Europe/Oslo", "tool_name": "get_time"}
    ]


def test_a_result_naming_another_tool_than_its_call_is_refused(server: FakeServer) -> None:
    server.route("POST", CHAT, reply("ok"))
    model = load(server, "ollama_chat")
    call = {"type": "tool_use", "id": "call_0", "name": "get_weather", "input": {"city": "Oslo"}}
    wrong = {"type": "tool_result", "id": "call_0", "name": "get_time", "output": "12:00"}
    assistant = Msg("agent", [call], role="assistant")
    with pytest.raises(BadRequestError) as caught:
        model.format(assistant, Msg("tools", [wrong], role="tool"))
    assert "'get_time'" in caught.value.message and "'get_weather'" in caught.value.message
    assert "tool_result(call, output)" in caught.value.message
    # with no call of that id before it, the result's own name is all there is to send
    assert model.format(Msg("tools", [wrong], role="tool")) == [
        {"role": "tool", "content": "12:00", "tool_name": "get_time"}
    ]
    assert bodies(server) == []


def test_a_tool_call_without_text_is_formatted_with_object_arguments(server: FakeServer) -> None:
    model = load(server, "ollama_chat")
    call = {"type": "tool_use", "id": "call_0", "name": "f", "input": {"n": [1, 2]}}
    (message,) = model.format(Msg("agent", [call], role="assistant"))
    assert message == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "f", "arguments": {"n": [1, 2]}}}],
    }


def test_a_plain_tool_message_takes_its_tool_name_from_metadata(server: FakeServer) -> None:
    model = load(server, "ollama_chat")
    assert model.format(
        Msg("tool", "sunny", role="tool", metadata={"tool_name": "get_weather"}),
        Msg("tool", "cloudy", role="tool"),
    ) == [
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "cloudy"},
    ]


# -- streamed tool calls -----------------------------------------------------------------
def test_calls_streamed_over_several_lines_are_assembled(server: FakeServer) -> None:
    server.route("POST", CHAT, spread_stream())
    model = load(server, "ollama_chat")
    chunks = list(model.stream(ask(model), tools=[get_weather, get_time]))
    assert chunks[-1].tool_calls == EXPECTED_PARALLEL
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert all(chunk.tool_calls is None for chunk in chunks[:-1])
    response = collect(chunks)
    assert response.tool_calls == EXPECTED_PARALLEL
    assert response.text == "Let me check."
    assert response.thinking == "Two tools."
    assert response.content == [
        {"type": "thinking", "thinking": "Two tools."},
        {"type": "text", "text": "Let me check."},
        *EXPECTED_PARALLEL,
    ]


def test_several_calls_in_one_line_and_calls_of_one_name_stay_apart(server: FakeServer) -> None:
    calls = [
        wire_call("get_weather", {"city": "Paris"}),
        wire_call("get_weather", {"city": "Oslo"}),
    ]
    server.route("POST", CHAT, stream(line(tool_calls=calls), line(tool_calls=PARALLEL[1:])))
    model = load(server, "ollama_chat")
    response = collect(model.stream(ask(model), tools=[get_weather, get_time]))
    assert [(call["id"], call["name"], call["input"]) for call in response.tool_calls] == [
        ("call_0", "get_weather", {"city": "Paris"}),
        ("call_1", "get_weather", {"city": "Oslo"}),
        ("call_2", "get_time", {"tz": "Asia/Tokyo"}),
    ]


def test_astream_and_acall_agree(server: FakeServer) -> None:
    server.route(
        "POST",
        CHAT,
        spread_stream(),
        reply("Let me check.", tool_calls=PARALLEL, thinking="Two tools."),
    )
    model = load(server, "ollama_chat")

    async def both() -> tuple[Any, Any]:
        streamed = await acollect(model.astream(ask(model), tools=[get_weather]))
        plain = await model.acall(ask(model), tools=[get_weather])
        return streamed, plain

    streamed, plain = asyncio.run(both())
    assert streamed.tool_calls == plain.tool_calls == EXPECTED_PARALLEL
    assert streamed.content == plain.content
    assert streamed.text == plain.text == "Let me check."
    assert all(body["tools"][0]["function"]["name"] == "get_weather" for body in bodies(server))


@pytest.fixture
def ended() -> Iterator[list[Any]]:
    """The responses ``on_call_end`` receives while the test runs."""
    from modelwire import hookimpl, plugin_manager

    seen: list[Any] = []

    class Observer:
        @hookimpl
        def on_call_end(self, call: Any, response: Any) -> None:
            seen.append(response)

    observer = Observer()
    plugin_manager().register(observer)
    try:
        yield seen
    finally:
        plugin_manager().unregister(observer)


def test_a_stream_reports_assembled_calls_to_the_hooks(
    server: FakeServer, ended: list[Any]
) -> None:
    server.route("POST", CHAT, spread_stream())
    model = load(server, "ollama_chat")
    list(model.stream(ask(model), tools=[get_weather]))
    assert ended[-1].tool_calls == EXPECTED_PARALLEL
    assert ended[-1].thinking == "Two tools."


# -- malformed calls ---------------------------------------------------------------------
def test_arguments_that_are_not_an_object_raise_with_the_raw_text(server: FakeServer) -> None:
    bad = [wire_call("get_weather", '{"city": "Par')]
    server.route("POST", CHAT, reply(tool_calls=bad))
    model = load(server, "ollama_chat", retry={"max_retries": 2})
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), tools=[get_weather])
    assert caught.value.arguments == '{"city": "Par'
    assert "tool call 0" in str(caught.value) and "arguments" in str(caught.value)
    assert len(bodies(server)) == 1  # a parse error is not retried


def test_a_streamed_call_without_a_name_raises(server: FakeServer) -> None:
    server.route(
        "POST", CHAT, stream(line(content="Hi"), line(tool_calls=[{"function": {"arguments": {}}}]))
    )
    model = load(server, "ollama_chat")
    with pytest.raises(ResponseParseError, match=r"tool call 0 .*function\.name") as caught:
        list(model.stream(ask(model), tools=[get_weather]))
    assert caught.value.partial_text == "Hi"


# -- structured output -------------------------------------------------------------------
class City(pydantic.BaseModel):
    name: str
    population: int
    nickname: str | None = None


CITY_JSON = '{"name": "Paris", "population": 2100000, "nickname": null}'


def test_structured_model_is_sent_as_format_and_validated(server: FakeServer) -> None:
    server.route("POST", CHAT, reply(CITY_JSON))
    model = load(server, "ollama_chat", format="json")  # the call's model replaces it
    response = model(ask(model), structured_model=City)
    assert response.parsed == City(name="Paris", population=2100000)
    body = bodies(server)[0]
    assert body["format"] == City.model_json_schema()
    assert "structured_model" not in body


def test_a_schema_dict_in_generate_args_gives_a_dict(server: FakeServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name"],
    }
    server.route("POST", CHAT, reply('{"name": "Paris", "population": 3}'))
    model = load(server, "ollama_chat", generate_args={"structured_model": schema})
    assert model(ask(model)).parsed == {"name": "Paris", "population": 3}
    assert bodies(server)[0]["format"] == schema


def test_a_reply_off_the_schema_raises_with_text_and_errors(server: FakeServer) -> None:
    server.route("POST", CHAT, reply('{"name": "Paris"}'))
    model = load(server, "ollama_chat")
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), structured_model=City)
    assert caught.value.text == '{"name": "Paris"}'
    assert caught.value.validation_errors[0].startswith("population:")


def test_a_structured_stream_parses_its_last_chunk(server: FakeServer) -> None:
    pieces = ['{"name": "Paris",', ' "population": 2100000}']
    server.route(
        "POST",
        CHAT,
        stream(*(line(content=piece) for piece in pieces)),
        stream(line(content='{"name": 1}')),
    )
    model = load(server, "ollama_chat")
    chunks = list(model.stream(ask(model), structured_model=City))
    assert isinstance(chunks[-1].parsed, City)
    assert all(chunk.parsed is None for chunk in chunks[:-1])
    assert collect(chunks).parsed == City(name="Paris", population=2100000)
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model), structured_model=City))
    assert caught.value.partial_text == '{"name": 1}'
    assert [body["format"]["title"] for body in bodies(server)] == ["City", "City"]


# -- structured output on ollama_generate: the same `format` schema, on /api/generate ----------
def generated(server: FakeServer) -> list[Any]:
    return [request.json() for request in server.requests_to(GENERATE, "POST")]


def test_generate_sends_structured_model_as_format_and_validates(server: FakeServer) -> None:
    server.route("POST", GENERATE, generate_service([CITY_JSON]))
    model = load(server, "ollama_generate", format="json")  # the call's model replaces it
    response = model("Describe Paris.", structured_model=City)
    assert response.parsed == City(name="Paris", population=2100000)
    assert response.text == CITY_JSON
    body = generated(server)[0]
    assert body["format"] == City.model_json_schema()
    assert body["prompt"] == "Describe Paris."
    assert "structured_model" not in body


def test_generate_takes_a_schema_from_generate_args_and_a_call_overrides_it(
    server: FakeServer,
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    server.route("POST", GENERATE, generate_service([CITY_JSON]))
    model = load(server, "ollama_generate", generate_args={"structured_model": schema})
    assert model("Name a city.").parsed == {
        "name": "Paris",
        "population": 2100000,
        "nickname": None,
    }
    assert model("Name a city.", structured_model=City).parsed == City(
        name="Paris", population=2100000
    )
    assert [body["format"] for body in generated(server)] == [schema, City.model_json_schema()]


def test_generate_without_structured_model_has_no_parsed(server: FakeServer) -> None:
    server.route("POST", GENERATE, generate_service([CITY_JSON]))
    model = load(server, "ollama_generate")
    response = model("Describe Paris.")
    assert response.parsed is None
    assert collect(model.stream("Describe Paris.")).parsed is None
    assert all("format" not in body for body in generated(server))


def test_generate_reply_off_the_schema_raises_with_text_and_errors(server: FakeServer) -> None:
    server.route("POST", GENERATE, generate_service(['{"name": "Paris"}']))
    model = load(server, "ollama_generate", retry={"max_retries": 2})
    with pytest.raises(ResponseParseError) as caught:
        model("Describe Paris.", structured_model=City)
    assert caught.value.text == '{"name": "Paris"}'
    assert caught.value.validation_errors[0].startswith("population:")
    assert len(generated(server)) == 1  # a reply off the schema is not retried


def test_generate_structured_stream_acall_and_astream_agree(server: FakeServer) -> None:
    pieces = ['{"name": "Paris",', ' "population": 2100000}']
    server.route("POST", GENERATE, generate_service(pieces))
    model = load(server, "ollama_generate")
    expected = City(name="Paris", population=2100000)
    chunks = list(model.stream("Describe Paris.", structured_model=City))
    assert [chunk.text for chunk in chunks] == [*pieces, ""]
    assert chunks[-1].parsed == expected
    assert all(chunk.parsed is None for chunk in chunks[:-1])

    async def both() -> tuple[Any, Any]:
        streamed = await acollect(model.astream("Describe Paris.", structured_model=City))
        plain = await model.acall("Describe Paris.", structured_model=City)
        return streamed, plain

    streamed, plain = asyncio.run(both())
    assert collect(chunks).parsed == streamed.parsed == plain.parsed == expected
    assert all(body["format"]["title"] == "City" for body in generated(server))
    assert len(generated(server)) == 3


def test_generate_structured_stream_off_the_schema_keeps_its_text(server: FakeServer) -> None:
    server.route("POST", GENERATE, generate_service(['{"name":', " 1}"]))
    model = load(server, "ollama_generate")
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream("Describe Paris.", structured_model=City))
    assert caught.value.partial_text == '{"name": 1}'
    assert caught.value.validation_errors


@pytest.mark.parametrize(
    ("kwargs", "refused"),
    [
        (
            {"tools": [get_weather]},
            "'ollama_generate' takes no `tools` (it takes `structured_model` only);"
            " nothing was sent",
        ),
        ({"tool_choice": "auto"}, "'ollama_generate' takes no `tool_choice`"),
        ({"structured_model": "City"}, "`structured_model` must be"),
        ({"think": True}, "ollama_generate takes no argument 'think'"),
        ({"prompt_is": "a typo"}, "ollama_generate takes no argument 'prompt_is'"),
    ],
    ids=["tools", "tool_choice", "bad-model", "think", "typo"],
)
def test_generate_refuses_what_it_cannot_take_before_sending(
    kwargs: dict[str, Any], refused: str, server: FakeServer
) -> None:
    server.route("POST", GENERATE, generate_service())
    model = load(server, "ollama_generate")

    async def refusals() -> list[BadRequestError]:
        errors = []
        with pytest.raises(BadRequestError) as caught:
            await model.acall("Weather?", **kwargs)
        errors.append(caught.value)
        with pytest.raises(BadRequestError) as caught:
            await acollect(model.astream("Weather?", **kwargs))
        errors.append(caught.value)
        return errors

    errors = asyncio.run(refusals())
    for call in (model, lambda *a, **k: list(model.stream(*a, **k))):
        with pytest.raises(BadRequestError) as caught:
            call("Weather?", **kwargs)
        errors.append(caught.value)
    for error in errors:  # one line naming what was refused
        assert refused in error.message and "\n" not in error.message, error.message
    assert generated(server) == []


def test_generate_names_what_a_prompt_must_be(server: FakeServer) -> None:
    server.route("POST", GENERATE, generate_service())
    model = load(server, "ollama_generate")
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(BadRequestError, match="takes a prompt string, not list") as caught:
        model(messages)
    assert "model.format" in str(caught.value)
    assert generated(server) == []


# -- images ------------------------------------------------------------------------------
def test_image_blocks_become_base64_images(server: FakeServer, tmp_path: Path) -> None:
    server.route("POST", CHAT, reply("Two cats."))
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    gif = base64.b64encode(b"GIF89a").decode()
    model = load(server, "ollama_chat")
    msg = Msg(
        "user",
        [
            {"type": "text", "text": "What are "},
            {"type": "image", "source": {"type": "url", "url": str(picture)}},
            {"type": "text", "text": "these?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": gif}},
        ],
        role="user",
    )
    model(model.format(msg))
    (sent,) = bodies(server)[0]["messages"]
    assert sent == {
        "role": "user",
        "content": "What are these?",
        "images": [base64.b64encode(PNG).decode(), gif],
    }


def test_a_web_image_is_refused_because_modelwire_never_downloads(server: FakeServer) -> None:
    model = load(server, "ollama_chat")
    block = {"type": "image", "source": {"type": "url", "url": "https://img.test/a.png"}}
    with pytest.raises(BadRequestError, match="does not download"):
        model.format(Msg("user", [block], role="user"))


def test_an_image_a_tool_returns_goes_with_its_result(server: FakeServer) -> None:
    model = load(server, "ollama_chat")
    data = base64.b64encode(PNG).decode()
    call = {"type": "tool_use", "id": "call_0", "name": "snapshot", "input": {}}
    output = [
        {"type": "text", "text": "the camera sees:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
    ]
    assert model.format(Msg("tools", [tool_result(call, output)], role="tool")) == [
        {"role": "tool", "content": "the camera sees:", "tool_name": "snapshot", "images": [data]}
    ]


# -- thinking ----------------------------------------------------------------------------
def test_think_is_sent_per_call_and_from_generate_args(server: FakeServer) -> None:
    server.route("POST", CHAT, reply("42", thinking="six times seven"))
    model = load(server, "ollama_chat", generate_args={"think": True})
    first = model(ask(model))
    list(model.stream(ask(model), think="high"))
    assert [body["think"] for body in bodies(server)] == [True, "high"]
    assert first.thinking == "six times seven"
    assert first.content == [
        {"type": "thinking", "thinking": "six times seven"},
        {"type": "text", "text": "42"},
    ]


def test_thinking_streams_and_is_sent_back(server: FakeServer, ended: list[Any]) -> None:
    server.route(
        "POST",
        CHAT,
        stream(line(thinking="six times"), line(thinking=" seven"), line(content="42")),
        reply("Yes."),
    )
    model = load(server, "ollama_chat")
    chunks = list(model.stream(ask(model), think=True))
    assert [chunk.thinking for chunk in chunks[:2]] == ["six times", " seven"]
    streamed = collect(chunks)
    assert streamed.thinking == ended[-1].thinking == "six times seven"
    model(model.format(streamed.to_msg("agent"), Msg("user", "Sure?", role="user")))
    assert bodies(server)[1]["messages"] == [
        {"role": "assistant", "content": "42", "thinking": "six times seven"},
        {"role": "user", "content": "Sure?"},
    ]


# -- the README's loop -------------------------------------------------------------------
README = Path(__file__).resolve().parents[3] / "plugins" / "ollama" / "README.md"


def readme_examples() -> list[str]:
    """The Python blocks of the README's tools section: the chat loop, then generate's."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Tools, structured output, images and thinking", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def readme_loop() -> str:
    return readme_examples()[0]


def test_the_readme_tool_loop_runs(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    import modelwire

    server.route(
        "POST",
        CHAT,
        reply(tool_calls=[wire_call("get_weather", {"city": "Paris"})]),
        reply("It is sunny in Paris."),
    )
    modelwire.init([config(server, "ollama_chat", config_name="my_ollama_chat_config")])
    try:
        exec(compile(readme_loop(), str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - the README is ours
    finally:
        modelwire.init(clear_existing=True)
    assert capsys.readouterr().out == "It is sunny in Paris.\n"
    first, second = bodies(server)
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert second["messages"][2] == {
        "role": "tool",
        "content": "Sunny in Paris",
        "tool_name": "get_weather",
    }


def test_the_readme_generate_example_runs(server: FakeServer) -> None:
    import modelwire

    server.route("POST", GENERATE, generate_service(['{"name": "Paris", "population": 3}']))
    modelwire.init([config(server, "ollama_generate", config_name="my_ollama_generate_config")])
    scope: dict[str, Any] = {"__name__": "readme"}
    try:
        exec(compile(readme_examples()[1], str(README), "exec"), scope)  # noqa: S102 - the README is ours
    finally:
        modelwire.init(clear_existing=True)
    city = scope["city"]
    assert type(city).__name__ == "City" and (city.name, city.population) == ("Paris", 3)
    assert generated(server)[0]["format"]["title"] == "City"
