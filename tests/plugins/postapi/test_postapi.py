"""``post_api`` / ``post_api_chat`` behaviour beyond the conformance suite, over real HTTP.

Seed configs, request bodies, every recognised reply shape, the ``*_path`` options,
usage, error mapping and retries, timeouts, SSE/NDJSON streaming, secrets, clients
and config validation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelwire import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ModelRegistry,
    ModelTimeoutError,
    Msg,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    RetryPolicy,
    ServiceUnavailableError,
    UnsupportedOperationError,
    Usage,
    records,
)
from modelwire.testing import FakeServer, RawEvent, Reply, Request
from modelwire_postapi.parsing import Path as ReplyPath
from modelwire_postapi.streaming import Event, EventDecoder

from .conftest import (
    COMPLETION_TOKENS,
    MODEL,
    PROMPT_TOKENS,
    USAGE,
    USAGE_JSON,
    answer_for,
    chat_completion,
    llm_reply,
    llm_service,
    load,
    openai_chat_service,
    post_api,
    post_api_chat,
    seed_flask_service,
)

SEED_CONFIGS = Path(__file__).resolve().parents[3] / "examples" / "model_configs.json"
OUR_TYPES = ("post_api", "post_api_chat")


def user(text: str) -> Msg:
    return Msg("user", text, role="user")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def seed_configs() -> list[dict[str, Any]]:
    configs = json.loads(SEED_CONFIGS.read_text())
    return [config for config in configs if config["model_type"] in OUR_TYPES]


# -- the seed's configs ------------------------------------------------------------------------
def test_the_seed_has_configs_of_both_types() -> None:
    assert {config["model_type"] for config in seed_configs()} == set(OUR_TYPES)


@pytest.mark.parametrize("seed", seed_configs(), ids=lambda config: config["config_name"])
def test_every_seed_config_loads_and_works(server: FakeServer, seed: dict[str, Any]) -> None:
    path = urlsplit(seed["api_url"]).path or "/"
    server.route("POST", path, seed_flask_service())
    model = load({**seed, "api_url": server.url + path})
    response = model(model.format(user("Tell me a joke")))
    assert response.text == "Echo: Tell me a joke"
    body = server.requests[-1].json()
    sent = (
        "Tell me a joke"
        if seed["model_type"] == "post_api"
        else [{"role": "user", "content": "Tell me a joke"}]
    )
    assert body == {"inputs": sent, **seed["json_args"]}
    assert response.usage == USAGE


def test_flask_seed_config_returns_the_generated_text(server: FakeServer) -> None:
    """The acceptance case: the seed's Flask config against a service shaped like serving's."""
    (flask,) = [c for c in seed_configs() if c["config_name"] == "flask_llama2-7b-chat"]
    server.route("POST", "/llm/", llm_service())
    model = load({**flask, "api_url": server.url + "/llm/"})
    response = model("Once upon a time")
    assert response.text == "Echo: Once upon a time"
    assert response.usage == USAGE
    assert response.model_name == MODEL
    assert response.finish_reason == "stop"
    assert response.raw == llm_reply("Echo: Once upon a time")
    assert server.requests[-1].json() == {
        "inputs": "Once upon a time",
        "max_length": 4096,
        "temperature": 0.5,
    }
    assert server.requests[-1].header("content-type") == "application/json"


# -- the request body --------------------------------------------------------------------------
def test_body_is_messages_key_then_json_args_then_call_kwargs(server: FakeServer) -> None:
    server.route("POST", "/gen", lambda r: Reply.json({"text": answer_for(r.json()["prompt"])}))
    model = post_api(
        server,
        "/gen",
        messages_key="prompt",
        max_length=128,
        json_args={"temperature": 0.5, "top_p": 0.9},
    )
    assert model("Hi", temperature=0.1, seed=7).text == "Echo: Hi"
    assert server.requests[-1].json() == {
        "prompt": "Hi",
        "max_length": 128,
        "temperature": 0.1,
        "top_p": 0.9,
        "seed": 7,
    }
    model = post_api(
        server, "/gen", messages_key="prompt", max_length=128, json_args={"max_length": 16}
    )
    model("Hi")
    assert server.requests[-1].json() == {"prompt": "Hi", "max_length": 16}


def test_post_api_sends_its_input_as_is(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service())
    model = post_api(server)
    model("a raw prompt")
    assert server.requests[-1].json()["inputs"] == "a raw prompt"
    messages = [{"role": "user", "content": "listed"}]
    assert model(messages).text == "Echo: listed"
    assert server.requests[-1].json()["inputs"] == messages


def test_post_api_format_gives_a_prompt_string() -> None:
    model = load({"config_name": "f", "model_type": "post_api", "api_url": "http://127.0.0.1:1/"})
    assert model.format(user("Hello")) == "Hello"
    transcript = model.format(Msg("system", "Be brief.", role="system"), [user("Hi")])
    assert transcript == "system: Be brief.\nuser: Hi"
    assert model.format(user({"a": 1})) == '{"a": 1}'


def test_post_api_chat_sends_openai_style_messages(server: FakeServer, tmp_path: Path) -> None:
    server.route("POST", "/v1/chat/completions", openai_chat_service())
    model = post_api_chat(server)
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG fake")
    msgs = [
        Msg("system", "Be brief.", role="system"),
        user("What is this?"),
        Msg("user", "and these", role="user", url=["https://example.com/a.jpg", str(picture)]),
    ]
    model(model.format(msgs))
    sent = server.requests[-1].json()["messages"]
    assert sent[:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?"},
    ]
    encoded = base64.b64encode(b"\x89PNG fake").decode()
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "and these"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
        ],
    }
    with pytest.raises(BadRequestError, match="neither"):
        model.format(Msg("user", "x", role="user", url=str(tmp_path / "missing.png")))


def test_input_that_is_not_json_is_refused_before_sending(server: FakeServer) -> None:
    model = post_api(server)
    with pytest.raises(BadRequestError, match="cannot be sent as JSON"):
        model(object())
    with pytest.raises(BadRequestError):
        model("x", temperature=float("nan"))
    assert server.requests == []


# -- reply shapes -------------------------------------------------------------------------------
SHAPES = {
    "flask-response": {"response": "T"},
    "seed-chat-data-response": {"data": {"response": {"choices": [{"message": {"content": "T"}}]}}},
    "openai-chat": chat_completion("T"),
    "openai-completion": {"choices": [{"text": "T", "index": 0}], "usage": USAGE_JSON},
    "hf-inference-api": [{"generated_text": "T"}],
    "tgi-generate": {"generated_text": "T", "details": {"finish_reason": "eos_token"}},
    "ollama-chat": {"message": {"role": "assistant", "content": "T"}, "done": True},
    "dashscope": {"output": {"text": "T"}, "request_id": "r"},
    "text": {"text": "T"},
    "output": {"output": "T"},
}


@pytest.mark.parametrize("payload", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("model_type", OUR_TYPES)
def test_recognised_text_shapes(server: FakeServer, payload: Any, model_type: str) -> None:
    server.route("POST", "/any", Reply.json(payload))
    make = post_api if model_type == "post_api" else post_api_chat
    model = make(server, "/any")
    response = model("hi")
    assert response.text == "T"
    assert response.raw == payload
    assert run(model.acall("hi")).text == "T"


@pytest.mark.parametrize(
    "path",
    [
        "result.outputs.1.answer",
        "result.outputs[1].answer",
        "result.outputs.-1.answer",
        "[0]result.outputs.1.answer",
    ],
)
def test_response_path_finds_the_text(server: FakeServer, path: str) -> None:
    nested = {"result": {"outputs": [{"answer": "first"}, {"answer": "T"}]}}
    payload: Any = [nested] if path.startswith("[0]") else nested
    # A recognised shape is present too: the configured path wins over it.
    if isinstance(payload, dict):
        payload["response"] = "not this"
    server.route("POST", "/svc", Reply.json(payload))
    assert post_api(server, "/svc", response_path=path)("hi").text == "T"


def test_seed_chat_path_is_a_valid_response_path(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service())
    path = "data.response.choices.0.message.content"
    model = post_api_chat(server, "/llm/", messages_key="inputs", response_path=path)
    assert model(model.format(user("x"))).text == "Echo: x"


def test_response_path_that_is_absent_says_where_it_stops(server: FakeServer) -> None:
    server.route("POST", "/svc", Reply.json({"result": {"outputs": []}}))
    model = post_api(server, "/svc", response_path="result.outputs.0.answer")
    with pytest.raises(ResponseParseError) as info:
        model("hi")
    message = str(info.value)
    assert "'result.outputs.0.answer'" in message
    assert "'result.outputs' is an empty list" in message
    assert info.value.config_name == "test-post-api"
    assert len(server.requests) == 1  # a parse error is not retried


def test_response_path_to_something_not_text(server: FakeServer) -> None:
    server.route("POST", "/svc", Reply.json({"result": {"answer": {"t": 1}}}))
    with pytest.raises(ResponseParseError, match="an object with keys \\['t'\\], not to text"):
        post_api(server, "/svc", response_path="result.answer")("hi")


@pytest.mark.parametrize("model_type", OUR_TYPES)
def test_unrecognised_reply_shows_keys_and_how_to_set_response_path(
    server: FakeServer, model_type: str
) -> None:
    payload = {"id": 3, "result": {"score": 0.4, "answer": "the long generated answer"}}
    server.route("POST", "/svc", Reply.json(payload))
    make = post_api if model_type == "post_api" else post_api_chat
    with pytest.raises(ResponseParseError) as info:
        make(server, "/svc")("hi")
    message = str(info.value)
    assert "an object with keys ['id', 'result']" in message
    assert '"response_path": "result.answer"' in message
    assert json.loads(info.value.body or "") == payload  # the raw payload rides along
    assert len(server.requests) == 1


def test_a_200_reply_reporting_an_error_says_so(server: FakeServer) -> None:
    server.route("POST", "/svc", Reply.json({"error": "CUDA out of memory"}))
    with pytest.raises(ProviderError, match="CUDA out of memory") as info:
        post_api(server, "/svc")("hi")
    assert not isinstance(info.value, ResponseParseError)


# -- embeddings and image URLs (post_api) -------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "vectors"),
    [
        ({"object": "list", "data": [{"embedding": [1, 2]}, {"embedding": [3, 4]}]}, 2),
        ({"embeddings": [[0.1, 0.2], [0.3, 0.4]]}, 2),
        ({"embedding": [0.5, 0.25]}, 1),
        ([[0.1, 0.2, 0.3]], 1),  # Hugging Face feature extraction
        ([0.1, 0.2, 0.3], 1),
    ],
    ids=["openai", "embeddings", "embedding", "hf-nested", "hf-flat"],
)
def test_recognised_embedding_shapes(server: FakeServer, payload: Any, vectors: int) -> None:
    server.route("POST", "/embed", Reply.json(payload))
    response = post_api(server, "/embed")(["a", "b"])
    assert response.embedding is not None and len(response.embedding) == vectors
    assert all(isinstance(x, float) for vector in response.embedding for x in vector)
    assert response.text is None


@pytest.mark.parametrize(
    "vector",
    [[True, False], [1.0, "2"], [1.0, None], [[1.0], 2.0]],
    ids=["booleans", "a-string", "a-null", "ragged"],
)
def test_lists_that_are_not_numbers_are_not_vectors(server: FakeServer, vector: Any) -> None:
    server.route("POST", "/svc", Reply.json({"out": {"v": vector}}))
    with pytest.raises(ResponseParseError, match="not to a vector"):
        post_api(server, "/svc", embedding_path="out.v")("x")


def test_embedding_path_and_image_urls_path(server: FakeServer) -> None:
    payload = {
        "out": {"vecs": [{"v": [1, 2]}, {"v": [3, 4]}], "pics": ["s3://bucket/a.png"]},
        "usage": {"prompt_tokens": 4},
    }
    server.route("POST", "/svc", Reply.json(payload))
    model = post_api(server, "/svc", embedding_path="out.vecs.*.v", image_urls_path="out.pics")
    response = model("x")
    assert response.embedding == [[1.0, 2.0], [3.0, 4.0]]
    assert response.image_urls == ["s3://bucket/a.png"]
    assert response.usage == Usage(4, 0, 4)
    bad = post_api(server, "/svc", embedding_path="out.pics")
    with pytest.raises(ResponseParseError, match="not to a vector"):
        bad("x")


def test_recognised_image_url_shapes(server: FakeServer) -> None:
    server.route("POST", "/img", Reply.json({"data": [{"url": "https://img/1.png"}]}))
    assert post_api(server, "/img")("a cat").image_urls == ["https://img/1.png"]
    server.route("POST", "/img", Reply.json({"images": ["iVBORw0KGgo="]}))  # base64, no URL
    with pytest.raises(ResponseParseError):
        post_api(server, "/img")("a cat")


# -- usage -------------------------------------------------------------------------------------
USAGE_SHAPES = {
    "openai-usage": {"usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}},
    "input-output": {"usage": {"input_tokens": 7, "output_tokens": 3}},
    "seed-flask": {"n_token_prompt": 7, "n_token_response": 3},
    "ollama": {"prompt_eval_count": 7, "eval_count": 3},
    "seed-chat-data": {
        "data": {"response": {"usage": {"prompt_tokens": 7, "completion_tokens": 3}}}
    },
}


@pytest.mark.parametrize("extra", USAGE_SHAPES.values(), ids=USAGE_SHAPES.keys())
def test_recognised_usage_shapes(server: FakeServer, extra: dict[str, Any]) -> None:
    server.route("POST", "/svc", Reply.json({"response": "T", **extra}))
    model = post_api(server, "/svc")
    assert model("hi").usage == Usage(7, 3, 10)
    assert model.usage["prompt_tokens"] == 7 and model.usage["completion_tokens"] == 3


def test_no_usage_is_none_and_usage_path_reads_elsewhere(server: FakeServer) -> None:
    server.route(
        "POST",
        "/svc",
        Reply.json({"response": "T", "meta": {"tokens": {"input_tokens": 2, "output_tokens": 5}}}),
    )
    assert post_api(server, "/svc")("hi").usage is None
    assert post_api(server, "/svc", usage_path="meta.tokens")("hi").usage == Usage(2, 5, 7)
    with pytest.raises(ResponseParseError, match="usage_path"):
        post_api(server, "/svc", usage_path="meta.count")("hi")


# -- errors and retries -------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_are_retried(server: FakeServer, status: int) -> None:
    server.route("POST", "/llm/", llm_service())
    server.once("POST", "/llm/", Reply.json({"detail": "busy"}, status))
    model = post_api(server, max_retries=2, retry_interval=0.01)
    assert model("hi").text == "Echo: hi"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, BadRequestError),
        (408, ModelTimeoutError),
        (422, BadRequestError),
    ],
)
def test_other_4xx_are_not_retried(server: FakeServer, status: int, error: type) -> None:
    server.route("POST", "/llm/", llm_service())
    server.once("POST", "/llm/", Reply.json({"detail": f"refused {status}"}, status))
    model = post_api(server, max_retries=3, retry_interval=0.01)
    with pytest.raises(error) as info:
        model("hi")
    assert info.value.status == status
    assert f"refused {status}" in str(info.value)
    assert len(server.requests) == 1


def test_max_retries_and_retry_interval_become_the_core_policy(server: FakeServer) -> None:
    server.route("POST", "/llm/", Reply.json({"detail": "down"}, 503))
    model = post_api(server, max_retries=2, retry_interval=0.05)
    assert model.retry_policy == RetryPolicy(max_retries=2, initial_delay=0.05, max_delay=30.0)
    started = time.perf_counter()
    with pytest.raises(ServiceUnavailableError):
        model("hi")
    assert len(server.requests) == 3
    assert time.perf_counter() - started >= 0.05 / 2 + 0.1 / 2  # backoff waited
    assert post_api(server, max_retries=0).retry_policy.max_retries == 0
    assert post_api(server, retry_interval=45).retry_policy == RetryPolicy(3, 45.0, 45.0)


def test_retry_wins_over_max_retries(server: FakeServer) -> None:
    server.route("POST", "/llm/", Reply.json({"detail": "down"}, 503))
    model = post_api(
        server, max_retries=5, retry_interval=2.0, retry={"max_retries": 1, "initial_delay": 0.01}
    )
    assert model.retry_policy.max_retries == 1 and model.retry_policy.initial_delay == 0.01
    with pytest.raises(ServiceUnavailableError):
        model("hi")
    assert len(server.requests) == 2


def test_rate_limit_carries_retry_after(server: FakeServer) -> None:
    server.route(
        "POST", "/llm/", Reply.json({"error": "slow down"}, 429, headers={"Retry-After": "42"})
    )
    with pytest.raises(RateLimitError) as info:
        post_api(server, max_retries=0)("hi")
    assert info.value.retry_after == 42.0
    assert "slow down" in str(info.value)


def test_error_bodies_are_included_and_truncated(server: FakeServer) -> None:
    body = {"detail": "bad prompt", "trace": "x" * 5000}
    server.route("POST", "/llm/", Reply.json(body, 400))
    with pytest.raises(BadRequestError) as info:
        post_api(server)("hi")
    shown = str(info.value)
    assert "bad prompt" in shown and '"trace": "xxx' in shown
    assert "more characters]" in shown
    assert len(info.value.body or "") < 2100


def test_json_in_a_declared_charset_is_read_in_it(server: FakeServer) -> None:
    body = '{"response": "café crème"}'.encode("latin-1")  # not UTF-8: é is one byte
    headers = {"Content-Type": "application/json; charset=iso-8859-1"}
    server.route("POST", "/llm/", Reply(200, headers, body))
    response = post_api(server)("hi")
    assert response.text == "café crème"
    assert response.raw == {"response": "café crème"}


def test_a_redirect_names_where_to_point_api_url(server: FakeServer) -> None:
    # Flask answers /llm with a 308 to /llm/ (its strict slashes).
    server.route("POST", "/llm", Reply.empty(308, headers={"Location": server.url + "/llm/"}))
    server.route("POST", "/llm/", llm_service())
    with pytest.raises(ProviderError, match=r"redirects to .*/llm/") as info:
        post_api(server, "/llm")("hi")
    assert info.value.status == 308
    following = post_api(server, "/llm", post_args={"follow_redirects": True})
    assert following("hi").text == "Echo: hi"


def test_wrong_path_hints_at_api_url(server: FakeServer) -> None:
    with pytest.raises(BadRequestError, match="check `api_url`"):
        post_api(server, "/nowhere")("hi")


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("{not json", content_type="application/json"),
        Reply.empty(200),
        Reply.html("<html><title>Login</title></html>", 200),
        Reply.text("plain words", content_type="text/plain"),
    ],
    ids=["malformed", "empty", "html", "plain-text"],
)
def test_unparseable_replies_are_parse_errors_not_retried(server: FakeServer, reply: Reply) -> None:
    server.route("POST", "/llm/", reply)
    with pytest.raises(ResponseParseError):
        post_api(server)("hi")
    assert len(server.requests) == 1


# -- timeouts ---------------------------------------------------------------------------------
def test_timeout_is_applied_to_calls_acalls_and_streams(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service(delay=1.5))
    model = post_api(server, timeout=0.3, stream=True)
    for attempt in (
        lambda: model("hi"),
        lambda: run(model.acall("hi")),
        lambda: list(model.stream("hi")),
        lambda: run(collect(model.astream("hi"))),
    ):
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError, match="timeout"):
            attempt()
        assert time.perf_counter() - started < 1.2
    assert len(server.requests) == 4  # a timeout is not retried: the call may have run


def test_a_reply_within_the_timeout_arrives(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service(delay=0.3))
    assert post_api(server, timeout=3)("hi").text == "Echo: hi"


def test_a_stream_silent_for_longer_than_the_timeout_fails(server: FakeServer) -> None:
    server.route(
        "POST", "/llm/", Reply.ndjson([{"response": "a"}, {"response": "b"}], interval=1.5)
    )
    model = post_api(server, timeout=0.3, stream=True)
    with pytest.raises(ModelTimeoutError) as info:
        list(model.stream("hi"))
    assert info.value.partial_text == "a"


# -- streaming ----------------------------------------------------------------------------------
def stream_both(model: Any, *args: Any, use_async: bool) -> list[Any]:
    if use_async:
        return run(collect(model.astream(*args)))
    return list(model.stream(*args))


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_tgi_sse_tokens_skip_special_ones(server: FakeServer, use_async: bool) -> None:
    events = [
        {"token": {"id": 1, "text": "Echo", "special": False}, "generated_text": None},
        {"token": {"id": 2, "text": ": hi", "special": False}, "generated_text": None},
        {
            "token": {"id": 3, "text": "</s>", "special": True},
            "generated_text": "Echo: hi",
            "details": {"finish_reason": "eos_token", "generated_tokens": 3},
        },
    ]
    server.route("POST", "/generate_stream", Reply.sse(events))
    model = post_api(server, "/generate_stream", stream=True)
    chunks = stream_both(model, "hi", use_async=use_async)
    assert "".join(c.text for c in chunks) == "Echo: hi"
    assert chunks[-1].finish_reason == "eos_token"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_ndjson_stream_with_usage_on_the_last_line(server: FakeServer, use_async: bool) -> None:
    lines = [{"message": {"content": p}, "done": False} for p in ("Echo", ": ", "hi")]
    lines.append(
        {
            "message": {"content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": PROMPT_TOKENS,
            "eval_count": COMPLETION_TOKENS,
        }
    )
    server.route("POST", "/api/chat", Reply.ndjson(lines))
    model = post_api_chat(server, "/api/chat", stream=True)
    chunks = stream_both(model, model.format(user("hi")), use_async=use_async)
    assert [c.text for c in chunks] == ["Echo", ": ", "hi", ""]
    assert chunks[-1].usage == USAGE and chunks[-1].finish_reason == "stop"
    assert model.usage["prompt_tokens"] == PROMPT_TOKENS


def test_sse_events_of_plain_text_are_the_pieces(server: FakeServer) -> None:
    server.route("POST", "/s", Reply.sse(["Echo", ": ", "hi"], done="[DONE]"))
    chunks = list(post_api(server, "/s", stream=True).stream("hi"))
    assert [c.text for c in chunks] == ["Echo", ": ", "hi", ""]
    assert chunks[-1].finish_reason == "stop"  # [DONE] ends the stream


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_stream_without_end_markers_is_complete_at_the_clean_end_of_its_body(
    server: FakeServer, use_async: bool
) -> None:
    server.route("POST", "/s", Reply.ndjson([{"text": "a"}, {"text": "b"}]))
    model = post_api(server, "/s", stream=True)
    chunks = stream_both(model, "hi", use_async=use_async)
    assert [c.text for c in chunks] == ["a", "b", ""]
    assert chunks[-1].finish_reason == "stop"


def test_an_sse_body_cut_off_mid_event_is_an_error(server: FakeServer) -> None:
    parts = [b'data: {"text": "a"}\n\n', b'data: {"text": "b"}\n']  # no blank line after b
    server.route("POST", "/s", Reply(200, {"Content-Type": "text/event-stream"}, parts=parts))
    with pytest.raises(ResponseParseError, match="middle of an event"):
        list(post_api(server, "/s", stream=True).stream("hi"))


def test_an_error_body_nested_too_deep_is_still_a_typed_error(server: FakeServer) -> None:
    deep = '{"error": ' * 50_000 + '"x"' + "}" * 50_000
    server.route("POST", "/llm/", Reply(400, {"Content-Type": "application/json"}, deep.encode()))
    with pytest.raises(BadRequestError) as info:
        post_api(server)("hi")
    assert info.value.status == 400
    server.route("POST", "/llm/", Reply(200, {"Content-Type": "application/json"}, deep.encode()))
    with pytest.raises(ResponseParseError):
        post_api(server)("hi")


@pytest.mark.parametrize("payload", [[], {"data": []}, {"embeddings": []}], ids=str)
def test_an_empty_embedding_list_is_no_answer(server: FakeServer, payload: Any) -> None:
    server.route("POST", "/embed", Reply.json(payload))
    with pytest.raises(ResponseParseError):
        post_api(server, "/embed")(["a"])
    server.route("POST", "/embed", Reply.json({"out": payload}))
    with pytest.raises(ResponseParseError, match="not to a vector"):
        post_api(server, "/embed", embedding_path="out")(["a"])


def test_an_empty_image_url_list_is_no_answer(server: FakeServer) -> None:
    server.route("POST", "/paint", Reply.json({"out": []}))
    with pytest.raises(ResponseParseError, match="leads to an empty list"):
        post_api(server, "/paint", image_urls_path="out")("a cat")


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_stream_path(server: FakeServer, use_async: bool) -> None:
    events = [{"out": {"piece": p}, "response": "not this"} for p in ("Echo", ": ", "hi")]
    events.append({"out": {}, "stats": {"input_tokens": 1, "output_tokens": 3}})
    server.route("POST", "/s", Reply.sse(events))
    model = post_api(server, "/s", stream=True, stream_path="out.piece", usage_path="stats")
    chunks = stream_both(model, "hi", use_async=use_async)
    assert "".join(c.text for c in chunks) == "Echo: hi"
    assert chunks[-1].usage == Usage(1, 3, 4)


def test_unrecognised_stream_events_say_how_to_set_stream_path(server: FakeServer) -> None:
    server.route("POST", "/s", Reply.ndjson([{"out": {"piece": "a long piece"}}, {"out": {}}]))
    with pytest.raises(ResponseParseError, match=re.escape('"stream_path": "out.piece"')):
        list(post_api(server, "/s", stream=True).stream("hi"))


def test_stream_args_go_into_stream_requests_only(server: FakeServer) -> None:
    server.route("POST", "/v1/chat/completions", openai_chat_service())
    model = post_api_chat(server, stream=True, json_args={"model": "m"})
    msgs = model.format(user("hi"))
    list(model.stream(msgs))
    assert server.requests[-1].json() == {"messages": msgs, "model": "m", "stream": True}
    model(msgs)
    assert "stream" not in server.requests[-1].json()
    custom = post_api_chat(
        server, stream=True, stream_args={"stream": True, "stream_options": {"include_usage": True}}
    )
    chunks = list(custom.stream(msgs))
    assert chunks[-1].usage == USAGE
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}


def test_stream_is_refused_unless_the_config_says_the_service_streams(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service())
    model = post_api(server)
    assert model.supports_stream is False
    with pytest.raises(UnsupportedOperationError, match='"stream": true'):
        model.stream("hi")
    with pytest.raises(UnsupportedOperationError, match='"stream": true'):
        model.astream("hi")
    assert server.requests == []
    assert post_api(server, stream=True).supports_stream is True


def test_an_error_event_mid_stream_keeps_the_partial_text(server: FakeServer) -> None:
    events = [
        {"token": {"text": "Echo"}},
        RawEvent('event: error\ndata: {"error": "Request failed during generation"}'),
    ]
    server.route("POST", "/s", Reply.sse(events))
    model = post_api(server, "/s", stream=True)
    received = []
    with pytest.raises(ProviderError, match="Request failed during generation") as info:
        for chunk in model.stream("hi"):
            received.append(chunk.text)
    assert received == ["Echo"] and info.value.partial_text == "Echo"


def test_a_stream_error_status_carries_the_body(server: FakeServer) -> None:
    server.route("POST", "/s", Reply.json({"detail": "prompt too long"}, 400))
    model = post_api(server, "/s", stream=True)
    with pytest.raises(BadRequestError, match="prompt too long"):
        list(model.stream("hi"))
    with pytest.raises(BadRequestError, match="prompt too long"):
        run(collect(model.astream("hi")))


def test_a_plain_call_answered_with_a_stream_is_assembled(server: FakeServer) -> None:
    """Services that always stream still work with ``model(...)``."""
    server.route("POST", "/v1/chat/completions", openai_chat_service())
    model = post_api_chat(
        server, json_args={"stream": True, "stream_options": {"include_usage": True}}
    )
    response = model(model.format(user("hi")))
    assert response.text == "Echo: hi"
    assert response.usage == USAGE
    assert response.finish_reason == "stop"
    assert isinstance(response.raw, list) and len(response.raw) == 6


def test_a_stream_request_answered_with_one_document(server: FakeServer) -> None:
    """A service that ignores ``"stream": true`` gives one chunk with everything."""
    server.route(
        "POST",
        "/llm/",
        lambda r: Reply.text(
            json.dumps(llm_reply("Echo: hi"), indent=2), content_type="application/json"
        ),
    )
    chunks = list(post_api(server, stream=True).stream("hi"))
    assert [c.text for c in chunks] == ["Echo: hi"]
    assert chunks[-1].usage == USAGE


def test_usage_before_the_last_piece_still_ends_the_stream(server: FakeServer) -> None:
    events = [{"text": "a", "usage": {"input_tokens": 1, "output_tokens": 2}}, {"text": "b"}]
    server.route("POST", "/s", Reply.ndjson(events))
    chunks = list(post_api(server, "/s", stream=True).stream("hi"))
    assert [c.text for c in chunks] == ["a", "b", ""]
    assert chunks[-1].usage == Usage(1, 2, 3)


def test_closing_a_stream_early_books_what_arrived(server: FakeServer) -> None:
    server.route("POST", "/s", Reply.sse([{"text": p} for p in "abcdef"], interval=0.02))
    model = post_api(server, "/s", stream=True)
    stream = model.stream("hi")
    assert next(stream).text == "a"
    stream.close()
    assert model.usage["calls"] == 1 and model.usage["errors"] == 0


# -- secrets --------------------------------------------------------------------------------------
def test_header_credentials_never_show(server: FakeServer, tmp_path: Path) -> None:
    basic = base64.b64encode(b"alice:s3cret-password").decode()
    headers = {
        "Authorization": f"Basic {basic}",
        "api-key": "azure-key-0123456789",
        "X-Custom-Token": "tok-abcdef-987654",
        "X-Team": "research",
    }

    def echo_back(request: Request) -> Reply:  # a careless service echoing the credentials
        token = (request.header("authorization") or "").split()[-1]
        message = f"denied for {request.headers} (token {token})"
        return Reply.json({"error": {"message": message}}, 401)

    server.route("POST", "/llm/", echo_back)
    model = post_api(server, headers=headers)
    path_records = tmp_path / "records.jsonl"
    records.configure(path_records)
    try:
        with pytest.raises(AuthenticationError) as info:
            model("hi")
    finally:
        records.configure(None)
    received = server.requests[-1].headers
    assert received["authorization"] == f"Basic {basic}" and received["x-team"] == "research"
    shown = [str(info.value), repr(info.value), repr(model), path_records.read_text()]
    for text in shown:
        for secret in (basic, "azure-key-0123456789", "tok-abcdef-987654"):
            assert secret not in text
    assert "denied for" in str(info.value)


def test_post_args_reach_the_wire(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service())
    model = post_api(
        server,
        post_args={
            "params": {"version": "2", "debug": True},
            "cookies": {"session": "cookie-value-123456"},
            "auth": ["alice", "wonderland-42"],
        },
    )
    assert model("hi").text == "Echo: hi"
    request = server.requests[-1]
    assert request.query == {"version": ["2"], "debug": ["true"]}
    assert request.header("cookie") == "session=cookie-value-123456"
    expected = base64.b64encode(b"alice:wonderland-42").decode()
    assert request.header("authorization") == f"Basic {expected}"


# -- clients --------------------------------------------------------------------------------------
def test_one_sync_client_per_wrapper_even_under_threads(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service())
    model = post_api(server)
    barrier = threading.Barrier(16)
    clients: list[Any] = []

    def first_use() -> None:
        barrier.wait()
        clients.append(model.clients.sync)
        model("hi")

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(clients) == 16 and len({id(client) for client in clients}) == 1
    assert len(server.requests) == 16
    model.close()
    assert model("hi").text == "Echo: hi"  # closing only drops the pool


def test_async_calls_work_across_event_loops(server: FakeServer) -> None:
    server.route("POST", "/llm/", llm_service())
    model = post_api(server)

    async def twice() -> tuple[Any, Any]:
        first = model.clients.async_
        texts = await asyncio.gather(*(model.acall(f"n{i}") for i in range(5)))
        assert [t.text for t in texts] == [f"Echo: n{i}" for i in range(5)]
        return first, model.clients.async_

    first, again = run(twice())
    assert first is again  # one pooled client per loop
    second, _ = run(twice())  # a new asyncio.run: its own client, still working
    assert second is not first
    run(model.aclose())


# -- config validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "key", "says"),
    [
        ({"api_url": "xxx.xxx"}, "api_url", "http:// or https://"),
        ({"api_url": "ftp://host/x"}, "api_url", "http:// or https://"),
        ({"messages_key": " "}, "messages_key", "input"),
        ({"json_args": {"inputs": "x"}}, "json_args.inputs", "would replace the input"),
        ({"response_path": "a..b"}, "response_path", "not a dotted path"),
        ({"stream_path": "a[x]"}, "stream_path", "not a dotted path"),
        ({"max_retries": -1}, "max_retries", "at least 0"),
        ({"retry_interval": -0.5}, "retry_interval", "at least 0"),
        ({"max_length": 0}, "max_length", "at least 1"),
        ({"headers": {"Bad Header": "x"}}, "headers.Bad Header", "header name"),
        ({"headers": {"X-Key": "line\nbreak"}}, "headers.X-Key", "printable ASCII"),
        ({"post_args": {"timeout": 5}}, "post_args.timeout", "unknown key"),
        ({"post_args": {"proxies": "http://p:1"}}, "post_args.proxies", "did you mean 'proxy'"),
        ({"post_args": {"verify": "/no/such/ca.pem"}}, "post_args.verify", "does not exist"),
        ({"post_args": {"auth": ["only-user"]}}, "post_args.auth", "user"),
        ({"post_args": {"proxy": "socks5://p:1"}}, "post_args.proxy", "proxy URL"),
        ({"stream": "yes"}, "stream", "expected bool"),
    ],
)
def test_config_mistakes_are_caught_at_load(params: dict[str, Any], key: str, says: str) -> None:
    config = {"config_name": "bad", "model_type": "post_api", "api_url": "http://h/", **params}
    with pytest.raises(ConfigError) as info:
        load(config)
    assert any(issue.key == key for issue in info.value.issues), str(info.value)
    assert says in str(info.value)


def test_model_name_is_optional_and_kept(server: FakeServer) -> None:
    server.route("POST", "/svc", Reply.json({"text": "T"}))
    assert post_api(server, "/svc").model_name is None
    model = post_api(server, "/svc", model_name="my-llm")
    assert model("hi").model_name == "my-llm"


# -- parsing units --------------------------------------------------------------------------------
def test_paths() -> None:
    payload = {"a": [{"b": 1}, {"b": 2}], "0": "zero"}
    assert ReplyPath.parse("a[1].b").resolve(payload) == 2
    assert ReplyPath.parse("a.-1.b").resolve(payload) == 2
    assert ReplyPath.parse("a.*.b").resolve(payload) == [1, 2]
    assert ReplyPath.parse("0").resolve(payload) == "zero"
    assert repr(ReplyPath.parse("a.5.b").resolve(payload)) == "MISSING"
    for bad in ("", ".", "a..b", "a.[x]", "a b]"):
        with pytest.raises(ValueError):
            ReplyPath.parse(bad)


def test_sse_decoding_details() -> None:
    decoder = EventDecoder("text/event-stream; charset=utf-8")
    lines = [
        ": keep-alive",
        "id: 1",
        "event: message",
        'data: {"text":',
        'data: "two lines"}',
        "",
        "retry: 100",
        "data: plain",
        "",
        "data: [DONE]",
        "",
        "data: after the end",
        "",
    ]
    events = [event for line in lines for event in decoder.feed(line)] + decoder.close()
    assert events == [Event({"text": "two lines"}, "message"), Event("plain")]
    broken = EventDecoder("text/event-stream")
    broken.feed("data: {broken")
    with pytest.raises(ResponseParseError):
        broken.feed("")


json_objects = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(json_objects, max_size=6), st.booleans())
def test_decoding_round_trips_sse_and_ndjson(objects: list[dict[str, Any]], sse: bool) -> None:
    if sse:
        text = "".join(f"data: {json.dumps(obj)}\n\n" for obj in objects) + "data: [DONE]\n\n"
        decoder = EventDecoder("text/event-stream")
    else:
        text = "".join(json.dumps(obj) + "\n" for obj in objects)
        decoder = EventDecoder("application/x-ndjson")
    events = [event for line in text.splitlines() for event in decoder.feed(line)]
    events += decoder.close()
    assert [event.data for event in events] == objects


def test_readme_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = Path(__file__).resolve().parents[3] / "plugins" / "postapi" / "README.md"
    blocks = re.findall(r"```json\n(.*?)```", readme.read_text(), re.DOTALL)
    unique: dict[str, dict[str, Any]] = {}
    for block in blocks:
        value = json.loads(block)
        for config in value if isinstance(value, list) else [value]:
            # The quick start repeats a seed config: a repeat must be the same config.
            assert unique.setdefault(config["config_name"], config) == config
    for name in ("MODELWIRE_SERVE_API_KEY", "HF_TOKEN", "INHOUSE_KEY"):
        monkeypatch.setenv(name, "readme-secret-value")
    registry = ModelRegistry(list(unique.values()))
    assert len(registry) == 8
    for name in registry:
        assert registry.load_model(name).model_type in OUR_TYPES
