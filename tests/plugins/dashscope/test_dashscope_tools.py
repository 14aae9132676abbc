"""Tools, structured output, images and reasoning on ``dashscope_chat`` and
``dashscope_multimodal``: the real ``dashscope`` SDK over real HTTP against
DashScope's native wire format."""

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
)
from modelwire.registry import ModelRegistry
from modelwire.testing import FakeServer
from modelwire.testing.tools import get_time, get_weather, run_tools

API = "/api/v1"
CHAT = f"{API}/services/aigc/text-generation/generation"
MULTIMODAL = f"{API}/services/aigc/multimodal-generation/generation"
KEY = "sk-test-dashscope-key-0123456789"
#: A 1x1 PNG, for local image files.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def load(server: FakeServer, model_type: str = "dashscope_chat", **params: Any) -> Any:
    config = {
        "config_name": f"tools-{model_type}",
        "model_type": model_type,
        "model_name": "qwen-vl-max" if model_type == "dashscope_multimodal" else "qwen-plus",
        "api_key": KEY,
        "base_url": server.url + API,
        "retry": {"max_retries": 2, "initial_delay": 0.01, "max_delay": 1.0},
        "timeout": 5.0,
        **params,
    }
    return ModelRegistry([config]).load_model(config["config_name"])


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


def tool_reply(wire: Any, calls: list[dict[str, Any]], text: str = "") -> Any:
    return wire.message_reply({"content": text, "tool_calls": calls}, finish="tool_calls")


def fragment(index: int, arguments: str, call_id: str = "", name: str | None = None) -> Any:
    """A DashScope incremental tool-call fragment: later ones have an empty id."""
    function: dict[str, Any] = {"arguments": arguments}
    if name:
        function["name"] = name
    return {
        "tool_calls": [{"index": index, "id": call_id, "type": "function", "function": function}]
    }


def interleaved_deltas() -> list[dict[str, Any]]:
    """Two parallel calls whose argument JSON arrives split and interleaved."""
    return [
        fragment(0, "", "call_a", "get_weather"),
        fragment(1, '{"t', "call_b", "get_time"),
        fragment(0, '{"ci'),
        fragment(1, 'z": "As'),
        fragment(0, 'ty": "Pa'),
        fragment(1, 'ia/Tokyo"}'),
        fragment(0, 'ris"}'),
        {},
    ]


def interleaved(wire: Any) -> Any:
    return wire.message_stream(interleaved_deltas(), usage=(20, 12), finish="tool_calls")


MODES = ["call", "acall", "stream", "astream"]
PATHS = {"dashscope_chat": CHAT, "dashscope_multimodal": MULTIMODAL}


def answer(model: Any, mode: str, **kwargs: Any) -> tuple[Any, list[Any] | None]:
    """One call in ``mode``: its response (a stream's collected) and a stream's chunks."""
    messages = ask(model)
    if mode == "call":
        return model(messages, **kwargs), None
    if mode == "acall":
        return asyncio.run(model.acall(messages, **kwargs)), None
    if mode == "stream":
        chunks = list(model.stream(messages, **kwargs))
    else:

        async def gather() -> list[Any]:
            return [chunk async for chunk in model.astream(messages, **kwargs)]

        chunks = asyncio.run(gather())
    return collect(chunks), chunks


def reply_text(model_type: str, text: str) -> Any:
    """Reply content as the endpoint sends it: parts on the multimodal one."""
    return [{"text": text}] if model_type == "dashscope_multimodal" else text


def same_response(streamed: Any, plain: Any) -> None:
    """A collected stream is the plain call's response in every field but ``raw``."""
    for field in ("text", "content", "tool_calls", "thinking", "finish_reason", "usage"):
        assert getattr(streamed, field) == getattr(plain, field), field


