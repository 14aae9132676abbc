"""Gemini-specific behaviour, through the real google-genai SDK over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

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
    ServiceUnavailableError,
    Usage,
)
from modelwire.testing import FakeServer, Reply
from modelwire_gemini.errors import BlockedResponseError

# google-genai subclasses aiohttp.ClientSession for its async transport; aiohttp frowns on it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

SEED_CONFIGS = Path(__file__).parents[3] / "examples" / "model_configs.json"
KEY = "gm-test-key-0c9d8e7f6a"
FAST_RETRY = {"max_retries": 2, "initial_delay": 0.01, "max_delay": 3.0}
SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
]


def load(server: FakeServer, model_type: str = "gemini_chat", **params: Any) -> Any:
    config = {
        "config_name": f"test-{model_type}",
        "model_type": model_type,
        "model_name": "gemini-pro" if model_type == "gemini_chat" else "text-embedding-004",
        "api_key": KEY,
        "base_url": server.url,
        "retry": dict(FAST_RETRY),
        "timeout": 5.0,
        **params,
    }
    config = {k: v for k, v in config.items() if v is not None}
    return ModelRegistry([config]).load_model(config["config_name"])


def hello(model: Any) -> Any:
    return model.format(Msg("user", "Hello", role="user"))


def snake(obj: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in obj.items()}


def collect(model: Any, prompt: Any, received: list[str], use_async: bool) -> None:
    if use_async:

        async def consume() -> None:
            async for chunk in model.astream(prompt):
                received.append(chunk.text)

        asyncio.run(consume())
    else:
        for chunk in model.stream(prompt):
            received.append(chunk.text)


# -- seed configs ------------------------------------------------------------------------------
def test_every_seed_gemini_config_works_against_the_fake_server(
    server: FakeServer, wire: Any
) -> None:
    seed = [c for c in json.loads(SEED_CONFIGS.read_text()) if c["model_type"].startswith("gemini")]
    assert {c["model_type"] for c in seed} == {"gemini_chat", "gemini_embedding"}
    server.route("POST", wire.generate_path, wire.chat())
    server.route("POST", wire.stream_path, wire.stream())
    server.route("POST", wire.embed_path, wire.embeddings())
    registry = ModelRegistry([{**c, "base_url": server.url} for c in seed])
    for config in seed:
        model = registry.load_model(config["config_name"])
        if config["model_type"] == "gemini_chat":
            assert model(hello(model)).text == wire.reply_text
            assert asyncio.run(model.acall(hello(model))).text == wire.reply_text
            assert "".join(c.text for c in model.stream(hello(model))) == wire.reply_text
        else:
            response = model(["one", "two", "three"])
            assert response.embedding is not None and len(response.embedding) == 3
    paths = {r.path for r in server.requests}
    assert paths == {
        "/v1/models/gemini-pro:generateContent",
        "/v1/models/gemini-pro:streamGenerateContent",
        "/v1/models/embedding-001:batchEmbedContents",
    }
    assert all(r.header("x-goog-api-key") == "xxx" for r in server.requests)


def test_seed_style_generation_config_reaches_the_wire(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    generation_config = {
        "temperature": 0.2,
        "max_output_tokens": 64,
        "top_p": 0.9,
        "top_k": 20,
        "stop_sequences": ["END"],
    }
    model = load(server, generation_config=generation_config)
    assert model(hello(model)).text == wire.reply_text
    model(hello(model), temperature=0.7)
    first, second = wire.bodies(server, wire.generate_path)
    assert first["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 64,
        "topP": 0.9,
        "topK": 20,
        "stopSequences": ["END"],
    }
    assert second["generationConfig"]["temperature"] == 0.7
    assert second["generationConfig"]["maxOutputTokens"] == 64


def test_unknown_generation_config_key_is_rejected_at_load(server: FakeServer) -> None:
    config = {
        "config_name": "typo",
        "model_type": "gemini_chat",
        "model_name": "gemini-pro",
        "api_key": KEY,
        "generation_config": {"temprature": 0.5, "max_tokens": 10},
    }
    with pytest.raises(ConfigError) as info:
        ModelRegistry([config])
    message = str(info.value)
    assert "generation_config.temprature" in message and "did you mean 'temperature'" in message
    assert "did you mean 'max_output_tokens'" in message
    assert server.requests == []


def test_unknown_call_argument_is_a_bad_request_never_sent(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server)
    with pytest.raises(BadRequestError) as info:
        model(hello(model), temprature=0.3)
    assert "did you mean 'temperature'" in str(info.value)
    assert server.requests == []


@pytest.mark.parametrize("name", ["gemini-pro", "models/gemini-pro"])
def test_model_name_with_or_without_models_prefix(server: FakeServer, wire: Any, name: str) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server, model_name=name)
    assert model.model_name == "gemini-pro"
    model(hello(model))
    assert server.requests[-1].path == "/v1/models/gemini-pro:generateContent"
    assert model.pricing is not None  # found in the price table either way


def test_safety_settings_in_both_forms(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    expected = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    for settings in (expected, {"HARM_CATEGORY_HARASSMENT": "BLOCK_NONE"}):
        model = load(server, safety_settings=settings)
        model(hello(model))
        assert wire.bodies(server, wire.generate_path)[-1]["safetySettings"] == expected


# -- format ------------------------------------------------------------------------------------
def test_format_merges_roles_and_lifts_system_messages(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server)
    prompt = model.format(
        Msg("system", "You are terse.", role="system"),
        [Msg("alice", "Hi", role="user"), Msg("bob", "Hello?", role="user")],
        Msg("gemini", "Hey.", role="assistant"),
        Msg("gemini", "What now?", role="assistant"),
        None,
        Msg("system", "Answer in English.", role="system"),
        Msg("alice", {"ask": "weather"}, role="user"),
    )
    assert prompt == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}, {"text": "Hello?"}]},
            {"role": "model", "parts": [{"text": "Hey."}, {"text": "What now?"}]},
            {"role": "user", "parts": [{"text": '{"ask": "weather"}'}]},
        ],
        "system_instruction": {
            "parts": [{"text": "You are terse."}, {"text": "Answer in English."}]
        },
    }
    model(prompt)
    body = wire.bodies(server, wire.generate_path)[-1]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["systemInstruction"]["parts"] == [
        {"text": "You are terse."},
        {"text": "Answer in English."},
    ]


def test_format_without_system_message_sends_no_system_instruction(
    server: FakeServer, wire: Any
) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server)
    prompt = model.format(Msg("u", "Hi", role="user"))
    assert "system_instruction" not in prompt
    model(prompt)
    assert "systemInstruction" not in wire.bodies(server, wire.generate_path)[-1]


def test_format_attaches_media(server: FakeServer, wire: Any, tmp_path: Path) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    image = tmp_path / "dot.png"
    image.write_bytes(b"\x89PNG-bytes")
    model = load(server)
    prompt = model.format(
        Msg("u", "What is this?", role="user", url=[str(image), "gs://bucket/clip.mp4"])
    )
    model(prompt)
    parts = wire.bodies(server, wire.generate_path)[-1]["contents"][0]["parts"]
    assert parts[0] == {"text": "What is this?"}
    # The SDK writes the inner keys in snake_case; Gemini's JSON parser takes either case.
    inline, remote = snake(parts[1]["inlineData"]), snake(parts[2]["fileData"])
    assert inline["mime_type"] == "image/png"
    assert base64.b64decode(inline["data"]) == b"\x89PNG-bytes"
    assert remote == {"file_uri": "gs://bucket/clip.mp4", "mime_type": "video/mp4"}


def test_prompt_with_only_system_messages_is_refused_before_sending(server: FakeServer) -> None:
    model = load(server)
    with pytest.raises(BadRequestError, match="at least one user or assistant message"):
        model(model.format(Msg("system", "Be nice.", role="system")))
    assert server.requests == []


# -- blocked responses --------------------------------------------------------------------------
def test_blocked_prompt_raises_with_block_reason(server: FakeServer, wire: Any) -> None:
    feedback = {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}
    server.route(
        "POST", wire.generate_path, Reply.json({"promptFeedback": feedback, "usageMetadata": {}})
    )
    model = load(server)
    for call in (lambda: model(hello(model)), lambda: asyncio.run(model.acall(hello(model)))):
        with pytest.raises(BlockedResponseError) as info:
            call()
        assert info.value.finish_reason == "SAFETY"
        assert info.value.blocked == "prompt"
        assert "HARM_CATEGORY_HARASSMENT" in str(info.value)
        assert info.value.config_name == model.config_name
    assert len(server.requests) == 2  # never retried
    assert model.usage["errors"] == 2


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT"])
def test_blocked_response_raises_with_finish_reason(
    server: FakeServer, wire: Any, reason: str
) -> None:
    reply = wire.response(None, finish_reason=reason, safety_ratings=SAFETY_RATINGS)
    server.route("POST", wire.generate_path, Reply.json(reply))
    model = load(server)
    with pytest.raises(BlockedResponseError) as info:
        model(hello(model))
    assert isinstance(info.value, ProviderError)
    assert info.value.finish_reason == reason
    assert info.value.blocked == "response"
    assert info.value.partial_text is None
    assert f"finish reason {reason}" in str(info.value)
    assert len(server.requests) == 1


def test_recitation_after_some_text_keeps_it_as_partial_text(server: FakeServer, wire: Any) -> None:
    reply = wire.response("To be, or not", finish_reason="RECITATION")
    server.route("POST", wire.generate_path, Reply.json(reply))
    model = load(server)
    with pytest.raises(BlockedResponseError) as info:
        model(hello(model))
    assert info.value.partial_text == "To be, or not"


@pytest.mark.parametrize("use_async", [False, True])
def test_stream_blocked_half_way(server: FakeServer, wire: Any, use_async: bool) -> None:
    events = [
        wire.response("Once upon ", usage=None, finish_reason=None),
        wire.response("a time", usage=None, finish_reason="SAFETY", safety_ratings=SAFETY_RATINGS),
    ]
    server.route("POST", wire.stream_path, Reply.sse(events))
    model = load(server)
    received: list[str] = []
    with pytest.raises(BlockedResponseError) as info:
        collect(model, hello(model), received, use_async)
    assert "".join(received) == "Once upon a time"
    assert info.value.partial_text == "Once upon a time"
    assert info.value.finish_reason == "SAFETY"


def test_stream_blocked_prompt(server: FakeServer) -> None:
    event = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
    server.route("POST", "/v1/models/{model}:streamGenerateContent", Reply.sse([event]))
    model = load(server)
    with pytest.raises(BlockedResponseError) as info:
        list(model.stream(hello(model)))
    assert (info.value.blocked, info.value.finish_reason) == ("prompt", "PROHIBITED_CONTENT")


def test_max_tokens_is_not_a_block(server: FakeServer, wire: Any) -> None:
    reply = wire.response("Truncat", finish_reason="MAX_TOKENS")
    server.route("POST", wire.generate_path, Reply.json(reply))
    model = load(server)
    response = model(hello(model))
    assert (response.text, response.finish_reason) == ("Truncat", "MAX_TOKENS")


# -- usage ---------------------------------------------------------------------------------------
def test_usage_counts_thinking_as_completion_and_sends_no_token_counting_call(
    server: FakeServer, wire: Any
) -> None:
    usage = {
        "promptTokenCount": 11,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 20,
        "cachedContentTokenCount": 8,
        "totalTokenCount": 36,
    }
    parts = [{"text": "Let me think...", "thought": True}, {"text": "Forty-two."}]
    reply = wire.response(None, usage=usage, parts=parts)
    server.route("POST", wire.generate_path, Reply.json(reply))
    model = load(server, model_name="gemini-2.5-flash")
    response = model(hello(model))
    assert response.text == "Forty-two."
    assert response.usage == Usage(11, 25, 36, reasoning_tokens=20, cached_tokens=8)
    assert (model.usage["reasoning_tokens"], model.usage["cached_tokens"]) == (20, 8)
    assert response.model_name == "gemini-pro-001"  # the service's model version
    assert model.usage["cost_usd"] == pytest.approx(11 * 0.0003 / 1000 + 25 * 0.0025 / 1000)
    assert [r.path for r in server.requests] == ["/v1/models/gemini-2.5-flash:generateContent"]


def test_reply_without_candidates_is_a_parse_error(server: FakeServer) -> None:
    server.route("POST", "/v1/models/{model}:generateContent", Reply.json({"modelVersion": "x"}))
    model = load(server)
    with pytest.raises(ResponseParseError, match="no candidate"):
        model(hello(model))


# -- errors ----------------------------------------------------------------------------------------
#: Error bodies the SDK itself cannot read: not UTF-8, and JSON nested too deep.
UNREADABLE_BODIES = {"not-utf8": b"\xff\xfe oops \x80", "deep": b"[" * 60_000 + b"]" * 60_000}


@pytest.mark.parametrize("body", UNREADABLE_BODIES)
@pytest.mark.parametrize("route", ["call", "acall", "stream", "embedding"])
def test_an_error_body_the_sdk_cannot_read_keeps_its_http_status(
    server: FakeServer, wire: Any, route: str, body: str
) -> None:
    """A 503 is retried and a 401 is an AuthenticationError, whatever the body."""
    path = {"stream": wire.stream_path, "embedding": wire.embed_path}.get(route, wire.generate_path)
    model_type = "gemini_embedding" if route == "embedding" else "gemini_chat"
    for status, error_type, requests in (
        (503, ServiceUnavailableError, 3),
        (401, AuthenticationError, 1),
    ):
        before = len(server.requests)
        server.route(
            "POST",
            path,
            Reply(status, {"Content-Type": "application/json"}, UNREADABLE_BODIES[body]),
        )
        model = load(server, model_type)
        prompt: Any = ["some text"] if route == "embedding" else hello(model)
        with pytest.raises(error_type) as info:
            if route == "acall":
                asyncio.run(model.acall(prompt))
            elif route == "stream":
                list(model.stream(prompt))
            else:
                model(prompt)
        assert info.value.status == status
        assert len(server.requests) - before == requests


def test_rate_limit_delay_from_retry_info(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    limited = wire.error(429, "Quota exceeded", details=[wire.retry_info("7s")])
    server.once("POST", wire.generate_path, limited)
    model = load(server, retry={"max_retries": 0})
    with pytest.raises(RateLimitError) as info:
        model(hello(model))
    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert "RESOURCE_EXHAUSTED: Quota exceeded" in str(info.value)


def test_retry_info_delay_is_waited(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    limited = wire.error(429, "Quota exceeded", details=[wire.retry_info("0.300s")])
    server.once("POST", wire.generate_path, limited)
    model = load(server)
    started = time.perf_counter()
    assert model(hello(model)).text == wire.reply_text
    assert time.perf_counter() - started >= 0.29
    assert len(server.requests) == 2


def test_retry_after_header_wins_over_retry_info(server: FakeServer, wire: Any) -> None:
    limited = wire.error(
        429, "slow down", details=[wire.retry_info("9s")], headers={"Retry-After": "2"}
    )
    server.route("POST", wire.generate_path, limited)
    model = load(server, retry={"max_retries": 0})
    with pytest.raises(RateLimitError) as info:
        model(hello(model))
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize(
    ("status", "details", "expected"),
    [
        (403, None, AuthenticationError),
        (
            400,
            [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
            AuthenticationError,
        ),
        (400, None, BadRequestError),
        (404, None, BadRequestError),
    ],
    ids=["403", "400-bad-key", "400", "404"],
)
def test_client_errors_are_mapped_and_not_retried(
    server: FakeServer, wire: Any, status: int, details: Any, expected: type[Exception]
) -> None:
    server.route("POST", wire.generate_path, wire.error(status, "refused", details=details))
    model = load(server)
    with pytest.raises(expected) as info:
        asyncio.run(model.acall(hello(model)))
    assert info.value.status == status  # type: ignore[attr-defined]
    assert len(server.requests) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_sdk_itself_never_retries(server: FakeServer, wire: Any, use_async: bool) -> None:
    server.route("POST", wire.generate_path, wire.error(503, "overloaded"))
    model = load(server, retry={"max_retries": 0})
    with pytest.raises(ServiceUnavailableError):
        if use_async:
            asyncio.run(model.acall(hello(model)))
        else:
            model(hello(model))
    assert len(server.requests) == 1


def test_async_connection_refused_fails_fast(server: FakeServer) -> None:
    """aiohttp's implicit reconnect would sleep 1-10 s: it must be off."""
    model = load(server, retry={"max_retries": 0})
    server.close()
    started = time.perf_counter()
    with pytest.raises(ServiceUnavailableError):
        asyncio.run(model.acall(hello(model)))
    assert time.perf_counter() - started < 0.9


