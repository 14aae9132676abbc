"""Tools, structured output, content blocks and thinking on ``gemini_chat``: the real
google-genai SDK over real HTTP against Gemini's wire format."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pydantic
import pytest

from modelwire import (
    BadRequestError,
    ConfigError,
    ModelRegistry,
    Msg,
    ResponseParseError,
    acollect,
    collect,
    tool_result,
)
from modelwire.testing import FakeServer, Reply
from modelwire.testing.tools import get_time, get_weather, run_tools

# google-genai subclasses aiohttp.ClientSession for its async transport; aiohttp frowns on it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

KEY = "gm-test-key-0c9d8e7f6a"
GENERATE = "/v1/models/{model}:generateContent"
STREAM = "/v1/models/{model}:streamGenerateContent"
#: Thought signatures are base64 on the wire; these survive the SDK's re-encoding as they are.
SIG_A = base64.b64encode(b"signature-a").decode()
SIG_B = base64.b64encode(b"signature-b").decode()
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def load(server: FakeServer, **params: Any) -> Any:
    config = {
        "config_name": "gemini-tools",
        "model_type": "gemini_chat",
        "model_name": "gemini-2.5-flash",
        "api_key": KEY,
        "base_url": server.url,
        "retry": {"max_retries": 2, "initial_delay": 0.01, "max_delay": 1.0},
        "timeout": 5.0,
        **params,
    }
    return ModelRegistry([config]).load_model("gemini-tools")


def bodies(server: FakeServer, path: str = GENERATE) -> list[Any]:
    return [request.json() for request in server.requests_to(path, "POST")]


def ask(model: Any, text: str = "Weather in Paris and the time in Tokyo?") -> Any:
    return model.format(Msg("user", text, role="user"))


def call_part(name: str, args: Any, signature: str | None = None, **extra: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args, **extra}}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


PARALLEL_PARTS = [
    call_part("get_weather", {"city": "Paris"}, SIG_A),
    call_part("get_time", {"tz": "Asia/Tokyo"}),
]

#: What the parallel calls become: Gemini gave no ids, so they are numbered.
EXPECTED_PARALLEL = [
    {
        "type": "tool_use",
        "id": "call_0",
        "name": "get_weather",
        "input": {"city": "Paris"},
        "signature": SIG_A,
    },
    {"type": "tool_use", "id": "call_1", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
]

USAGE = {"promptTokenCount": 20, "candidatesTokenCount": 12, "totalTokenCount": 32}


def reply(parts: list[dict[str, Any]], finish_reason: str = "STOP", **candidate: Any) -> Reply:
    """A generateContent reply of one candidate with these parts."""
    return Reply.json(payload(parts, finish_reason, usage=USAGE, **candidate))


def payload(
    parts: list[dict[str, Any]] | None,
    finish_reason: str | None = None,
    *,
    usage: dict[str, int] | None = None,
    **candidate: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": [{"index": 0, **candidate}], "modelVersion": "g-001"}
    if parts is not None:
        body["candidates"][0]["content"] = {"role": "model", "parts": parts}
    if finish_reason:
        body["candidates"][0]["finishReason"] = finish_reason
    if usage:
        body["usageMetadata"] = usage
    return body


def sse(*events: dict[str, Any]) -> Reply:
    return Reply.sse(list(events))


def text_reply(text: str) -> Reply:
    return reply([{"text": text}])


# -- tools on the wire -------------------------------------------------------------------
def test_functions_become_function_declarations(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply(PARALLEL_PARTS[:1]))
    model = load(server)
    response = model(ask(model), tools=[get_weather, get_time])
    (body,) = bodies(server)
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Get the current weather.",
                    "parameters_json_schema": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string", "description": "The city's name."},
                            "unit": {"type": "string", "default": "celsius"},
                        },
                        "required": ["city"],
                    },
                },
                {
                    "name": "get_time",
                    "description": "The local time in a time zone.",
                    "parameters_json_schema": {
                        "type": "object",
                        "properties": {"tz": {"type": "string"}},
                        "required": ["tz"],
                    },
                },
            ]
        }
    ]
    assert "toolConfig" not in body
    assert response.tool_calls == EXPECTED_PARALLEL[:1]
    assert response.content == EXPECTED_PARALLEL[:1]
    assert response.text == ""
    assert response.finish_reason == "STOP"


def test_calls_without_tools_send_no_tool_fields(server: FakeServer) -> None:
    server.route("POST", GENERATE, text_reply("hi"))
    model = load(server)
    model(ask(model))
    model(ask(model), tools=[])
    for body in bodies(server):
        assert not {"tools", "toolConfig"} & body.keys()
        assert "responseJsonSchema" not in body.get("generationConfig", {})


def test_pydantic_tools_and_tools_in_generation_config(server: FakeServer) -> None:
    class Lookup(pydantic.BaseModel):
        """Look a word up."""

        word: str

    server.route("POST", GENERATE, text_reply("hi"))
    model = load(
        server,
        generation_config={"tools": [{"name": "ping"}], "tool_choice": "auto", "temperature": 0},
    )
    model(ask(model))
    model(ask(model), tools=[Lookup], tool_choice="Lookup")
    first, second = bodies(server)
    assert first["tools"] == [{"functionDeclarations": [{"name": "ping"}]}]  # no arguments
    assert first["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert first["generationConfig"] == {"temperature": 0}
    (declaration,) = second["tools"][0]["functionDeclarations"]
    assert (declaration["name"], declaration["description"]) == ("Lookup", "Look a word up.")
    assert declaration["parameters_json_schema"]["required"] == ["word"]
    assert second["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Lookup"]}
    }


def test_gemini_native_tools_pass_through(server: FakeServer) -> None:
    server.route("POST", GENERATE, text_reply("hi"))
    model = load(server)
    native = {"function_declarations": [{"name": "lookup", "description": "Look up."}]}
    model(ask(model), tools=[get_time, {"google_search": {}}, native], tool_choice="lookup")
    (body,) = bodies(server)
    # The SDK sends Gemini's own tools first and merges every declaration into one tool.
    google_search, functions = body["tools"]
    assert google_search == {"googleSearch": {}}
    assert [d["name"] for d in functions["functionDeclarations"]] == ["get_time", "lookup"]
    assert body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == ["lookup"]


@pytest.mark.parametrize(
    ("generation_config", "named"),
    [
        ({"tools": [{"type": "function", "function": {"description": "x"}}]}, "not a function"),
        ({"tools": [{"name": "ping"}], "tool_choice": "pong"}, "'pong'"),
        ({"structured_model": "City"}, "structured_model"),
        ({"structured_model": {"type": "object"}, "response_schema": {}}, "response_schema"),
        ({"tools": [{"name": "ping"}, {"function_declarations": [{"name": "ping"}]}]}, "'ping'"),
    ],
    ids=["bad-tool", "unknown-choice", "bad-model", "two-schemas", "twice"],
)
def test_bad_tools_in_generation_config_fail_the_config(
    generation_config: dict[str, Any], named: str, server: FakeServer
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(server, generation_config=generation_config)
    assert "generation_config" in str(caught.value) and named in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize(
    ("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")]
)
def test_tool_choice_modes_map_to_function_calling_config(
    choice: str, mode: str, server: FakeServer
) -> None:
    server.route("POST", GENERATE, text_reply("hi"))
    model = load(server)
    model(ask(model), tools=[get_weather], tool_choice=choice)
    assert bodies(server)[0]["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_tool_choice_forcing_a_tool(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply(PARALLEL_PARTS[1:]))
    model = load(server)
    response = model(ask(model), tools=[get_weather, get_time], tool_choice="get_time")
    assert bodies(server)[0]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }
    assert [call["name"] for call in response.tool_calls] == ["get_time"]


def test_a_function_calling_config_dict_is_sent_as_given(server: FakeServer) -> None:
    server.route("POST", GENERATE, text_reply("hi"))
    model = load(server)
    model(ask(model), tools=[get_weather], tool_choice={"mode": "VALIDATED"})
    assert bodies(server)[0]["toolConfig"] == {"functionCallingConfig": {"mode": "VALIDATED"}}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tools": [get_weather], "tool_choice": "get_time"},
        {"tool_choice": "get_time"},
        {"tools": [42]},
        {"tools": [get_weather, get_weather]},
        {"tools": [{"google_serch": {}}]},
        {"structured_model": "City"},
        {"structured_model": {"type": "object"}, "response_json_schema": {"type": "object"}},
        {"structured_model": {"type": "object"}, "response_mime_type": "text/x.enum"},
    ],
    ids=[
        "unknown-choice",
        "choice-without-tools",
        "bad-tool",
        "twice",
        "misspelt-native-tool",
        "bad-model",
        "two-schemas",
        "not-json",
    ],
)
def test_bad_tool_arguments_are_refused_before_sending(
    kwargs: dict[str, Any], server: FakeServer
) -> None:
    server.route("POST", GENERATE, text_reply("hi"))
    server.route("POST", STREAM, sse(payload([{"text": "hi"}], "STOP")))
    model = load(server)
    with pytest.raises(BadRequestError):
        model(ask(model), **kwargs)
    with pytest.raises(BadRequestError):
        list(model.stream(ask(model), **kwargs))
    assert server.requests == []


# -- the round trip ----------------------------------------------------------------------


def test_parallel_calls_round_trip(server: FakeServer) -> None:
    server.route(
        "POST",
        GENERATE,
        reply([{"text": "Let me check."}, *PARALLEL_PARTS]),
        text_reply("Sunny in Paris; noon in Tokyo."),
    )
    model = load(server)
    question = Msg("user", "Weather in Paris and the time in Tokyo?", role="user")
    first = model(model.format(question), tools=[get_weather, get_time])
    assert first.tool_calls == EXPECTED_PARALLEL
    assert first.content == [{"type": "text", "text": "Let me check."}, *EXPECTED_PARALLEL]
    results = Msg("tools", run_tools(first), role="tool")
    final = model(model.format(question, first.to_msg("agent"), results), tools=[get_weather])
    assert final.text == "Sunny in Paris; noon in Tokyo."
    assert final.tool_calls is None
    # Gemini's documented shape: the model turn as it came (the signature in the part it
    # was received in), then one user turn with a functionResponse per call.
    contents = bodies(server)[1]["contents"]
    assert contents == [
        {"role": "user", "parts": [{"text": "Weather in Paris and the time in Tokyo?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Let me check."},
                {
                    "functionCall": {
                        "id": "call_0",
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                    },
                    "thoughtSignature": SIG_A,
                },
                {
                    "functionCall": {
                        "id": "call_1",
                        "name": "get_time",
                        "args": {"tz": "Asia/Tokyo"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "call_0",
                        "name": "get_weather",
                        "response": {"output": "21 degrees celsius in Paris"},
                    }
                },
                {
                    "functionResponse": {
                        "id": "call_1",
                        "name": "get_time",
                        "response": {"output": "12:00 in Asia/Tokyo"},
                    }
                },
            ],
        },
    ]


def test_gemini_call_ids_are_kept_and_sent_back(server: FakeServer) -> None:
    server.route(
        "POST",
        GENERATE,
        reply([call_part("get_weather", {"city": "Paris"}, id="fc-7")]),
        text_reply("Sunny."),
    )
    model = load(server)
    first = model(ask(model), tools=[get_weather])
    assert first.tool_calls[0]["id"] == "fc-7"
    result = tool_result(first.tool_calls[0], {"temperature": 21, "sky": "clear"})
    model(model.format(first.to_msg(), Msg("tools", [result], role="tool")))
    model_turn, results = bodies(server)[1]["contents"]
    assert model_turn["parts"][0]["functionCall"]["id"] == "fc-7"
    assert results["parts"] == [
        {
            "functionResponse": {
                "id": "fc-7",
                "name": "get_weather",
                "response": {"output": {"temperature": 21, "sky": "clear"}},  # JSON, not text
            }
        }
    ]


def test_a_tool_message_needs_a_name(server: FakeServer) -> None:
    model = load(server)
    with pytest.raises(BadRequestError, match="metadata"):
        model.format(Msg("tool", "sunny", role="tool"))
    prompt = model.format(Msg("tool", "sunny", role="tool", metadata={"name": "get_weather"}))
    assert prompt["contents"] == [
        {
            "role": "user",
            "parts": [
                {"function_response": {"name": "get_weather", "response": {"output": "sunny"}}}
            ],
        }
    ]


# -- streamed tool calls -----------------------------------------------------------------
def streamed_calls() -> list[dict[str, Any]]:
    """Gemini streams each function call whole (arguments as an object, never split
    JSON); parallel calls arrive in separate events or several in one, between text."""
    return [
        payload([{"text": "Let me "}]),
        payload([{"text": "check."}, PARALLEL_PARTS[0]]),
        payload([PARALLEL_PARTS[1], call_part("get_weather", {"city": "Oslo"}, SIG_B)]),
        payload([{"text": ""}], "STOP", usage=USAGE),
    ]


EXPECTED_STREAMED = [
    *EXPECTED_PARALLEL,
    {
        "type": "tool_use",
        "id": "call_2",
        "name": "get_weather",
        "input": {"city": "Oslo"},
        "signature": SIG_B,
    },
]


def test_streamed_calls_are_assembled(server: FakeServer) -> None:
    server.route("POST", STREAM, sse(*streamed_calls()))
    model = load(server)
    chunks = list(model.stream(ask(model), tools=[get_weather, get_time]))
    assert "".join(chunk.text for chunk in chunks) == "Let me check."
    assert chunks[-1].tool_calls == EXPECTED_STREAMED
    assert chunks[-1].usage.total_tokens == 32
    finish = next(i for i, chunk in enumerate(chunks) if chunk.finish_reason)
    assert all(chunk.tool_calls is None for chunk in chunks[:finish])
    response = collect(chunks)
    assert response.tool_calls == EXPECTED_STREAMED
    assert response.content == [{"type": "text", "text": "Let me check."}, *EXPECTED_STREAMED]


def test_astream_collects_as_acall_gives(server: FakeServer) -> None:
    oslo = call_part("get_weather", {"city": "Oslo"}, SIG_B)
    server.route("POST", STREAM, sse(*streamed_calls()))
    server.route("POST", GENERATE, reply([{"text": "Let me check."}, *PARALLEL_PARTS, oslo]))
    model = load(server)

    async def both() -> tuple[Any, Any]:
        streamed = await acollect(model.astream(ask(model), tools=[get_weather]))
        plain = await model.acall(ask(model), tools=[get_weather])
        return streamed, plain

    streamed, plain = asyncio.run(both())
    assert streamed.tool_calls == plain.tool_calls == EXPECTED_STREAMED
    assert streamed.content == plain.content
    assert streamed.text == plain.text == "Let me check."
    assert bodies(server, STREAM)[0]["tools"] == bodies(server)[0]["tools"]


def test_streamed_calls_round_trip_with_their_signatures(server: FakeServer) -> None:
    server.route("POST", STREAM, sse(*streamed_calls()))
    server.route("POST", GENERATE, text_reply("Done."))
    model = load(server)
    streamed = collect(model.stream(ask(model), tools=[get_weather, get_time]))
    model(model.format(streamed.to_msg(), Msg("tools", run_tools(streamed), role="tool")))
    model_turn, results = bodies(server)[0]["contents"]
    assert [part.get("thoughtSignature") for part in model_turn["parts"]] == [
        None,
        SIG_A,
        None,
        SIG_B,
    ]
    assert [part["functionResponse"]["id"] for part in results["parts"]] == [
        "call_0",
        "call_1",
        "call_2",
    ]


# -- malformed calls ---------------------------------------------------------------------
MALFORMED = "Malformed function call: print(default_api.get_weather(city='Par"


def test_a_malformed_function_call_raises_with_the_finish_message(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply([], "MALFORMED_FUNCTION_CALL", finishMessage=MALFORMED))
    model = load(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), tools=[get_weather])
    assert caught.value.finish_reason == "MALFORMED_FUNCTION_CALL"
    assert caught.value.finish_message == MALFORMED
    assert MALFORMED in str(caught.value)
    assert len(bodies(server)) == 1  # a parse error is not retried


def test_a_malformed_function_call_in_a_stream_raises_after_the_text(server: FakeServer) -> None:
    events = [
        payload([{"text": "Checking"}]),
        payload(None, "MALFORMED_FUNCTION_CALL", finishMessage=MALFORMED),
    ]
    server.route("POST", STREAM, sse(*events))
    model = load(server)
    received = []
    with pytest.raises(ResponseParseError) as caught:
        for chunk in model.stream(ask(model), tools=[get_weather]):
            received.append(chunk.text)
    assert received == ["Checking"]
    assert caught.value.finish_reason == "MALFORMED_FUNCTION_CALL"
    assert caught.value.partial_text == "Checking"
    # google-genai drops a stream event's finishMessage (Gemini API); calls keep it.
    assert caught.value.finish_message is None


def test_string_arguments_are_repaired(server: FakeServer) -> None:
    """Gemini sends an object; a proxy in front of it may send text, repaired if unambiguous."""
    server.route("POST", GENERATE, reply([call_part("get_weather", '{"city": "Paris",}')]))
    model = load(server)
    assert model(ask(model)).tool_calls[0]["input"] == {"city": "Paris"}


def test_unreadable_arguments_raise_with_the_raw_value(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply([call_part("get_weather", '{"city": "Par')]))
    server.route("POST", STREAM, sse(payload([call_part("get_weather", ["Paris"])], "STOP")))
    model = load(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model))
    assert caught.value.arguments == '{"city": "Par'
    assert "get_weather" in str(caught.value)
    # In streams the SDK validates each event itself: arguments that are not an object
    # are refused there, and surface as the same error.
    with pytest.raises(ResponseParseError, match="args"):
        list(model.stream(ask(model)))


def test_a_call_without_a_name_raises(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply([{"functionCall": {"args": {}}}]))
    model = load(server)
    with pytest.raises(ResponseParseError, match="without a name"):
        model(ask(model))


# -- structured output -------------------------------------------------------------------
class City(pydantic.BaseModel):
    name: str
    population: int
    nickname: str | None = None


CITY_JSON = '{"name": "Paris", "population": 2100000}'


def test_structured_model_sends_a_json_schema(server: FakeServer) -> None:
    server.route("POST", GENERATE, text_reply(CITY_JSON))
    model = load(server)
    response = model(ask(model), structured_model=City)
    assert response.parsed == City(name="Paris", population=2100000)
    config = bodies(server)[0]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == City.model_json_schema()
    assert "responseSchema" not in config and "structured_model" not in str(bodies(server))


def test_a_schema_dict_in_generation_config_gives_a_dict(server: FakeServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name"],
    }
    server.route("POST", GENERATE, text_reply('{"name": "Paris", "population": 3}'))
    model = load(server, generation_config={"structured_model": schema})
    assert model(ask(model)).parsed == {"name": "Paris", "population": 3}
    assert bodies(server)[0]["generationConfig"]["responseJsonSchema"] == schema


def test_a_reply_off_the_schema_raises(server: FakeServer) -> None:
    server.route("POST", GENERATE, text_reply('{"name": "Paris"}'))
    model = load(server)
    with pytest.raises(ResponseParseError) as caught:
        model(ask(model), structured_model=City)
    assert caught.value.text == '{"name": "Paris"}'
    assert caught.value.validation_errors[0].startswith("population:")


def test_a_structured_stream_parses_its_last_chunk(server: FakeServer) -> None:
    good = sse(
        payload([{"text": '{"name": "Paris", '}]),
        payload([{"text": '"population": 2100000}'}], "STOP"),
    )
    bad = sse(payload([{"text": '{"name": 1}'}], "STOP"))
    server.route("POST", STREAM, good, bad)
    model = load(server)
    chunks = list(model.stream(ask(model), structured_model=City))
    assert isinstance(chunks[-1].parsed, City) and chunks[0].parsed is None
    assert collect(chunks).parsed == City(name="Paris", population=2100000)
    with pytest.raises(ResponseParseError) as caught:
        list(model.stream(ask(model), structured_model=City))
    assert caught.value.partial_text == '{"name": 1}'


def test_a_tool_call_turn_of_a_structured_call_is_not_validated(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply(PARALLEL_PARTS[:1]))
    server.route("POST", STREAM, sse(payload(PARALLEL_PARTS[:1], "STOP")))
    model = load(server)
    plain = model(ask(model), tools=[get_weather], structured_model=City)
    streamed = collect(model.stream(ask(model), tools=[get_weather], structured_model=City))
    assert plain.tool_calls == streamed.tool_calls == EXPECTED_PARALLEL[:1]
    assert plain.parsed is None and streamed.parsed is None
    assert bodies(server)[0]["generationConfig"]["responseMimeType"] == "application/json"


# -- images ------------------------------------------------------------------------------
def test_image_blocks_become_inline_data_and_file_data(server: FakeServer, tmp_path: Any) -> None:
    server.route("POST", GENERATE, text_reply("Cats."))
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    model = load(server)
    msg = Msg(
        "user",
        [
            {"type": "text", "text": "What are these?"},
            {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}},
            {"type": "image", "source": {"type": "url", "url": "gs://bucket/b.png"}},
            {"type": "image", "source": {"type": "url", "url": str(picture)}},
            {"type": "image", "source": {"type": "url", "url": "data:image/webp;base64,UklG"}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
            },
        ],
        role="user",
    )
    model(model.format(msg))
    parts = bodies(server)[0]["contents"][0]["parts"]
    assert parts[0] == {"text": "What are these?"}
    assert parts[1] == {
        "fileData": {"file_uri": "https://img.test/a.jpg", "mime_type": "image/jpeg"}
    }
    assert parts[2] == {"fileData": {"file_uri": "gs://bucket/b.png", "mime_type": "image/png"}}
    assert parts[3]["inlineData"]["mime_type"] == "image/png"
    assert base64.urlsafe_b64decode(parts[3]["inlineData"]["data"]) == PNG
    assert parts[4] == {"inlineData": {"mime_type": "image/webp", "data": "UklG"}}
    assert parts[5] == {"inlineData": {"mime_type": "image/gif", "data": "R0lG"}}


def test_a_broken_image_block_is_refused_by_format(server: FakeServer) -> None:
    model = load(server)
    with pytest.raises(BadRequestError, match="image"):
        model.format(Msg("user", [{"type": "image", "source": {"type": "url"}}], role="user"))


# -- thinking ----------------------------------------------------------------------------
THINKING_CONFIG = {"thinking_config": {"include_thoughts": True, "thinking_budget": 512}}


def test_thought_parts_become_thinking_and_go_back_with_their_signatures(
    server: FakeServer,
) -> None:
    parts = [
        {"text": "6 times", "thought": True},
        {"text": " 7", "thought": True},
        {"text": "42", "thoughtSignature": SIG_A},
    ]
    server.route("POST", GENERATE, reply(parts), text_reply("Yes."))
    model = load(server, generation_config=THINKING_CONFIG)
    plain = model(ask(model, "6 x 7?"))
    assert bodies(server)[0]["generationConfig"]["thinkingConfig"] == {
        "include_thoughts": True,
        "thinking_budget": 512,
    }
    assert plain.thinking == "6 times 7"
    assert plain.text == "42"
    assert plain.content == [
        {"type": "thinking", "thinking": "6 times 7"},
        {"type": "text", "text": "42", "signature": SIG_A},
    ]
    model(
        model.format(
            Msg("user", "6 x 7?", role="user"), plain.to_msg(), Msg("user", "Sure?", role="user")
        )
    )
    assert bodies(server)[1]["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "6 times 7", "thought": True},
            {"text": "42", "thoughtSignature": SIG_A},
        ],
    }


def test_thinking_of_a_thought_with_a_signature_keeps_it(server: FakeServer) -> None:
    parts = [
        {"text": "plan", "thought": True, "thoughtSignature": SIG_B},
        call_part("get_time", {"tz": "UTC"}),
    ]
    server.route("POST", GENERATE, reply(parts))
    model = load(server)
    response = model(ask(model), tools=[get_time])
    assert response.content[0] == {"type": "thinking", "thinking": "plan", "signature": SIG_B}
    assert model.format(response.to_msg())["contents"][0]["parts"][0] == {
        "text": "plan",
        "thought": True,
        "thought_signature": SIG_B,
    }


def test_thought_parts_stream_as_thinking(server: FakeServer) -> None:
    events = [
        payload([{"text": "6 times", "thought": True}]),
        payload([{"text": " 7", "thought": True}]),
        payload([{"text": "42"}], "STOP", usage=USAGE),
    ]
    server.route("POST", STREAM, sse(*events))
    model = load(server, generation_config=THINKING_CONFIG)

    async def run() -> Any:
        return await acollect(model.astream(ask(model, "6 x 7?")))

    for streamed in (collect(model.stream(ask(model, "6 x 7?"))), asyncio.run(run())):
        assert streamed.thinking == "6 times 7"
        assert streamed.text == "42"
        assert streamed.content == [
            {"type": "thinking", "thinking": "6 times 7"},
            {"type": "text", "text": "42"},
        ]
    assert bodies(server, STREAM)[0]["generationConfig"]["thinkingConfig"]["include_thoughts"]


def test_streamed_text_and_thought_signatures_are_kept_and_sent_back(server: FakeServer) -> None:
    events = [
        payload([{"text": "6 times", "thought": True}]),
        payload([{"text": " 7", "thought": True, "thoughtSignature": SIG_B}]),
        payload([{"text": "4"}]),
        payload([{"text": "2"}]),
        payload([{"text": "", "thoughtSignature": SIG_A}], "STOP", usage=USAGE),  # as Gemini ends
    ]
    server.route("POST", STREAM, sse(*events))
    server.route("POST", GENERATE, text_reply("Yes."))
    model = load(server, generation_config=THINKING_CONFIG)

    async def run() -> Any:
        return await acollect(model.astream(ask(model, "6 x 7?")))

    expected = [
        {"type": "thinking", "thinking": "6 times 7", "signature": SIG_B},
        {"type": "text", "text": "42", "signature": SIG_A},
    ]
    for streamed in (collect(model.stream(ask(model, "6 x 7?"))), asyncio.run(run())):
        assert streamed.content == expected
    model(model.format(streamed.to_msg(), Msg("user", "Sure?", role="user")))
    assert bodies(server)[0]["contents"][0] == {
        "role": "model",
        "parts": [
            {"text": "6 times 7", "thought": True, "thoughtSignature": SIG_B},
            {"text": "42", "thoughtSignature": SIG_A},
        ],
    }


def test_thinking_of_other_messages_is_not_sent(server: FakeServer) -> None:
    model = load(server)
    msg = Msg(
        "user", [{"type": "thinking", "thinking": "x"}, {"type": "text", "text": "hi"}], role="user"
    )
    assert model.format(msg)["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_tools_through_acall(server: FakeServer) -> None:
    server.route("POST", GENERATE, reply(PARALLEL_PARTS))
    model = load(server)
    response = asyncio.run(model.acall(ask(model), tools=[get_weather, get_time]))
    assert response.tool_calls == EXPECTED_PARALLEL
    assert bodies(server)[0]["tools"][0]["functionDeclarations"][1]["name"] == "get_time"


# -- the README's loop -------------------------------------------------------------------
README = Path(__file__).resolve().parents[3] / "plugins" / "gemini" / "README.md"


def test_the_readme_tool_loop_runs(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Tools, structured output, images and thinking", 1)[1]
    loop = section.split("```python\n", 1)[1].split("```", 1)[0]
    server.route(
        "POST",
        GENERATE,
        reply([call_part("get_weather", {"city": "Paris"}, SIG_A)]),
        text_reply("It is sunny in Paris."),
    )
    model = load(server)
    exec(compile(loop, str(README), "exec"), {"__name__": "readme", "model": model})  # noqa: S102 - the README is ours
    assert capsys.readouterr().out == "It is sunny in Paris.\n"
    first, second = bodies(server)
    assert first["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert second["contents"][1]["parts"] == [
        {
            "functionCall": {"id": "call_0", "name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": SIG_A,
        }
    ]
    assert second["contents"][2]["parts"] == [
        {
            "functionResponse": {
                "id": "call_0",
                "name": "get_weather",
                "response": {"output": "Sunny in Paris"},
            }
        }
    ]