# -- tools on the wire -------------------------------------------------------------------
def test_a_single_tool_call_from_functions(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT, tool_reply(wire, PARALLEL[:1]))
    model = load(server)
    response = model(ask(model), tools=[get_weather, get_time])
    parameters = bodies(server)[0]["parameters"]
    assert parameters["result_format"] == "message"
    assert parameters["tools"] == [
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
    assert "tool_choice" not in parameters
    assert response.tool_calls == EXPECTED_PARALLEL[:1]
    assert response.content == EXPECTED_PARALLEL[:1]
    assert response.text == ""
    assert response.finish_reason == "tool_calls"


def test_parallel_tool_calls_in_one_reply(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT, tool_reply(wire, PARALLEL, text="Let me check."))
    model = load(server)
    response = model(ask(model), tools=[get_weather, get_time], parallel_tool_calls=True)
    assert bodies(server)[0]["parameters"]["parallel_tool_calls"] is True
    assert response.tool_calls == EXPECTED_PARALLEL
    assert response.content == [{"type": "text", "text": "Let me check."}, *EXPECTED_PARALLEL]


def test_pydantic_tools_and_tools_in_generate_args(server: FakeServer, wire: Any) -> None:
    class Lookup(pydantic.BaseModel):
        """Look a word up."""

        word: str

    wire.chat()
    model = load(server, generate_args={"tools": [{"name": "ping"}], "tool_choice": "auto"})
    model(ask(model))
    model(ask(model), tools=[Lookup], tool_choice="Lookup")
    first, second = (body["parameters"] for body in bodies(server))
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
        ({"tools": [{"name": "a"}, {"name": "b"}], "tool_choice": "required"}, "'required'"),
        ({"structured_model": "City"}, "structured_model"),
    ],
)
def test_bad_tools_in_generate_args_fail_the_config(
    generate_args: dict[str, Any], named: str, server: FakeServer
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(server, generate_args=generate_args)
    assert "generate_args" in str(caught.value) and named in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_tool_choice_auto_and_none_pass_through(choice: str, server: FakeServer, wire: Any) -> None:
    wire.chat()
    model = load(server)
    model(ask(model), tools=[get_weather], tool_choice=choice)
    assert bodies(server)[0]["parameters"]["tool_choice"] == choice


def test_tool_choice_forcing_a_tool(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT, tool_reply(wire, PARALLEL[1:]))
    model = load(server)
    response = model(ask(model), tools=[get_weather, get_time], tool_choice="get_time")
    assert bodies(server)[0]["parameters"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    assert response.tool_calls[0]["name"] == "get_time"


def test_tool_choice_required_with_one_tool_forces_that_tool(server: FakeServer, wire: Any) -> None:
    wire.chat()
    model = load(server)
    model(ask(model), tools=[get_time], tool_choice="required")
    assert bodies(server)[0]["parameters"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }


def test_tool_choice_required_with_several_tools_is_refused(server: FakeServer, wire: Any) -> None:
    wire.chat()
    model = load(server)
    with pytest.raises(BadRequestError, match="'required' is not supported by DashScope"):
        model(ask(model), tools=[get_weather, get_time], tool_choice="required")
    assert bodies(server) == []


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
    kwargs: dict[str, Any], server: FakeServer, wire: Any
) -> None:
    wire.chat()
    model = load(server)
    with pytest.raises(BadRequestError):
        model(ask(model), **kwargs)
    with pytest.raises(BadRequestError):
        list(model.stream(ask(model), **kwargs))
    assert bodies(server) == []


def test_an_empty_tool_list_is_not_sent(server: FakeServer, wire: Any) -> None:
    wire.chat()
    model = load(server)
    model(ask(model), tools=[])
    assert "tools" not in bodies(server)[0]["parameters"]


def test_a_call_without_tools_sends_no_tool_parameters(server: FakeServer, wire: Any) -> None:
    wire.chat()
    model = load(server)
    model(ask(model))
    parameters = bodies(server)[0]["parameters"]
    assert not {"tools", "tool_choice", "response_format", "structured_model"} & set(parameters)


# -- the round trip ----------------------------------------------------------------------


def test_parallel_calls_round_trip(server: FakeServer, wire: Any) -> None:
    server.route(
        "POST",
        CHAT,
        tool_reply(wire, PARALLEL, text="Let me check."),
        wire.message_reply({"content": "Sunny in Paris; noon in Tokyo."}),
    )
    model = load(server)
    system = Msg("system", "Be brief.", role="system")
    question = Msg("user", "Weather in Paris and the time in Tokyo?", role="user")
    first = model(model.format(system, question), tools=[get_weather, get_time])
    results = Msg("tools", run_tools(first), role="tool")
    final = model(model.format(system, question, first.to_msg("agent"), results), tools=[get_time])
    assert final.text == "Sunny in Paris; noon in Tokyo."
    assert final.tool_calls is None
    # DashScope's documented shape: the assistant turn with its tool_calls (arguments as
    # JSON text), then one "tool" message per call with its tool_call_id.
    assert bodies(server)[1]["input"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and the time in Tokyo?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                wire_call("call_a", "get_weather", '{"city": "Paris"}'),
                wire_call("call_b", "get_time", '{"tz": "Asia/Tokyo"}'),
            ],
        },
        {
            "role": "tool",
            "content": "21 degrees celsius in Paris",
            "tool_call_id": "call_a",
            "name": "get_weather",
        },
        {
            "role": "tool",
            "content": "12:00 in Asia/Tokyo",
            "tool_call_id": "call_b",
            "name": "get_time",
        },
    ]