@pytest.mark.parametrize("use_async", [False, True])
def test_timeout_applies_to_calls_and_streams(
    server: FakeServer, wire: Any, use_async: bool
) -> None:
    server.route("POST", wire.generate_path, Reply.json(wire.response(), delay=2.0))
    server.route("POST", wire.stream_path, wire.stream(interval=2.0))
    model = load(server, timeout=0.4)
    started = time.perf_counter()
    with pytest.raises(ModelTimeoutError):
        if use_async:
            asyncio.run(model.acall(hello(model)))
        else:
            model(hello(model))
    received: list[str] = []
    with pytest.raises(ModelTimeoutError) as info:
        collect(model, hello(model), received, use_async)
    assert time.perf_counter() - started < 1.8
    assert received == ["Hello "] and info.value.partial_text == "Hello "
    assert server.requests[0].header("x-server-timeout") == "1"


@pytest.mark.parametrize("use_async", [False, True])
def test_timeout_bounds_each_wait_not_a_whole_stream(
    server: FakeServer, wire: Any, use_async: bool
) -> None:
    pieces = ("one ", "two ", "three ", "four")
    server.route("POST", wire.stream_path, wire.stream(pieces, interval=0.25))
    model = load(server, timeout=0.5)
    received: list[str] = []
    collect(model, hello(model), received, use_async)
    assert "".join(received) == "one two three four"


