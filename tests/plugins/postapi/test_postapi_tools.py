"""Tools, structured output, content blocks and reasoning on ``post_api_chat``: the real
``httpx`` client over real HTTP against an OpenAI-compatible service (vLLM, TGI,
modelwire-serve) and the seed's ``/llm/`` shape."""

from __future__ import annotations

import asyncio
import base64
import json
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

from .conftest import MODEL, USAGE_JSON, llm_reply, post_api, post_api_chat

CHAT = "/v1/chat/completions"
STREAMING = {
    "stream": True,
    "stream_args": {"stream": True, "stream_options": {"include_usage": True}},
}


def bodies(server: FakeServer, path: str = CHAT) -> list[Any]:
    return [request.json() for request in server.requests_to(path, "POST")]


def ask(model: Any, text: str = "Weather in Paris and the time in Tokyo?") -> list[dict[str, Any]]:
    return model.format(Msg("user", text, role="user"))


def wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


PARALLEL = [
    wire_call("call_a", "get_weather", '{"city": "Paris"}'),
    wire_call("call_b", "get_time", '{"tz": "Asia/Tokyo"}'),
]
EXPECTED_PARALLEL = [
    {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
]


def completion(
    text: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    **message: Any,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as vLLM sends it."""
    body: dict[str, Any] = {"role": "assistant", "content": text, **message}
    if tool_calls is not None:
        body["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": body, "finish_reason": finish_reason}],
        "usage": USAGE_JSON,
    }


def tool_reply(calls: list[dict[str, Any]], text: str | None = None) -> Reply:
    return Reply.json(completion(text, tool_calls=calls, finish_reason="tool_calls"))


def event(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": choices,
        **extra,
    }


def delta(**fields: Any) -> dict[str, Any]:
    return event([{"index": 0, "delta": fields, "finish_reason": None}])


def finish(reason: str) -> dict[str, Any]:
    return event([{"index": 0, "delta": {}, "finish_reason": reason}])


def fragment(index: int, arguments: str, **first: Any) -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if first:
        piece.update(id=first["id"], type="function")
        piece["function"]["name"] = first["name"]
    return delta(tool_calls=[piece])


def interleaved_stream() -> list[dict[str, Any]]:
    """Two parallel calls whose argument JSON arrives split and interleaved, no text at all."""
    return [
        delta(role="assistant", content=None),
        fragment(0, "", id="call_a", name="get_weather"),
        fragment(1, '{"t', id="call_b", name="get_time"),
        fragment(0, '{"ci'),
        fragment(1, 'z": "As'),
        fragment(0, 'ty": "Pa'),
        fragment(1, 'ia/Tokyo"}'),
        fragment(0, 'ris"}'),
        finish("tool_calls"),
        event([], usage={"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}),
    ]


def stream_reply(events: list[dict[str, Any]]) -> Reply:
    return Reply.sse(events, done="[DONE]")


def text_stream(*pieces: str) -> Reply:
    return stream_reply([*(delta(content=piece) for piece in pieces), finish("stop")])


# -- tools on the wire -------------------------------------------------------------------
def test_functions_become_openai_tools_and_a_single_call_is_read(server: FakeServer) -> None:
    server.route("POST", CHAT, tool_reply(PARALLEL[:1]))
    model = post_api_chat(server)
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
    assert response.tool_calls == EXPECTED_PARALLEL[:1]
    assert response.content == EXPECTED_PARALLEL[:1]
    assert response.text == ""  # content: null is no text, not a parse error
    assert response.finish_reason == "tool_calls"
    assert response.extra["tool_calls"] == PARALLEL[:1]


def test_pydantic_tools_and_tools_in_json_args(server: FakeServer) -> None:
    class Lookup(pydantic.BaseModel):
        """Look a word up."""

        word: str

    server.route("POST", CHAT, Reply.json(completion("ok")))
    ping = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
    model = post_api_chat(server, json_args={"model": "m", "tools": [ping], "tool_choice": "auto"})
    model(ask(model))
    model(ask(model), tools=[Lookup], tool_choice="Lookup")
    model(ask(model), tools=[])
    first, second, third = bodies(server)
    assert first["tools"] == [ping] and first["tool_choice"] == "auto"
    assert first["model"] == "m"
    assert second["tools"][0]["function"]["name"] == "Lookup"
    assert second["tools"][0]["function"]["description"] == "Look a word up."
    assert second["tools"][0]["function"]["parameters"]["required"] == ["word"]
    assert second["tool_choice"] == {"type": "function", "function": {"name": "Lookup"}}
    assert "tools" not in third and "tool_choice" not in third  # the call turned them off


@pytest.mark.parametrize(
    ("json_args", "named"),
    [
        ({"tools": [{"type": "function", "function": {"description": "x"}}]}, "not a function"),
        ({"tools": [{"name": "ping"}], "tool_choice": "pong"}, "'pong'"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"structured_model": "City"}, "structured_model"),
    ],
    ids=["nameless-tool", "unknown-choice", "bad-choice", "bad-model"],
)
def test_bad_tools_in_json_args_fail_the_config(
    json_args: dict[str, Any], named: str, server: FakeServer
) -> None:
    with pytest.raises(ConfigError) as caught:
        post_api_chat(server, json_args=json_args)
    assert "json_args" in str(caught.value) and named in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes_pass_through(choice: str, server: FakeServer) -> None:
    server.route("POST", CHAT, Reply.json(completion("ok")))
    model = post_api_chat(server)
    model(ask(model), tools=[get_weather], tool_choice=choice)
    assert bodies(server)[0]["tool_choice"] == choice


def test_tool_choice_forcing_a_tool(server: FakeServer) -> None:
    server.route("POST", CHAT, tool_reply(PARALLEL[1:]))
    model = post_api_chat(server)
    response = model(ask(model), tools=[get_weather, get_time], tool_choice="get_time")
    assert bodies(server)[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    assert response.tool_calls == EXPECTED_PARALLEL[1:]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tools": [get_weather], "tool_choice": "get_time"},
        {"tool_choice": "get_time"},
        {"tools": [42]},
        {"tools": [get_weather, get_weather]},
        {"tool_choice": "required"},
        {"structured_model": "City"},
        {"structured_model": {"type": "object"}, "response_format": {"type": "json_object"}},
    ],
    ids=[
        "unknown-choice",
        "choice-without-tools",
        "bad-tool",
        "twice",
        "required-without-tools",
        "bad-model",
        "both",
    ],
)
def test_bad_tool_arguments_are_refused_before_sending(
    kwargs: dict[str, Any], server: FakeServer
) -> None:
    server.route("POST", CHAT, Reply.json(completion("ok")))
    model = post_api_chat(server, **STREAMING)
    with pytest.raises(BadRequestError):
        model(ask(model), **kwargs)
    with pytest.raises(BadRequestError):
        list(model.stream(ask(model), **kwargs))
    assert bodies(server) == []


def test_calls_without_tools_send_the_body_as_before(server: FakeServer) -> None:
    server.route("POST", CHAT, Reply.json(completion("ok")))
    model = post_api_chat(server, json_args={"temperature": 0.5})
    model(ask(model, "hi"), top_p=0.9)
    assert bodies(server)[0] == {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "top_p": 0.9,
    }


# -- the round trip ----------------------------------------------------------------------


def test_parallel_calls_round_trip(server: FakeServer) -> None:
    server.route(
        "POST",
        CHAT,
        tool_reply(PARALLEL, text="Let me check."),
        Reply.json(completion("Sunny in Paris; noon in Tokyo.")),
    )
    model = post_api_chat(server)
    question = Msg("user", "Weather in Paris and the time in Tokyo?", role="user")
    first = model(model.format(question), tools=[get_weather, get_time])
    assert first.tool_calls == EXPECTED_PARALLEL
    assert first.content[0] == {"type": "text", "text": "Let me check."}
    results = Msg("tools", run_tools(first), role="tool")
    final = model(model.format(question, first.to_msg("agent"), results), tools=[get_weather])
    assert final.text == "Sunny in Paris; noon in Tokyo."
    assert final.tool_calls is None
    sent = bodies(server)[1]["messages"]
    assert sent == [
        {"role": "user", "content": "Weather in Paris and the time in Tokyo?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": PARALLEL},
        {"role": "tool", "tool_call_id": "call_a", "content": "21 degrees celsius in Paris"},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00 in Asia/Tokyo"},
    ]


def test_tool_calls_are_read_from_the_seed_llm_shape(server: FakeServer) -> None:
    """The ``/llm/`` reply nests an OpenAI completion at ``data.response``."""
    reply = llm_reply("")
    reply["data"]["response"] = completion(None, tool_calls=PARALLEL, finish_reason="tool_calls")
    server.route("POST", "/llm/", Reply.json(reply))
    model = post_api_chat(server, "/llm/", messages_key="inputs")
    response = model(ask(model), tools=[get_weather, get_time])
    assert response.tool_calls == EXPECTED_PARALLEL
    assert bodies(server, "/llm/")[0]["inputs"][0]["role"] == "user"


def test_a_custom_reply_shape_gives_no_tool_calls(server: FakeServer) -> None:
    """Tool calls are read from OpenAI's places only: a custom shape's calls stay in raw."""
    payload = {"result": {"answer": "calling", "calls": PARALLEL}}
    server.route("POST", "/svc", Reply.json(payload))
    model = post_api_chat(server, "/svc", response_path="result.answer")
    response = model(ask(model), tools=[get_weather])
    assert response.text == "calling"
    assert response.tool_calls is None
    assert response.raw == payload


def test_a_tool_call_without_text_sends_null_content(server: FakeServer) -> None:
    model = post_api_chat(server)
    call = {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": "é"}}
    (message,) = model.format(Msg("agent", [call], role="assistant"))
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [wire_call("c1", "f", '{"x": "é"}')],
    }


def test_a_tool_message_needs_a_call_id(server: FakeServer) -> None:
    model = post_api_chat(server)
    with pytest.raises(BadRequestError, match="tool_call_id"):
        model.format(Msg("tool", "sunny", role="tool"))
    assert model.format(Msg("tool", "sunny", role="tool", metadata={"tool_call_id": "c1"})) == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    ]


# -- streamed tool calls -----------------------------------------------------------------
def test_interleaved_streamed_fragments_are_assembled(server: FakeServer) -> None:
    server.route("POST", CHAT, stream_reply(interleaved_stream()))
    model = post_api_chat(server, **STREAMING)
    chunks = list(model.stream(ask(model), tools=[get_weather, get_time]))
    assert bodies(server)[0]["tools"][1]["function"]["name"] == "get_time"
    assert chunks[-1].tool_calls == EXPECTED_PARALLEL
    assert chunks[-1].usage.total_tokens == 32
    finished = next(i for i, chunk in enumerate(chunks) if chunk.finish_reason)
    assert all(chunk.tool_calls is None for chunk in chunks[:finished])
    assert all(chunk.tool_calls == EXPECTED_PARALLEL for chunk in chunks[finished:])
    response = collect(chunks)
    assert response.tool_calls == response.content == EXPECTED_PARALLEL
    assert response.finish_reason == "tool_calls"


def test_astream_assembles_and_collects_as_acall(server: FakeServer) -> None:
    server.route("POST", CHAT, stream_reply(interleaved_stream()), tool_reply(PARALLEL))
    model = post_api_chat(server, **STREAMING)

    async def both() -> tuple[Any, Any]:
        streamed = await acollect(model.astream(ask(model), tools=[get_weather]))
        plain = await model.acall(ask(model), tools=[get_weather, get_time])
        return streamed, plain

    streamed, plain = asyncio.run(both())
    assert streamed.tool_calls == plain.tool_calls == EXPECTED_PARALLEL
    assert streamed.content == plain.content
    assert streamed.text == plain.text == ""
    assert [body.get("stream") for body in bodies(server)] == [True, None]


def test_a_plain_call_answered_with_a_stream_assembles_the_calls(server: FakeServer) -> None:
    """A service that always streams: the plain call reads the SSE body to the end."""
    server.route("POST", CHAT, stream_reply(interleaved_stream()))
    model = post_api_chat(server)
    response = model(ask(model), tools=[get_weather, get_time])
    assert response.tool_calls == EXPECTED_PARALLEL
    assert response.usage.total_tokens == 32


def test_a_stream_request_answered_with_one_completion_reads_its_calls(
    server: FakeServer,
) -> None:
    server.route("POST", CHAT, tool_reply(PARALLEL))
    model = post_api_chat(server, **STREAMING)
    chunks = list(model.stream(ask(model), tools=[get_weather, get_time]))
    assert chunks[-1].tool_calls == EXPECTED_PARALLEL


# -- malformed arguments -----------------------------------------------------------------
def test_repairable_arguments_are_repaired(server: FakeServer) -> None:
    calls = [wire_call("c1", "get_weather", '```json\n{"city": "Paris",}\n```')]
    server.route("POST", CHAT, tool_reply(calls))
    model = post_api_chat(server)
    assert model(ask(model)).tool_calls[0]["input"] == {"city": "Paris"}


def test_unreadable_arguments_raise_with_the_raw_text(server: FakeServer) -> None:
    calls = [wire_call("c1", "get_weather", '{"city": "Par')]
    server.route("POST", CHAT, tool_reply(calls))
    model = post_api_chat(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model))
    assert caught.value.arguments == '{"city": "Par'
    assert "get_weather" in str(caught.value)
    assert len(bodies(server)) == 1  # a parse error is not retried


@pytest.mark.parametrize(
    "calls",
    [{"id": "c1"}, [{"id": "c1", "function": {"arguments": "{}"}}], ["c1"]],
    ids=["not-a-list", "no-name", "not-an-object"],
)
def test_malformed_tool_calls_raise(calls: Any, server: FakeServer) -> None:
    server.route("POST", CHAT, tool_reply(calls))
    model = post_api_chat(server)
    with pytest.raises(ResponseParseError, match=r"tool_calls|tool call"):
        model(ask(model))


def test_unreadable_streamed_arguments_raise(server: FakeServer) -> None:
    events = [
        fragment(0, '{"city": ', id="c1", name="get_weather"),
        fragment(0, '"Paris"'),
        finish("tool_calls"),
    ]
    server.route("POST", CHAT, stream_reply(events))
    model = post_api_chat(server, **STREAMING)
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model)))
    assert caught.value.arguments == '{"city": "Paris"'


def test_a_malformed_streamed_fragment_raises(server: FakeServer) -> None:
    events = [delta(tool_calls=[{"index": 0, "function": {"arguments": 5}}]), finish("stop")]
    server.route("POST", CHAT, stream_reply(events))
    model = post_api_chat(server, **STREAMING)
    with pytest.raises(ResponseParseError, match="tool-call fragment"):
        list(model.stream(ask(model)))


# -- structured output -------------------------------------------------------------------
class City(pydantic.BaseModel):
    name: str
    population: int
    nickname: str | None = None


CITY_JSON = '{"name": "Paris", "population": 2100000}'


def test_structured_model_sends_the_json_schema_as_given(server: FakeServer) -> None:
    server.route("POST", CHAT, Reply.json(completion(CITY_JSON)))
    model = post_api_chat(server)
    response = model(ask(model), structured_model=City)
    assert response.parsed == City(name="Paris", population=2100000)
    sent = bodies(server)[0]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": City.model_json_schema()},
    }
    assert "structured_model" not in sent


def test_a_schema_dict_in_json_args_gives_a_dict(server: FakeServer) -> None:
    schema = {
        "title": "Town",
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name"],
    }
    server.route("POST", CHAT, Reply.json(completion('{"name": "Paris"}')))
    model = post_api_chat(server, json_args={"structured_model": schema})
    assert model(ask(model)).parsed == {"name": "Paris"}
    sent = bodies(server)[0]
    assert sent["response_format"]["json_schema"] == {"name": "Town", "schema": schema}
    assert "structured_model" not in sent


def test_a_reply_off_the_schema_raises(server: FakeServer) -> None:
    server.route("POST", CHAT, Reply.json(completion('{"name": "Paris"}')))
    model = post_api_chat(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), structured_model=City)
    assert caught.value.text == '{"name": "Paris"}'
    assert caught.value.validation_errors[0].startswith("population:")
    assert len(bodies(server)) == 1


def test_a_refusal_raises(server: FakeServer) -> None:
    server.route("POST", CHAT, Reply.json(completion(None, refusal="I cannot help with that.")))
    model = post_api_chat(server)
    with pytest.raises(ResponseParseError, match="refused"):
        model(ask(model), structured_model=City)


def test_structured_output_validates_a_custom_reply_path(server: FakeServer) -> None:
    server.route("POST", "/svc", Reply.json({"result": {"answer": CITY_JSON}}))
    model = post_api_chat(server, "/svc", response_path="result.answer")
    assert model(ask(model), structured_model=City).parsed.name == "Paris"


def test_a_structured_stream_parses_its_last_chunk(server: FakeServer) -> None:
    server.route(
        "POST",
        CHAT,
        text_stream('{"name": "Par', 'is", "population": 2100000}'),
        text_stream('{"name": 1}'),
    )
    model = post_api_chat(server, **STREAMING)
    chunks = list(model.stream(ask(model), structured_model=City))
    finishing = [chunk for chunk in chunks if chunk.finish_reason]
    assert finishing and all(isinstance(chunk.parsed, City) for chunk in finishing)
    assert collect(chunks).parsed == City(name="Paris", population=2100000)
    assert "response_format" in bodies(server)[0]
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model), structured_model=City))
    assert caught.value.partial_text == '{"name": 1}'


def test_post_api_refuses_structured_model(server: FakeServer) -> None:
    model = post_api(server)
    with pytest.raises(BadRequestError, match="'post_api' takes no `structured_model`"):
        model("hi", structured_model=City)
    assert server.requests == []


# -- images and reasoning ----------------------------------------------------------------
def test_image_blocks_become_image_url_parts(server: FakeServer, tmp_path: Path) -> None:
    server.route("POST", CHAT, Reply.json(completion("cats")))
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG fake")
    model = post_api_chat(server)
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
        url="https://img.test/b.jpg",
    )
    model(model.format(msg))
    encoded = base64.b64encode(b"\x89PNG fake").decode()
    assert bodies(server)[0]["messages"][0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What are these?"},
            {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
            {"type": "image_url", "image_url": {"url": "https://img.test/b.jpg"}},
        ],
    }
    with pytest.raises(BadRequestError, match="image"):
        model.format(
            Msg("user", [{"type": "image", "source": {"type": "url", "url": "/no/such.png"}}])
        )


def test_text_blocks_alone_are_sent_as_a_string(server: FakeServer) -> None:
    model = post_api_chat(server)
    blocks = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    assert model.format(Msg("user", blocks, role="user")) == [
        {"role": "user", "content": "Hello, world"}
    ]


def test_reasoning_content_becomes_thinking(server: FakeServer) -> None:
    events = [
        delta(role="assistant", reasoning_content="6 times"),
        delta(reasoning_content=" 7"),
        delta(content="42"),
        finish("stop"),
    ]
    server.route(
        "POST",
        CHAT,
        Reply.json(completion("42", reasoning_content="6 times 7")),
        stream_reply(events),
    )
    model = post_api_chat(server, **STREAMING)
    plain = model(ask(model))
    chunks = list(model.stream(ask(model)))
    streamed = collect(chunks)
    assert [chunk.thinking for chunk in chunks[:2]] == ["6 times", " 7"]
    assert plain.thinking == streamed.thinking == "6 times 7"
    expected = [{"type": "thinking", "thinking": "6 times 7"}, {"type": "text", "text": "42"}]
    assert plain.content == streamed.content == expected
    (sent_back,) = model.format(plain.to_msg("agent"))
    assert sent_back == {"role": "assistant", "content": "42"}  # not sent back


def reasoning_stream(field: str) -> list[dict[str, Any]]:
    """Reasoning, then one call whose arguments arrive split."""
    return [
        delta(role="assistant", content=None, **{field: "Paris "}),
        delta(**{field: "first."}),
        fragment(0, '{"ci', id="call_a", name="get_weather"),
        fragment(0, 'ty": "Paris"}'),
        finish("tool_calls"),
    ]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_thinking_goes_back_as_reasoning_content_with_the_tool_calls(
    streamed: bool, field: str, server: FakeServer
) -> None:
    """DeepSeek's thinking mode refuses the next request (HTTP 400) unless an assistant
    turn with tool calls carries its reasoning_content back; vLLM (which answers with
    ``reasoning``) takes ``reasoning_content`` in the input too."""
    if streamed:
        first_reply = stream_reply(reasoning_stream(field))
    else:
        reply = completion(
            None, tool_calls=PARALLEL[:1], finish_reason="tool_calls", **{field: "Paris first."}
        )
        first_reply = Reply.json(reply)
    answer = Reply.json(completion("Sunny.", **{field: "It said sunny."}))
    server.route("POST", CHAT, first_reply, answer, Reply.json(completion("Bye.")))
    model = post_api_chat(server, **(STREAMING if streamed else {}))
    question = Msg("user", "Weather in Paris?", role="user")
    if streamed:
        first = collect(model.stream(model.format(question), tools=[get_weather]))
    else:
        first = model(model.format(question), tools=[get_weather])
    assert first.content == [
        {"type": "thinking", "thinking": "Paris first."},
        *EXPECTED_PARALLEL[:1],
    ]
    history = [question, first.to_msg(), Msg("t", run_tools(first), role="tool")]
    final = model(model.format(*history), tools=[get_weather])
    assert final.thinking == "It said sunny."
    assert bodies(server)[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": PARALLEL[:1],
            "reasoning_content": "Paris first.",
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "21 degrees celsius in Paris"},
    ]
    # The final answer's thinking led to no call: it is not sent (DeepSeek ignores it).
    model(model.format(*history, final.to_msg(), Msg("user", "Thanks", role="user")))
    assert bodies(server)[2]["messages"][1]["reasoning_content"] == "Paris first."
    assert bodies(server)[2]["messages"][3] == {"role": "assistant", "content": "Sunny."}


def test_send_reasoning_false_leaves_the_thinking_out(server: FakeServer) -> None:
    reply = completion(
        "Checking.", tool_calls=PARALLEL[:1], finish_reason="tool_calls", reasoning_content="Hm."
    )
    server.route("POST", CHAT, Reply.json(reply))
    model = post_api_chat(server, send_reasoning=False)
    first = model(ask(model), tools=[get_weather])
    assert first.thinking == "Hm."
    assert model.format(first.to_msg()) == [
        {"role": "assistant", "content": "Checking.", "tool_calls": PARALLEL[:1]}
    ]


def test_send_reasoning_is_checked_at_load(server: FakeServer) -> None:
    with pytest.raises(ConfigError, match="send_reasoning"):
        post_api_chat(server, send_reasoning="yes")
    assert server.requests == []


def test_an_image_in_a_tool_result_is_left_out_with_a_warning(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("POST", CHAT, Reply.json(completion("A map of Paris.")))
    model = post_api_chat(server)
    output = [
        {"type": "text", "text": "Here is the map."},
        {"type": "image", "source": {"type": "url", "url": "https://img.test/map.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
    ]
    result = {"type": "tool_result", "id": "call_a", "name": "get_weather", "output": output}
    with caplog.at_level("WARNING", logger="modelwire"):
        messages = model.format(
            Msg("agent", EXPECTED_PARALLEL[:1], role="assistant"), Msg("t", [result], role="tool")
        )
    model(messages)
    assert bodies(server)[0]["messages"][1] == {
        "role": "tool",
        "tool_call_id": "call_a",
        "content": "Here is the map.",
    }
    (warning,) = [r for r in caplog.records if r.name == "modelwire"]
    assert warning.getMessage() == (
        "test-post-api-chat: OpenAI-style tool messages take no images; 2 image(s) of a"
        " tool message were left out, only its text is sent"
    )


def test_reasoning_and_cached_tokens_are_in_usage_of_calls_and_streams(
    server: FakeServer,
) -> None:
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 30,
        "total_tokens": 50,
        "completion_tokens_details": {"reasoning_tokens": 24},
        "prompt_tokens_details": {"cached_tokens": 16},
    }
    reply = completion("42")
    reply["usage"] = usage
    events = [delta(content="42"), finish("stop"), event([], usage=usage)]
    server.route("POST", CHAT, Reply.json(reply), stream_reply(events))
    model = post_api_chat(server, **STREAMING)
    plain = model(ask(model))
    chunks = list(model.stream(ask(model)))
    for found in (plain.usage, chunks[-1].usage, collect(chunks).usage):
        assert found is not None
        assert (found.prompt_tokens, found.completion_tokens) == (20, 30)
        assert (found.reasoning_tokens, found.cached_tokens) == (24, 16)
    assert plain.usage.to_dict()["cached_tokens"] == 16
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_usage_without_details_has_no_reasoning_or_cached_tokens(server: FakeServer) -> None:
    reply = completion("42")
    reply["usage"] = {**USAGE_JSON, "prompt_tokens_details": None}
    server.route("POST", CHAT, Reply.json(reply))
    model = post_api_chat(server)
    usage = model(ask(model)).usage
    assert (usage.reasoning_tokens, usage.cached_tokens) == (None, None)


def test_a_reply_of_reasoning_only_is_not_a_parse_error(server: FakeServer) -> None:
    server.route("POST", CHAT, Reply.json(completion(None, reasoning_content="hmm")))
    model = post_api_chat(server)
    response = model(ask(model))
    assert (response.text, response.thinking) == ("", "hmm")


def test_tools_through_acall(server: FakeServer) -> None:
    server.route("POST", CHAT, tool_reply(PARALLEL))
    model = post_api_chat(server)
    response = asyncio.run(model.acall(ask(model), tools=[get_weather, get_time]))
    assert response.tool_calls == EXPECTED_PARALLEL
    assert json.loads(server.requests[0].text)["tools"][1]["function"]["name"] == "get_time"


# -- the README's loop -------------------------------------------------------------------
README = Path(__file__).resolve().parents[3] / "plugins" / "postapi" / "README.md"


def test_the_readme_round_trip_runs(server: FakeServer) -> None:
    text = README.read_text(encoding="utf-8").split("**Sending results back.**", 1)[1]
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    server.route(
        "POST",
        CHAT,
        tool_reply(PARALLEL[:1]),
        Reply.json(completion("It is sunny in Paris.")),
    )
    model = post_api_chat(server)
    names: dict[str, Any] = {
        "model": model,
        "Msg": Msg,
        "tool_result": tool_result,
        "get_weather": get_weather,
    }
    exec(compile(snippet, str(README), "exec"), names)  # noqa: S102 - the README is ours
    assert names["final"].text == "It is sunny in Paris."
    assert bodies(server)[1]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": PARALLEL[:1]},
        {"role": "tool", "tool_call_id": "call_a", "content": "21 degrees celsius in Paris"},
    ]