def test_a_tool_call_without_text_sends_empty_content(server: FakeServer) -> None:
    model = load(server)
    call = {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    (_, message) = model.format(Msg("u", "go", role="user"), Msg("agent", [call], role="assistant"))
    assert message == {
        "role": "assistant",
        "content": "",
        "tool_calls": [wire_call("c1", "f", "{}")],
    }


def test_a_tool_message_needs_a_call_id(server: FakeServer) -> None:
    model = load(server)
    with pytest.raises(BadRequestError, match="tool_call_id"):
        model.format(Msg("tool", "sunny", role="tool"))
    assert model.format(Msg("tool", "sunny", role="tool", metadata={"tool_call_id": "c1"})) == [
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    ]


# -- streamed tool calls -----------------------------------------------------------------
def test_interleaved_streamed_fragments_are_assembled(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT, interleaved(wire))
    model = load(server)
    chunks = list(model.stream(ask(model), tools=[get_weather, get_time]))
    assert server.requests_to(CHAT)[0].header("x-dashscope-sse") == "enable"
    assert bodies(server)[0]["parameters"]["incremental_output"] is True
    assert chunks[-1].tool_calls == EXPECTED_PARALLEL
    assert chunks[-1].usage.total_tokens == 32
    finish = next(i for i, chunk in enumerate(chunks) if chunk.finish_reason)
    assert all(chunk.tool_calls is None for chunk in chunks[:finish])
    response = collect(chunks)
    assert response.tool_calls == EXPECTED_PARALLEL
    assert response.content == EXPECTED_PARALLEL
    assert response.finish_reason == "tool_calls"


def test_astream_and_acall_agree(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT, interleaved(wire), tool_reply(wire, PARALLEL))
    model = load(server)

    async def both() -> tuple[Any, Any]:
        streamed = await acollect(model.astream(ask(model), tools=[get_weather, get_time]))
        plain = await model.acall(ask(model), tools=[get_weather, get_time])
        return streamed, plain

    streamed, plain = asyncio.run(both())
    assert streamed.tool_calls == plain.tool_calls == EXPECTED_PARALLEL
    assert streamed.content == plain.content
    assert streamed.text == plain.text == ""
    assert all(
        body["parameters"]["tools"][1]["function"]["name"] == "get_time" for body in bodies(server)
    )


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_multimodal_interleaved_streamed_fragments_are_assembled(
    mode: str, server: FakeServer, wire: Any
) -> None:
    # The multimodal endpoint's content is a list of parts, empty on fragment events.
    text = [{"content": [{"text": "Let me "}]}, {"content": [{"text": "check."}]}]
    fragments = [{"content": [], **delta} for delta in interleaved_deltas()]
    server.route(
        "POST",
        MULTIMODAL,
        wire.message_stream([*text, *fragments], usage=(20, 12), finish="tool_calls"),
        wire.message_reply(
            {"content": [{"text": "Let me check."}], "tool_calls": PARALLEL},
            usage=(20, 12),
            finish="tool_calls",
        ),
    )
    model = load(server, "dashscope_multimodal")
    streamed, chunks = answer(model, mode, tools=[get_weather, get_time])
    assert chunks is not None
    assert server.requests_to(MULTIMODAL)[0].header("x-dashscope-sse") == "enable"
    assert [chunk.text for chunk in chunks] == ["Let me ", "check.", ""]
    assert chunks[-1].tool_calls == EXPECTED_PARALLEL
    assert chunks[-1].usage.total_tokens == 32
    assert chunks[-1].finish_reason == "tool_calls"
    assert all(chunk.tool_calls is None and chunk.usage is None for chunk in chunks[:-1])
    assert streamed.content == [{"type": "text", "text": "Let me check."}, *EXPECTED_PARALLEL]
    plain = model(ask(model), tools=[get_weather, get_time])
    assert plain.tool_calls == EXPECTED_PARALLEL
    same_response(streamed, plain)
    assert [request.path for request in server.requests] == [MULTIMODAL, MULTIMODAL]
    first, second = bodies(server, MULTIMODAL)
    assert first["parameters"]["tools"] == second["parameters"]["tools"]
    assert first["parameters"]["incremental_output"] is True


# -- malformed arguments -----------------------------------------------------------------
def test_repairable_arguments_are_repaired(server: FakeServer, wire: Any) -> None:
    calls = [wire_call("c1", "get_weather", '```json\n{"city": "Paris",}\n```')]
    server.route("POST", CHAT, tool_reply(wire, calls))
    model = load(server)
    assert model(ask(model), tools=[get_weather]).tool_calls[0]["input"] == {"city": "Paris"}


def test_unreadable_arguments_raise_with_the_raw_text(server: FakeServer, wire: Any) -> None:
    calls = [wire_call("c1", "get_weather", '{"city": "Par')]
    server.route("POST", CHAT, tool_reply(wire, calls))
    model = load(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), tools=[get_weather])
    assert caught.value.arguments == '{"city": "Par'
    assert "get_weather" in str(caught.value)
    assert len(bodies(server)) == 1  # a parse error is not retried