@pytest.mark.parametrize("use_async", [False, True])
def test_stream_idle_timeout_longer_than_timeout_is_kept(
    server: FakeServer, wire: Any, use_async: bool
) -> None:
    """Gaps between events longer than `timeout` but within `stream_idle_timeout` are fine:
    the SDK's own per-read timeout must not cut them."""
    pieces = ("one ", "two ", "three")
    server.route("POST", wire.stream_path, wire.stream(pieces, interval=0.7))
    model = load(server, timeout=0.5, stream_idle_timeout=2.0)
    assert model.clients.sync is not None  # the SDK imported: not part of the deadline test
    received: list[str] = []
    collect(model, hello(model), received, use_async)
    assert "".join(received) == "one two three"
    assert server.requests[-1].header("x-server-timeout") == "2"


def test_connection_options_go_to_modelwires_transports(server: FakeServer) -> None:
    from modelwire import guarded_transports

    model = load(
        server,
        http_options={
            "client_args": {"verify": False, "http2": False, "proxy": "http://127.0.0.1:9"},
            "async_client_args": {"trust_env": False, "follow_redirects": False},
        },
    )
    options = model._guarded_http_options()
    sync, async_ = options["client_args"], options["async_client_args"]
    sync_transport, async_transport = guarded_transports("httpx2")  # the SDK's default
    assert isinstance(sync["transport"], sync_transport)
    assert isinstance(async_["transport"], async_transport)
    assert "proxy" not in sync and "http2" not in sync  # httpx would ignore them there
    assert sync["verify"] is False
    assert async_["trust_env"] is False and async_["follow_redirects"] is False


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_the_sdk_keeps_the_http_library_google_genai_http_client_names(
    server: FakeServer, wire: Any, monkeypatch: pytest.MonkeyPatch, library: str, use_async: bool
) -> None:
    """modelwire's transports come for either library, so the SDK's own choice holds."""
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", library)
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server)
    key = "async_client_args" if use_async else "client_args"
    transport = model._guarded_http_options()[key]["transport"]
    base = "AsyncHTTPTransport" if use_async else "HTTPTransport"
    assert isinstance(transport, getattr(importlib.import_module(library), base))
    prompt = hello(model)
    response = asyncio.run(model.acall(prompt)) if use_async else model(prompt)
    assert response.text == wire.reply_text


