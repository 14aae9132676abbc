"""Tools, structured output, content blocks and reasoning on ``openai``: the real SDK
over real HTTP against OpenAI's wire format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
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
)
from modelwire.testing import FakeServer, Reply
from modelwire.testing.tools import get_time, get_weather, run_tools

KEY = "sk-test-0123456789abcdef"
CHAT = "/v1/chat/completions"

Loader = Callable[[dict[str, Any]], Any]


def chat_config(**overrides: Any) -> dict[str, Any]:
    return {
        "config_name": "chat",
        "model_type": "openai",
        "model_name": "gpt-4o",
        "api_key": KEY,
        **overrides,
    }


def bodies(server: FakeServer) -> list[Any]:
    return [request.json() for request in server.requests_to(CHAT, "POST")]


def ask(model: Any, text: str = "Weather in Paris and the time in Tokyo?") -> list[dict[str, Any]]:
    return model.format(Msg("user", text, role="user"))


def wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


PARALLEL = [
    wire_call("call_a", "get_weather", '{"city": "Paris"}'),
    wire_call("call_b", "get_time", '{"tz": "Asia/Tokyo"}'),
]


def event(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": choices,
        **extra,
    }


def delta(**fields: Any) -> dict[str, Any]:
    return event([{"index": 0, "delta": fields}])


def fragment(index: int, arguments: str, **first: Any) -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if first:
        piece.update(id=first["id"], type="function")
        piece["function"]["name"] = first["name"]
    return delta(tool_calls=[piece])


def interleaved_stream() -> list[dict[str, Any]]:
    """Two parallel calls whose argument JSON arrives split and interleaved."""
    return [
        delta(role="assistant", content=None),
        fragment(0, "", id="call_a", name="get_weather"),
        fragment(1, '{"t', id="call_b", name="get_time"),
        fragment(0, '{"ci'),
        fragment(1, 'z": "As'),
        fragment(0, 'ty": "Pa'),
        fragment(1, 'ia/Tokyo"}'),
        fragment(0, 'ris"}'),
        event([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        event([], usage={"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}),
    ]


def tool_reply(wire: Any, calls: list[dict[str, Any]], text: str | None = None) -> Reply:
    return Reply.json(wire.completion(text, tool_calls=calls, finish_reason="tool_calls"))


def stream_reply(events: list[dict[str, Any]]) -> Reply:
    return Reply.sse(events, done="[DONE]")


# -- tools on the wire -------------------------------------------------------------------
def test_functions_become_openai_tools(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", CHAT, tool_reply(wire, PARALLEL[:1]))
    model = load(chat_config())
    response = model(ask(model), tools=[get_weather, get_time])
    assert bodies(server)[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "The city's name."},
                        "unit": {"type": "string", "default": "celsius"},
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
    assert response.tool_calls == [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert response.content == response.tool_calls
    assert response.text == ""
    assert response.finish_reason == "tool_calls"


def test_pydantic_tools_and_tools_in_generate_args(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    class Lookup(pydantic.BaseModel):
        """Look a word up."""

        word: str

    server.route("POST", CHAT, wire.chat())
    model = load(chat_config(generate_args={"tools": [{"name": "ping"}], "tool_choice": "auto"}))
    model(ask(model))
    model(ask(model), tools=[Lookup], tool_choice="Lookup")
    first, second = bodies(server)
    assert first["tools"][0]["function"]["name"] == "ping"
    assert first["tool_choice"] == "auto"
    assert second["tools"][0]["function"]["name"] == "Lookup"
    assert second["tools"][0]["function"]["parameters"]["required"] == ["word"]
    assert second["tool_choice"] == {"type": "function", "function": {"name": "Lookup"}}


@pytest.mark.parametrize(
    ("generate_args", "named"),
    [
        ({"tools": [{"type": "function", "function": {"description": "x"}}]}, "not a function"),
        ({"tools": [{"name": "ping"}], "tool_choice": "pong"}, "'pong'"),
        ({"structured_model": "City"}, "structured_model"),
    ],
)
def test_bad_tools_in_generate_args_fail_the_config(
    generate_args: dict[str, Any], named: str, server: FakeServer, load: Loader
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(chat_config(generate_args=generate_args))
    assert "generate_args" in str(caught.value) and named in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes_pass_through(
    choice: str, server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", CHAT, wire.chat())
    model = load(chat_config())
    model(ask(model), tools=[get_weather], tool_choice=choice)
    assert bodies(server)[0]["tool_choice"] == choice


def test_tool_choice_forcing_a_tool(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", CHAT, tool_reply(wire, PARALLEL[1:]))
    model = load(chat_config())
    response = model(ask(model), tools=[get_weather, get_time], tool_choice="get_time")
    assert bodies(server)[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    assert response.tool_calls[0]["name"] == "get_time"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tools": [get_weather], "tool_choice": "get_time"},
        {"tool_choice": "get_time"},
        {"tools": [42]},
        {"tools": [get_weather, get_weather]},
        {"structured_model": "City"},
        {"structured_model": {"type": "object"}, "response_format": {"type": "json_object"}},
    ],
    ids=["unknown-choice", "choice-without-tools", "bad-tool", "twice", "bad-model", "both"],
)
def test_bad_tool_arguments_are_refused_before_sending(
    kwargs: dict[str, Any], server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", CHAT, wire.chat())
    model = load(chat_config())
    with pytest.raises(BadRequestError):
        model(ask(model), **kwargs)
    with pytest.raises(BadRequestError):
        list(model.stream(ask(model), **kwargs))
    assert bodies(server) == []


# -- the round trip ----------------------------------------------------------------------


def test_parallel_calls_round_trip(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route(
        "POST",
        CHAT,
        tool_reply(wire, PARALLEL, text="Let me check."),
        Reply.json(wire.completion("Sunny in Paris; noon in Tokyo.")),
    )
    model = load(chat_config())
    question = Msg("user", "Weather in Paris and the time in Tokyo?", role="user")
    first = model(model.format(question), tools=[get_weather, get_time])
    assert [call["id"] for call in first.tool_calls] == ["call_a", "call_b"]
    assert first.content[0] == {"type": "text", "text": "Let me check."}
    results = Msg("tools", run_tools(first), role="tool")
    final = model(model.format(question, first.to_msg("agent"), results), tools=[get_weather])
    assert final.text == "Sunny in Paris; noon in Tokyo."
    assert final.tool_calls is None
    sent = bodies(server)[1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            wire_call("call_a", "get_weather", '{"city": "Paris"}'),
            wire_call("call_b", "get_time", '{"tz": "Asia/Tokyo"}'),
        ],
        "name": "agent",
    }
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": "21 degrees celsius in Paris"},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00 in Asia/Tokyo"},
    ]


def test_a_tool_call_without_text_sends_null_content(wire: Any, load: Loader) -> None:
    model = load(chat_config())
    call = {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    (message,) = model.format(Msg("agent", [call], role="assistant"))
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


def test_a_tool_message_needs_a_call_id(load: Loader) -> None:
    model = load(chat_config())
    with pytest.raises(BadRequestError, match="tool_call_id"):
        model.format(Msg("tool", "sunny", role="tool"))
    assert model.format(Msg("tool", "sunny", role="tool", metadata={"tool_call_id": "c1"})) == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    ]


# -- streamed tool calls -----------------------------------------------------------------
EXPECTED_PARALLEL = [
    {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
]


def test_interleaved_streamed_fragments_are_assembled(server: FakeServer, load: Loader) -> None:
    server.route("POST", CHAT, stream_reply(interleaved_stream()))
    model = load(chat_config())
    chunks = list(model.stream(ask(model), tools=[get_weather, get_time]))
    assert chunks[-1].tool_calls == EXPECTED_PARALLEL
    assert chunks[-1].usage.total_tokens == 32
    finish = next(i for i, chunk in enumerate(chunks) if chunk.finish_reason)
    assert all(chunk.tool_calls is None for chunk in chunks[:finish])
    assert all(chunk.tool_calls == EXPECTED_PARALLEL for chunk in chunks[finish:])
    response = collect(chunks)
    assert response.tool_calls == EXPECTED_PARALLEL
    assert response.content == EXPECTED_PARALLEL
    assert response.finish_reason == "tool_calls"


def test_astream_assembles_and_collects_as_a_plain_call(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route(
        "POST",
        CHAT,
        stream_reply(interleaved_stream()),
        tool_reply(wire, PARALLEL),
    )
    model = load(chat_config())

    async def both() -> tuple[Any, Any]:
        streamed = await acollect(model.astream(ask(model), tools=[get_weather]))
        plain = await model.acall(ask(model), tools=[get_weather])
        return streamed, plain

    streamed, plain = asyncio.run(both())
    assert streamed.tool_calls == plain.tool_calls == EXPECTED_PARALLEL
    assert streamed.content == plain.content
    assert streamed.text == plain.text == ""


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
    server: FakeServer, load: Loader, ended: list[Any]
) -> None:
    server.route("POST", CHAT, stream_reply(interleaved_stream()))
    model = load(chat_config())
    list(model.stream(ask(model), tools=[get_weather]))
    assert ended[-1].tool_calls == EXPECTED_PARALLEL
    assert ended[-1].content == EXPECTED_PARALLEL


def test_an_empty_tool_list_is_not_sent(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", CHAT, wire.chat())
    model = load(chat_config())
    model(ask(model), tools=[])
    assert "tools" not in bodies(server)[0]


# -- malformed arguments -----------------------------------------------------------------
def test_repairable_arguments_are_repaired(server: FakeServer, wire: Any, load: Loader) -> None:
    calls = [wire_call("c1", "get_weather", '```json\n{"city": "Paris",}\n```')]
    server.route("POST", CHAT, tool_reply(wire, calls))
    model = load(chat_config())
    assert model(ask(model)).tool_calls[0]["input"] == {"city": "Paris"}


def test_unreadable_arguments_raise_with_the_raw_text(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    calls = [wire_call("c1", "get_weather", '{"city": "Par')]
    server.route("POST", CHAT, tool_reply(wire, calls))
    model = load(chat_config(retry={"max_retries": 2}))
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model))
    assert caught.value.arguments == '{"city": "Par'
    assert "get_weather" in str(caught.value)
    assert len(bodies(server)) == 1  # a parse error is not retried


def test_unreadable_streamed_arguments_raise(server: FakeServer, load: Loader) -> None:
    events = [
        fragment(0, '{"city": ', id="c1", name="get_weather"),
        fragment(0, '"Paris"'),
        event([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
    ]
    server.route("POST", CHAT, stream_reply(events))
    model = load(chat_config())
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model)))
    assert caught.value.arguments == '{"city": "Paris"'


# -- structured output -------------------------------------------------------------------
class City(pydantic.BaseModel):
    name: str
    population: int
    nickname: str | None = None


CITY_JSON = '{"name": "Paris", "population": 2100000, "nickname": null}'


def test_structured_model_sends_a_strict_json_schema(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", CHAT, Reply.json(wire.completion(CITY_JSON)))
    model = load(chat_config())
    response = model(ask(model), structured_model=City)
    assert isinstance(response.parsed, City) and response.parsed.population == 2100000
    response_format = bodies(server)[0]["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert (spec["name"], spec["strict"]) == ("City", True)
    assert spec["schema"]["additionalProperties"] is False
    assert spec["schema"]["required"] == ["name", "population", "nickname"]
    assert "default" not in spec["schema"]["properties"]["nickname"]
    assert "structured_model" not in bodies(server)[0]


def test_nested_objects_are_strict_too(server: FakeServer, wire: Any, load: Loader) -> None:
    class Address(pydantic.BaseModel):
        street: str
        properties: list[str] = []

    class Person(pydantic.BaseModel):
        name: str
        home: Address
        others: list[Address] | None = None

    reply = '{"name": "Ann", "home": {"street": "Main", "properties": []}, "others": null}'
    server.route("POST", CHAT, Reply.json(wire.completion(reply)))
    model = load(chat_config())
    assert model(ask(model), structured_model=Person).parsed.home.street == "Main"
    schema = bodies(server)[0]["response_format"]["json_schema"]["schema"]
    address = schema["$defs"]["Address"]
    assert address["additionalProperties"] is False
    assert address["required"] == ["street", "properties"]
    assert address["properties"]["properties"]["type"] == "array"  # a field, not a schema key
    assert "required" not in address["properties"]


def test_a_schema_dict_gives_a_dict(server: FakeServer, wire: Any, load: Loader) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name"],
    }
    server.route("POST", CHAT, Reply.json(wire.completion('{"name": "Paris", "population": 3}')))
    model = load(chat_config(generate_args={"structured_model": schema}))
    assert model(ask(model)).parsed == {"name": "Paris", "population": 3}
    sent = bodies(server)[0]["response_format"]["json_schema"]
    assert sent["name"] == "response"
    assert sent["schema"]["required"] == ["name", "population"]


def test_a_reply_off_the_schema_raises(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", CHAT, Reply.json(wire.completion('{"name": "Paris"}')))
    model = load(chat_config())
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), structured_model=City)
    assert caught.value.text == '{"name": "Paris"}'
    assert caught.value.validation_errors[0].startswith("population:")


def test_a_refusal_raises(server: FakeServer, wire: Any, load: Loader) -> None:
    payload = wire.completion(None)
    payload["choices"][0]["message"]["refusal"] = "I cannot help with that."
    server.route("POST", CHAT, Reply.json(payload))
    model = load(chat_config())
    with pytest.raises(ResponseParseError, match="refused"):
        model(ask(model), structured_model=City)


def test_a_structured_stream_parses_its_last_chunk(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", CHAT, wire.chat(CITY_JSON), wire.chat('{"name": 1}'))
    model = load(chat_config())
    chunks = list(model.stream(ask(model), structured_model=City))
    finishing = [chunk for chunk in chunks if chunk.finish_reason]
    assert finishing and all(isinstance(chunk.parsed, City) for chunk in finishing)
    assert collect(chunks).parsed == City(name="Paris", population=2100000)
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model), structured_model=City))
    assert caught.value.partial_text == '{"name": 1}'


# -- images and reasoning ----------------------------------------------------------------
def test_image_blocks_become_image_url_parts(
    server: FakeServer, wire: Any, load: Loader, tmp_path: Any
) -> None:
    server.route("POST", CHAT, wire.chat())
    picture = tmp_path / "cat.png"
    picture.write_bytes(wire.png_bytes)
    model = load(chat_config())
    msg = Msg(
        "user",
        [
            {"type": "text", "text": "What are these?"},
            {"type": "image", "source": {"type": "url", "url": "https://img.test/a.png"}},
            {"type": "image", "source": {"type": "url", "url": str(picture)}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
            },
        ],
        role="user",
    )
    model(model.format(msg))
    parts = bodies(server)[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What are these?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}
    assert parts[2]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert parts[3] == {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}}


def test_reasoning_content_becomes_thinking(
    server: FakeServer, wire: Any, load: Loader, ended: list[Any]
) -> None:
    payload = wire.completion("42")
    payload["choices"][0]["message"]["reasoning_content"] = "6 times 7"
    events = [
        delta(role="assistant", reasoning_content="6 times"),
        delta(reasoning_content=" 7"),
        delta(content="42"),
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ]
    server.route("POST", CHAT, Reply.json(payload), stream_reply(events))
    model = load(chat_config())
    plain = model(ask(model))
    streamed = collect(model.stream(ask(model)))
    assert plain.thinking == streamed.thinking == ended[-1].thinking == "6 times 7"
    assert (
        plain.content
        == streamed.content
        == [
            {"type": "thinking", "thinking": "6 times 7"},
            {"type": "text", "text": "42"},
        ]
    )
    (sent_back,) = model.format(plain.to_msg("agent"))
    assert sent_back == {"role": "assistant", "content": "42", "name": "agent"}


def reasoning_stream() -> list[dict[str, Any]]:
    """A DeepSeek-style stream: reasoning, then one call whose arguments arrive split."""
    return [
        delta(role="assistant", content=None, reasoning_content="Paris "),
        delta(reasoning_content="first."),
        fragment(0, '{"ci', id="call_a", name="get_weather"),
        fragment(0, 'ty": "Paris"}'),
        event([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
    ]


def reasoning_tool_reply(wire: Any) -> Reply:
    payload = wire.completion(None, tool_calls=PARALLEL[:1], finish_reason="tool_calls")
    payload["choices"][0]["message"]["reasoning_content"] = "Paris first."
    return Reply.json(payload)


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_thinking_goes_back_as_reasoning_content_with_the_tool_calls(
    streamed: bool, server: FakeServer, wire: Any, load: Loader
) -> None:
    """DeepSeek's thinking mode refuses the next request (HTTP 400) unless an assistant
    turn with tool calls carries its reasoning_content back."""
    first_reply = stream_reply(reasoning_stream()) if streamed else reasoning_tool_reply(wire)
    answer = wire.completion("Sunny.")
    answer["choices"][0]["message"]["reasoning_content"] = "It said sunny."
    server.route("POST", CHAT, first_reply, Reply.json(answer), wire.chat())
    model = load(chat_config())
    question = Msg("user", "Weather in Paris?", role="user")
    if streamed:
        first = collect(model.stream(model.format(question), tools=[get_weather]))
    else:
        first = model(model.format(question), tools=[get_weather])
    assert first.content == [
        {"type": "thinking", "thinking": "Paris first."},
        EXPECTED_PARALLEL[0],
    ]
    results = Msg("tools", run_tools(first), role="tool")
    history = [question, first.to_msg("agent"), results]
    final = model(model.format(*history), tools=[get_weather])
    assert bodies(server)[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?", "name": "user"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": PARALLEL[:1],
            "reasoning_content": "Paris first.",
            "name": "agent",
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "21 degrees celsius in Paris"},
    ]
    # The final answer's thinking led to no call: it is not sent (DeepSeek ignores it).
    model(model.format(*history, final.to_msg("agent"), Msg("user", "Thanks", role="user")))
    assert bodies(server)[2]["messages"][1]["reasoning_content"] == "Paris first."
    assert bodies(server)[2]["messages"][3] == {
        "role": "assistant",
        "content": "Sunny.",
        "name": "agent",
    }


def test_send_reasoning_false_leaves_the_thinking_out(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", CHAT, reasoning_tool_reply(wire))
    model = load(chat_config(send_reasoning=False))
    first = model(ask(model), tools=[get_weather])
    assert first.thinking == "Paris first."
    (message,) = model.format(first.to_msg("agent"))
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": PARALLEL[:1],
        "name": "agent",
    }


def test_send_reasoning_is_checked_at_load(server: FakeServer, load: Loader) -> None:
    with pytest.raises(ConfigError, match="send_reasoning"):
        load(chat_config(send_reasoning="yes"))
    assert server.requests == []


def test_an_image_in_a_tool_result_is_left_out_with_a_warning(
    server: FakeServer, wire: Any, load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("POST", CHAT, wire.chat())
    model = load(chat_config())
    call = EXPECTED_PARALLEL[0]
    output = [
        {"type": "text", "text": "Here is the map."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
    ]
    result = {"type": "tool_result", "id": "call_a", "name": "get_weather", "output": output}
    with caplog.at_level("WARNING", logger="modelwire"):
        messages = model.format(Msg("agent", [call], role="assistant"), Msg("t", [result]))
    model(messages)
    assert bodies(server)[0]["messages"][1] == {
        "role": "tool",
        "tool_call_id": "call_a",
        "content": "Here is the map.",
    }
    (warning,) = [r for r in caplog.records if r.name == "modelwire"]
    assert "1 image(s) of a tool message were left out" in warning.getMessage()
    assert warning.getMessage().startswith("chat: ")
    # A tool message answered by metadata's tool_call_id, its content blocks.
    caplog.clear()
    with caplog.at_level("WARNING", logger="modelwire"):
        (message,) = model.format(Msg("t", output, role="tool", metadata={"tool_call_id": "c"}))
    assert message == {"role": "tool", "tool_call_id": "c", "content": "Here is the map."}
    assert "1 image(s) of a tool message were left out" in caplog.text


def test_tools_through_acall(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", CHAT, tool_reply(wire, PARALLEL))
    model = load(chat_config())
    response = asyncio.run(model.acall(ask(model), tools=[get_weather, get_time]))
    assert response.tool_calls == EXPECTED_PARALLEL
    assert json.loads(json.dumps(bodies(server)[0]["tools"]))[1]["function"]["name"] == "get_time"


# -- the README's loop -------------------------------------------------------------------
README = Path(__file__).resolve().parents[3] / "README.md"


def readme_loop() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Tools, structured output and content blocks", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_tool_loop_runs(
    server: FakeServer, wire: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelwire

    server.route(
        "POST",
        CHAT,
        tool_reply(wire, [wire_call("call_1", "get_weather", '{"city": "Paris"}')]),
        Reply.json(wire.completion("It is sunny in Paris.")),
    )
    config = chat_config(
        config_name="my_openai_config",
        client_args={"base_url": server.url + "/v1"},
        retry={"max_retries": 0},
    )
    modelwire.init([config])
    try:
        exec(compile(readme_loop(), str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - the README is ours
    finally:
        modelwire.init(clear_existing=True)
    assert capsys.readouterr().out == "It is sunny in Paris.\n"
    first, second = bodies(server)
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert second["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "Sunny in Paris",
    }


def test_reasoning_and_cached_tokens_are_in_usage(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 30,
        "total_tokens": 50,
        "completion_tokens_details": {"reasoning_tokens": 24},
        "prompt_tokens_details": {"cached_tokens": 16},
    }
    server.route("POST", CHAT, Reply.json(wire.completion("42", usage=usage)))
    model = load(chat_config())
    response = model(ask(model))
    assert response.usage is not None
    assert (response.usage.reasoning_tokens, response.usage.cached_tokens) == (24, 16)
    assert response.usage.to_dict()["reasoning_tokens"] == 24


def test_records_name_the_tool_calls_without_their_arguments(
    server: FakeServer, wire: Any, load: Loader, tmp_path: Path
) -> None:
    from modelwire import records

    server.route("POST", CHAT, tool_reply(wire, PARALLEL))
    path = tmp_path / "records.jsonl"
    records.configure(path)
    try:
        model = load(chat_config())
        model(ask(model), tools=[get_weather, get_time])
    finally:
        records.configure(None)
    record = json.loads(path.read_text())
    assert record["response"]["tool_calls"] == [
        {"id": "call_a", "name": "get_weather"},
        {"id": "call_b", "name": "get_time"},
    ]
    assert "Paris" not in json.dumps(record["response"])