def test_unreadable_streamed_arguments_raise(server: FakeServer, wire: Any) -> None:
    stream = wire.message_stream(
        [fragment(0, '{"city": ', "c1", "get_weather"), fragment(0, '"Paris"'), {}],
        finish="tool_calls",
    )
    server.route("POST", CHAT, stream)
    model = load(server)
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model), tools=[get_weather]))
    assert caught.value.arguments == '{"city": "Paris"'


def malformed(wire: Any, model_type: str, mode: str, arguments: list[str]) -> Any:
    """A reply calling get_weather with ``arguments`` (fragments, joined when not streamed)."""
    empty = reply_text(model_type, "")
    if mode in ("call", "acall"):
        calls = [wire_call("c1", "get_weather", "".join(arguments))]
        return wire.message_reply({"content": empty, "tool_calls": calls}, finish="tool_calls")
    deltas = [fragment(0, arguments[0], "c1", "get_weather")]
    deltas += [fragment(0, piece) for piece in arguments[1:]]
    return wire.message_stream(
        [{"content": empty, **delta} for delta in [*deltas, {}]], finish="tool_calls"
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model_type", list(PATHS))
def test_repairable_arguments_are_repaired_in_every_mode(
    model_type: str, mode: str, server: FakeServer, wire: Any
) -> None:
    fenced = ['```json\n{"city": ', '"Paris",', "}\n```"]  # a code fence and a trailing comma
    server.route("POST", PATHS[model_type], malformed(wire, model_type, mode, fenced))
    model = load(server, model_type)
    response, chunks = answer(model, mode, tools=[get_weather])
    expected = [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}]
    assert response.tool_calls == response.content == expected
    if chunks is not None:
        assert chunks[-1].tool_calls == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model_type", list(PATHS))