@pytest.mark.parametrize("use_async", [False, True])
def test_a_transport_of_the_config_is_left_alone(wire: Any, use_async: bool) -> None:
    import httpx

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=wire.response())

    async def aanswer(request: httpx.Request) -> httpx.Response:
        return answer(request)

    args = {"transport": httpx.MockTransport(aanswer if use_async else answer)}
    key = "async_client_args" if use_async else "client_args"
    config = {
        "config_name": "own-transport",
        "model_type": "gemini_chat",
        "model_name": "gemini-pro",
        "api_key": KEY,
        "base_url": "http://gemini.invalid",
        "http_options": {key: args},
    }
    model = ModelRegistry([config]).load_model("own-transport")
    prompt = hello(model)
    response = asyncio.run(model.acall(prompt)) if use_async else model(prompt)
    assert response.text == wire.reply_text
    assert seen == ["/v1/models/gemini-pro:generateContent"]


def test_error_event_in_stream(server: FakeServer, wire: Any) -> None:
    events = [
        wire.response("Hel", usage=None, finish_reason=None),
        {"error": {"code": 500, "message": "backend died", "status": "INTERNAL"}},
    ]
    server.route("POST", wire.stream_path, Reply.sse(events))
    model = load(server)
    with pytest.raises(ServiceUnavailableError) as info:
        list(model.stream(hello(model)))
    assert info.value.status == 500
    assert info.value.partial_text == "Hel"
    assert "backend died" in str(info.value)


# -- credentials -----------------------------------------------------------------------------------
def test_api_key_from_environment_in_order(
    server: FakeServer, wire: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    monkeypatch.setenv("GOOGLE_API_KEY", "google-env-key-111")
    model = load(server, api_key=None)
    model(hello(model))
    assert server.requests[-1].header("x-goog-api-key") == "google-env-key-111"
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-env-key-222")
    model = load(server, api_key=None)
    model(hello(model))
    assert server.requests[-1].header("x-goog-api-key") == "gemini-env-key-222"


def test_environment_key_is_scrubbed_and_only_sent_as_header(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = "gemini-env-key-echoed-333"
    monkeypatch.setenv("GEMINI_API_KEY", env_key)
    echoed = {"error": {"code": 400, "message": f"API key {env_key} not valid", "status": "X"}}
    server.route("POST", "/v1/models/{model}:generateContent", Reply.json(echoed, 400))
    model = load(server, api_key=None)
    with pytest.raises(BadRequestError) as info:
        model(hello(model))
    request = server.requests[-1]
    assert request.header("x-goog-api-key") == env_key
    assert env_key not in request.text and not request.query
    assert env_key not in str(info.value) and env_key not in repr(model)


def test_missing_api_key_is_a_config_error(server: FakeServer) -> None:
    with pytest.raises(ConfigError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        load(server, api_key=None)
    assert server.requests == []


# -- options -------------------------------------------------------------------------------------
def test_http_options_headers_and_api_version(server: FakeServer, wire: Any) -> None:
    server.route("POST", "/v1beta/models/{model}:generateContent", wire.chat())
    model = load(
        server,
        base_url=None,
        http_options={
            "base_url": server.url,
            "api_version": "v1beta",
            "headers": {"X-Team": "search"},
        },
    )
    assert model(hello(model)).text == wire.reply_text
    request = server.requests[-1]
    assert request.path == "/v1beta/models/gemini-pro:generateContent"
    assert request.header("x-team") == "search"


@pytest.mark.parametrize(
    ("params", "key", "hint"),
    [
        ({"http_options": {"timeout": 5000}}, "http_options.timeout", "`timeout` key"),
        ({"http_options": {"retry_options": {}}}, "http_options.retry_options", "`retry` key"),
        ({"http_options": {"base_uri": "x"}}, "http_options.base_uri", "did you mean 'base_url'"),
        ({"http_options": {"base_url": "http://a"}}, "base_url", "set only one"),
        ({"project": "p"}, "project", "vertexai"),
    ],
)
def test_option_mistakes_are_rejected_at_load(params: Any, key: str, hint: str) -> None:
    config = {
        "config_name": "bad",
        "model_type": "gemini_chat",
        "model_name": "gemini-pro",
        "api_key": KEY,
        "base_url": "http://127.0.0.1:9",
        **params,
    }
    with pytest.raises(ConfigError) as info:
        ModelRegistry([config])
    assert any(issue.key == key for issue in info.value.issues), str(info.value)
    assert hint in str(info.value)


def test_vertex_ai_express_mode(server: FakeServer, wire: Any) -> None:
    path = "/v1beta1/publishers/google/models/{model}:generateContent"
    server.route("POST", path, wire.chat())
    model = load(server, vertexai=True)
    assert model(hello(model)).text == wire.reply_text
    request = server.requests[-1]
    assert request.path == "/v1beta1/publishers/google/models/gemini-pro:generateContent"
    assert request.header("x-goog-api-key") == KEY


def test_vertex_ai_project_and_location(server: FakeServer, wire: Any) -> None:
    path = "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{m}"
    server.route("POST", path + ":generateContent", wire.chat())
    model = load(server, model_name="models/gemini-pro", vertexai=True, project="p1", location="l1")
    assert model(hello(model)).text == wire.reply_text
    assert server.requests[-1].path == (
        "/v1beta1/projects/p1/locations/l1/publishers/google/models/gemini-pro:generateContent"
    )


# -- the client ----------------------------------------------------------------------------------
def test_one_client_per_wrapper_across_threads(server: FakeServer) -> None:
    model = load(server)
    barrier = threading.Barrier(8)
    clients: list[Any] = []

    def build() -> None:
        barrier.wait()
        clients.append(model.clients.sync)

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(clients) == 8 and len({id(client) for client in clients}) == 1


# -- embeddings ----------------------------------------------------------------------------------
def test_embedding_options_reach_every_request(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.embed_path, wire.embeddings(dims=8))
    model = load(
        server, "gemini_embedding", task_type="retrieval_document", output_dimensionality=8
    )
    response = model(["a", "b", "c"])
    assert response.embedding is not None and [len(v) for v in response.embedding] == [8, 8, 8]
    assert response.usage is None  # this reply carried no usageMetadata
    asyncio.run(model.acall("d", task_type="RETRIEVAL_QUERY", output_dimensionality=2))
    first, second = wire.bodies(server, wire.embed_path)
    assert [r["content"]["parts"][0]["text"] for r in first["requests"]] == ["a", "b", "c"]
    assert all(r["taskType"] == "RETRIEVAL_DOCUMENT" for r in first["requests"])
    assert all(r["outputDimensionality"] == 8 for r in first["requests"])
    assert all(r["model"] == "models/text-embedding-004" for r in first["requests"])
    assert second["requests"] == [
        {
            "content": {"parts": [{"text": "d"}], "role": "user"},
            "taskType": "RETRIEVAL_QUERY",
            "outputDimensionality": 2,
            "model": "models/text-embedding-004",
        }
    ]


def test_embedding_raw_keeps_every_vector_as_its_own_copy(server: FakeServer, wire: Any) -> None:
    usage = {"promptTokenCount": 6}
    server.route("POST", wire.embed_path, wire.embeddings(dims=3, usage=usage))
    response = load(server, "gemini_embedding")(["a", "b"])
    raw = response.raw
    assert [item["values"] for item in raw["embeddings"]] == response.embedding
    assert response.embedding == [[0.1, 0.11, 0.12], [0.2, 0.21, 0.22]]
    assert raw["usageMetadata"] == {"promptTokenCount": 6}
    assert "sdkHttpResponse" not in raw
    raw["embeddings"][0]["values"].append(9.0)
    assert response.embedding[0] == [0.1, 0.11, 0.12]


def test_embedding_whole_numbers_come_back_as_floats(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.embed_path, Reply.json({"embeddings": [{"values": [1, 0, -2]}]}))
    response = load(server, "gemini_embedding")("a")
    assert response.embedding == [[1.0, 0.0, -2.0]]
    assert [type(x) for x in response.embedding[0]] == [float, float, float]


def test_embedding_task_type_typo_is_rejected(server: FakeServer, wire: Any) -> None:
    config = {
        "config_name": "emb",
        "model_type": "gemini_embedding",
        "model_name": "text-embedding-004",
        "api_key": KEY,
        "task_type": "RETRIEVAL_DOCUMNET",
    }
    with pytest.raises(ConfigError, match="did you mean 'RETRIEVAL_DOCUMENT'"):
        ModelRegistry([config])
    server.route("POST", wire.embed_path, wire.embeddings())
    model = load(server, "gemini_embedding")
    with pytest.raises(BadRequestError, match="did you mean 'output_dimensionality'"):
        model(["x"], output_dimensions=3)
    assert server.requests == []


def test_embedding_count_mismatch_is_a_parse_error(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.embed_path, wire.embeddings(drop=1))
    model = load(server, "gemini_embedding")
    with pytest.raises(ResponseParseError, match="1 embeddings for 2 texts"):
        model(["x", "y"])


def test_readme_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = Path(__file__).parents[3] / "plugins" / "gemini" / "README.md"
    blocks = re.findall(r"```json\n(.*?)```", readme.read_text(), re.S)
    configs = [json.loads(block) for block in blocks]
    items = [c for block in configs for c in (block if isinstance(block, list) else [block])]
    assert len(items) == 5
    monkeypatch.setenv("GEMINI_API_KEY", "readme-env-key-444")
    registry = ModelRegistry(items)
    assert len(registry) == 5
    assert registry.load_model("gemini-flash-creative").pricing is not None


def test_google_auth_failures_are_mapped() -> None:
    from google.auth import exceptions

    from modelwire_gemini.errors import map_error

    assert isinstance(map_error(exceptions.DefaultCredentialsError("none")), AuthenticationError)
    assert isinstance(map_error(exceptions.RefreshError("expired")), AuthenticationError)
    assert isinstance(map_error(exceptions.TransportError("dns")), ServiceUnavailableError)
    assert map_error(KeyError("not ours")) is None


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [("7s", 7.0), ("0.250s", 0.25), ({"seconds": 3, "nanos": 500_000_000}, 3.5), ("soon", None)],
)
def test_retry_info_delay_formats(delay: Any, seconds: float | None) -> None:
    from modelwire_gemini.errors import retry_delay

    detail = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
    assert retry_delay({"error": {"code": 429, "details": [detail]}}) == seconds


@pytest.mark.parametrize(
    "content",
    [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "user", "parts": []},
        {"role": "user", "parts": [{"text": "hi", "thought": False}]},
        {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "aGk="}}]},
        {"parts": [{"text": "no role"}]},
    ],
)
def test_unvalidated_fast_path_only_takes_what_pydantic_accepts(content: dict[str, Any]) -> None:
    """Plain text contents skip pydantic's check (it is most of the request's cost);
    everything the shortcut takes must be what ``types.Content`` accepts anyway."""
    from google.genai import types

    from modelwire_gemini.chat import _plain_text

    if _plain_text([content]):
        types.Content.model_validate(content)
    assert _plain_text([content]) == (
        content.keys() == {"role", "parts"}
        and all(part.keys() == {"text"} for part in content["parts"])
    )