def test_unreadable_arguments_raise_in_every_mode(
    model_type: str, mode: str, server: FakeServer, wire: Any
) -> None:
    cut = ['{"city": ', '"Par']  # cut off: no repair is unambiguous
    server.route("POST", PATHS[model_type], malformed(wire, model_type, mode, cut))
    model = load(server, model_type)
    with pytest.raises(ResponseParseError) as caught:
        answer(model, mode, tools=[get_weather])
    assert caught.value.arguments == '{"city": "Par'
    assert "get_weather" in str(caught.value)
    assert len(bodies(server, PATHS[model_type])) == 1  # a parse error is not retried


# -- structured output -------------------------------------------------------------------
class City(pydantic.BaseModel):
    name: str
    population: int


CITY_JSON = '{"name": "Paris", "population": 2100000}'


def test_structured_model_asks_for_json_with_the_schema_stated(
    server: FakeServer, wire: Any
) -> None:
    server.route("POST", CHAT, wire.message_reply({"content": CITY_JSON}))
    model = load(server)
    messages = model.format(Msg("s", "Be exact.", role="system"), Msg("u", "Paris?", role="user"))
    kept = json.loads(json.dumps(messages))
    response = model(messages, structured_model=City)
    assert isinstance(response.parsed, City) and response.parsed.population == 2100000
    body = bodies(server)[0]
    assert body["parameters"]["response_format"] == {"type": "json_object"}
    assert not {"structured_model", "_modelwire_schema_text"} & set(body["parameters"])
    system = body["input"]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be exact.\n\n")
    assert "JSON" in system["content"]
    assert json.dumps(City.model_json_schema()) in system["content"]
    assert messages == kept  # the caller's messages are left as they were


def test_a_schema_dict_in_generate_args_gives_a_dict(server: FakeServer, wire: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name"],
    }
    server.route(
        "POST", CHAT, wire.message_reply({"content": '{"name": "Paris", "population": 3}'})
    )
    model = load(server, generate_args={"structured_model": schema})
    assert model(ask(model)).parsed == {"name": "Paris", "population": 3}
    first = bodies(server)[0]["input"]["messages"][0]
    assert first["role"] == "system" and '"required": ["name"]' in first["content"]


def test_a_reply_off_the_schema_raises(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT, wire.message_reply({"content": '{"name": "Paris"}'}))
    model = load(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), structured_model=City)
    assert caught.value.text == '{"name": "Paris"}'
    assert caught.value.validation_errors[0].startswith("population:")


def test_a_structured_stream_parses_its_last_chunk(server: FakeServer, wire: Any) -> None:
    server.route(
        "POST",
        CHAT,
        wire.message_stream([{"content": CITY_JSON[:10]}, {"content": CITY_JSON[10:]}]),
        wire.message_stream([{"content": '{"name": 1}'}]),
    )
    model = load(server)
    chunks = list(model.stream(ask(model), structured_model=City))
    assert isinstance(chunks[-1].parsed, City)
    assert collect(chunks).parsed == City(name="Paris", population=2100000)
    assert bodies(server)[0]["parameters"]["response_format"] == {"type": "json_object"}
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model), structured_model=City))
    assert caught.value.partial_text == '{"name": 1}'