def test_invalid_contents_are_a_bad_request_never_sent(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server)
    with pytest.raises(BadRequestError, match="invalid request for Gemini"):
        model([{"role": "user", "parts": [{"txt": "a typo'd part key"}]}])
    assert server.requests == []


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize(
    ("reply", "shown", "hidden"),
    [
        (Reply.text("plain failure text", 500), "plain failure text", "response body: {"),
        (Reply.empty(500), "Internal Server Error", "response body"),
    ],
    ids=["text", "empty"],
)
def test_error_text_shows_the_real_body(
    server: FakeServer, reply: Reply, shown: str, hidden: str, use_async: bool
) -> None:
    server.route("POST", "/v1/models/{model}:generateContent", reply)
    model = load(server, retry={"max_retries": 0})
    with pytest.raises(ServiceUnavailableError) as info:
        if use_async:
            asyncio.run(model.acall(hello(model)))
        else:
            model(hello(model))
    assert shown in str(info.value) and hidden not in str(info.value)


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("route", ["stream", "embedding"])
@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (Reply.text("plain failure text", 503), "plain failure text"),
        (Reply.html("<title>Bad gateway page</title>", 503), "Bad gateway page"),
    ],
    ids=["text", "html"],
)
def test_stream_and_embedding_error_text_shows_the_real_body(
    server: FakeServer, wire: Any, reply: Reply, shown: str, route: str, use_async: bool
) -> None:
    """The body as the server sent it, never the SDK's ``{"message": ..., "status": ...}``
    stand-in for a body that was not JSON."""
    model_type = "gemini_chat" if route == "stream" else "gemini_embedding"
    server.route("POST", wire.stream_path if route == "stream" else wire.embed_path, reply)
    model = load(server, model_type, retry={"max_retries": 0})
    with pytest.raises(ServiceUnavailableError) as info:
        if route == "stream":
            collect(model, hello(model), [], use_async)
        elif use_async:
            asyncio.run(model.acall(["a text"]))
        else:
            model(["a text"])
    assert shown in str(info.value)
    assert "response body: {}" not in str(info.value)
    assert '"status": "Service Unavailable"' not in str(info.value)


def test_stream_chunk_raw_is_the_event_in_the_wire_names(server: FakeServer, wire: Any) -> None:
    """A chunk's ``raw`` is the SDK's event dumped back to the wire's camelCase JSON (the
    SDK keeps no copy of a streamed event's own text), so it equals what was sent."""
    server.route("POST", wire.stream_path, wire.stream(("Hello ", "there")))
    model = load(server)
    chunks = list(model.stream(hello(model)))
    assert [chunk.raw for chunk in chunks] == [
        wire.response("Hello ", usage=None, finish_reason=None),
        wire.response("there"),
    ]


def test_chat_raw_is_the_reply_json(server: FakeServer, wire: Any) -> None:
    server.route("POST", wire.generate_path, wire.chat())
    model = load(server)
    assert model(hello(model)).raw == wire.response()


def test_impossible_usage_is_a_parse_error(server: FakeServer, wire: Any) -> None:
    reply = wire.response(usage={"promptTokenCount": -5, "candidatesTokenCount": 1})
    server.route("POST", wire.generate_path, Reply.json(reply))
    model = load(server)
    with pytest.raises(ResponseParseError, match="impossible token counts"):
        model(hello(model))


def test_a_redirect_loop_is_an_error_not_retried(server: FakeServer, wire: Any) -> None:
    server.route(
        "POST", wire.generate_path, Reply.empty(307, headers={"Location": "/v1/models/x:y"})
    )
    server.route("POST", "/v1/models/x:y", Reply.empty(307, headers={"Location": "/v1/models/x:y"}))
    model = load(server)
    with pytest.raises(ProviderError, match="redirects in a loop") as info:
        model(hello(model))
    assert not isinstance(info.value, ServiceUnavailableError)
    assert len(server.requests) == 21  # the first request and 20 redirects: one attempt