# -- images ---------------------------------------------------------------------------------
def test_image_blocks_become_image_parts_inlined_on_dashscope_multimodal(
    server: FakeServer, wire: Any, tmp_path: Path
) -> None:
    wire.chat("Two cats.", path=MULTIMODAL)
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    model = load(server, "dashscope_multimodal")
    msg = Msg(
        "user",
        [
            {"type": "text", "text": "What are these?"},
            {"type": "image", "source": {"type": "url", "url": "https://img.test/a.png"}},
            {"type": "image", "source": {"type": "url", "url": f"file://{picture}"}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
            },
        ],
        role="user",
    )
    response = model(model.format(msg))
    assert response.text == "Two cats."
    assert response.usage.total_tokens == 17
    parts = bodies(server, MULTIMODAL)[0]["input"]["messages"][0]["content"]
    inlined = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert parts == [
        {"text": "What are these?"},
        {"image": "https://img.test/a.png"},
        {"image": inlined},
        {"image": "data:image/gif;base64,R0lG"},
    ]
    # nothing was uploaded: the only request is the generation itself
    assert [request.path for request in server.requests] == [MULTIMODAL]
    assert "x-dashscope-ossresourceresolve" not in server.requests[0].headers


def test_a_local_msg_url_is_inlined_not_uploaded(
    server: FakeServer, wire: Any, tmp_path: Path
) -> None:
    wire.chat("A cat.", path=MULTIMODAL)
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    model = load(server, "dashscope_multimodal")
    messages = model.format(Msg("user", "What is this?", role="user", url=str(picture)))
    assert messages[0]["content"][0]["image"].startswith("data:image/png;base64,iVBOR")
    assert model(messages).text == "A cat."
    assert [request.path for request in server.requests] == [MULTIMODAL]


def test_image_blocks_on_dashscope_chat_are_refused(server: FakeServer) -> None:
    model = load(server)
    image = {"type": "image", "source": {"type": "url", "url": "https://img.test/a.png"}}
    with pytest.raises(BadRequestError, match="dashscope_multimodal"):
        model.format(Msg("user", [{"type": "text", "text": "What?"}, image], role="user"))
    assert server.requests == []


def test_a_missing_image_file_is_a_bad_request(server: FakeServer, tmp_path: Path) -> None:
    model = load(server, "dashscope_multimodal")
    image = {"type": "image", "source": {"type": "url", "url": str(tmp_path / "none.png")}}
    with pytest.raises(BadRequestError, match=r"none\.png"):
        model.format(Msg("user", [image], role="user"))


def test_multimodal_tool_round_trip_uses_parts(server: FakeServer, wire: Any) -> None:
    server.route(
        "POST",
        MULTIMODAL,
        tool_reply(wire, PARALLEL[:1]),
        wire.message_reply({"content": [{"text": "Sunny."}]}),
    )
    model = load(server, "dashscope_multimodal")
    image = {"type": "image", "source": {"type": "url", "url": "https://img.test/paris.png"}}
    question = Msg("user", [{"type": "text", "text": "Weather here?"}, image], role="user")
    first = model(model.format(question), tools=[get_weather])
    assert first.tool_calls == EXPECTED_PARALLEL[:1]
    final = model(
        model.format(question, first.to_msg(), Msg("t", run_tools(first), role="tool")),
        tools=[get_weather],
    )
    assert final.text == "Sunny."
    sent = bodies(server, MULTIMODAL)[1]["input"]["messages"]
    assert sent[0]["content"] == [
        {"text": "Weather here?"},
        {"image": "https://img.test/paris.png"},
    ]
    assert sent[1]["tool_calls"] == [wire_call("call_a", "get_weather", '{"city": "Paris"}')]
    assert sent[2] == {
        "role": "tool",
        "content": [{"text": "21 degrees celsius in Paris"}],
        "tool_call_id": "call_a",
        "name": "get_weather",
    }


# -- reasoning ----------------------------------------------------------------------------
def test_reasoning_content_becomes_thinking_in_calls_and_streams(
    server: FakeServer, wire: Any
) -> None:
    server.route(
        "POST",
        CHAT,
        wire.message_reply(
            {"content": "42", "reasoning_content": "6 times 7"},
            usage=(10, 30),
            output_tokens_details={"reasoning_tokens": 25},
            prompt_tokens_details={"cached_tokens": 4},
        ),
        wire.message_stream(
            [{"reasoning_content": "6 times"}, {"reasoning_content": " 7"}, {"content": "42"}]
        ),
    )
    model = load(server, model_name="qwen3-235b-a22b", generate_args={"enable_thinking": True})
    plain = model(ask(model))
    streamed = collect(model.stream(ask(model)))
    assert plain.thinking == streamed.thinking == "6 times 7"
    assert (
        plain.content
        == streamed.content
        == [{"type": "thinking", "thinking": "6 times 7"}, {"type": "text", "text": "42"}]
    )
    assert (plain.usage.reasoning_tokens, plain.usage.cached_tokens) == (25, 4)
    booked = model.usage  # the plain call's parts are summed with its counts
    assert (booked["reasoning_tokens"], booked["cached_tokens"]) == (25, 4)
    assert all(body["parameters"]["enable_thinking"] is True for body in bodies(server))
    # DashScope does not take reasoning back: the thinking block is left out of the turn
    (_, sent_back) = model.format(Msg("u", "Q", role="user"), plain.to_msg("agent"))
    assert sent_back == {"role": "assistant", "content": "42"}


@pytest.mark.parametrize("model_type", list(PATHS))
def test_thinking_in_every_mode(model_type: str, server: FakeServer, wire: Any) -> None:
    reply = wire.message_reply(
        {"content": reply_text(model_type, "42"), "reasoning_content": "6 times 7"},
        usage=(10, 30),
        output_tokens_details={"reasoning_tokens": 25},
    )
    stream = wire.message_stream(
        [
            {"content": reply_text(model_type, ""), "reasoning_content": "6 times"},
            {"content": reply_text(model_type, ""), "reasoning_content": " 7"},
            {"content": reply_text(model_type, "4")},
            {"content": reply_text(model_type, "2")},
        ],
        usage=(10, 30),
    )
    server.route("POST", PATHS[model_type], reply, reply, stream, stream)
    model = load(server, model_type, generate_args={"enable_thinking": True})
    expected = [{"type": "thinking", "thinking": "6 times 7"}, {"type": "text", "text": "42"}]
    for mode in MODES:
        response, chunks = answer(model, mode)
        assert response.thinking == "6 times 7", mode
        assert response.content == expected, mode
        assert response.text == "42", mode
        assert response.usage.total_tokens == 40, mode
        if chunks is not None:
            assert [chunk.thinking for chunk in chunks] == ["6 times", " 7", "", ""], mode
            assert [chunk.text for chunk in chunks] == ["", "", "4", "2"], mode
            assert all(chunk.usage is None for chunk in chunks[:-1]), mode
        else:
            assert response.usage.reasoning_tokens == 25, mode
    sent = bodies(server, PATHS[model_type])
    assert len(sent) == 4
    assert all(body["parameters"]["enable_thinking"] is True for body in sent)


# -- the README's loop -------------------------------------------------------------------
README = Path(__file__).resolve().parents[3] / "plugins" / "dashscope" / "README.md"


def readme_loop() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Tools, structured output, images and thinking", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_tool_loop_runs(
    server: FakeServer, wire: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelwire

    server.route(
        "POST",
        CHAT,
        tool_reply(wire, [wire_call("call_1", "get_weather", '{"city": "Paris"}')]),
        wire.message_reply({"content": "It is sunny in Paris."}),
    )
    modelwire.init(
        [
            {
                "config_name": "my_dashscope_chat_config",
                "model_type": "dashscope_chat",
                "model_name": "qwen-max",
                "api_key": KEY,
                "base_url": server.url + API,
                "retry": {"max_retries": 0},
            }
        ]
    )
    try:
        exec(compile(readme_loop(), str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - the README is ours
    finally:
        modelwire.init(clear_existing=True)
    assert capsys.readouterr().out == "It is sunny in Paris.\n"
    first, second = bodies(server)
    assert first["parameters"]["tools"][0]["function"]["name"] == "get_weather"
    assert second["input"]["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert second["input"]["messages"][2] == {
        "role": "tool",
        "content": "Sunny in Paris",
        "tool_call_id": "call_1",
        "name": "get_weather",
    }
