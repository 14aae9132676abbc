"""DashScope-specific behaviour: seed configs, message rules, error codes, batching, polling."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from modelwire import Usage
from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
)
from modelwire.message import Msg
from modelwire.registry import ModelRegistry
from modelwire.testing import FakeServer, RawEvent, Reply

API = "/api/v1"
CHAT_PATH = f"{API}/services/aigc/text-generation/generation"
MULTIMODAL_PATH = f"{API}/services/aigc/multimodal-generation/generation"
EMBEDDING_PATH = f"{API}/services/embeddings/text-embedding/text-embedding"
IMAGE_PATH = f"{API}/services/aigc/text2image/image-synthesis"
TASK_PATH = f"{API}/tasks/{{task_id}}"
SEED_CONFIGS = Path(__file__).resolve().parents[3] / "examples" / "model_configs.json"
DASHSCOPE_TYPES = ("dashscope_chat", "dashscope_image_synthesis", "dashscope_text_embedding")
FAST_RETRY = {"max_retries": 2, "initial_delay": 0.01, "max_delay": 3.0}
KEY = "sk-test-dashscope-key-0123456789"
FAST_POLLING = {"poll_interval": 0.01, "max_poll_interval": 0.02, "wait_timeout": 5.0}


def load(server: FakeServer, model_type: str, model_name: str, **params: Any) -> Any:
    config = {
        "config_name": f"test-{model_type}",
        "model_type": model_type,
        "model_name": model_name,
        "api_key": KEY,
        "base_url": server.url + API,
        "retry": dict(FAST_RETRY),
        "timeout": 5.0,
        **params,
    }
    return ModelRegistry([config]).load_model(config["config_name"])


def chat(server: FakeServer, model_name: str = "qwen-max", **params: Any) -> Any:
    return load(server, "dashscope_chat", model_name, **params)


def embedder(server: FakeServer, model_name: str = "text-embedding-v2", **params: Any) -> Any:
    return load(server, "dashscope_text_embedding", model_name, **params)


def painter(server: FakeServer, model_name: str = "wanx-v1", **params: Any) -> Any:
    return load(server, "dashscope_image_synthesis", model_name, **{**FAST_POLLING, **params})


def user(text: str, url: str | list[str] | None = None) -> Msg:
    return Msg("user", text, role="user", url=url)


# -- seed configs and packaging ---------------------------------------------------------------
def test_every_seed_config_works_against_the_fake_service(server: FakeServer, wire: Any) -> None:
    seeds = [c for c in json.loads(SEED_CONFIGS.read_text()) if c["model_type"] in DASHSCOPE_TYPES]
    assert sorted(c["model_type"] for c in seeds) == sorted(DASHSCOPE_TYPES)
    wire.chat("Hi there")
    wire.embeddings()
    wire.images(running_polls=1)
    # Only the address changes (and the image poll pace, to keep the test short).
    polling = {"dashscope_image_synthesis": {"poll_interval": 0.01}}
    registry = ModelRegistry(
        [
            {**seed, "base_url": wire.base_url, **polling.get(seed["model_type"], {})}
            for seed in seeds
        ]
    )
    for seed in seeds:
        model = registry.load_model(seed["config_name"])
        if seed["model_type"] == "dashscope_chat":
            messages = model.format(user("Hello"))
            response = model(messages)
            assert response.text == "Hi there"
            assert asyncio.run(model.acall(messages)).text == "Hi there"
            assert "".join(chunk.text for chunk in model.stream(messages)) == "Hi there"
            body = server.requests_to(CHAT_PATH)[-1].json()
            assert body["model"] == "qwen-max"
            assert body["parameters"]["temperature"] == 0.5
            assert server.requests_to(CHAT_PATH)[-1].header("authorization") == "Bearer xxx"
        elif seed["model_type"] == "dashscope_text_embedding":
            response = model(["one", "two"])
            assert [len(v) for v in response.embedding] == [1024, 1024]
            assert asyncio.run(model.acall(["one", "two"])).embedding == response.embedding
            body = server.requests_to(EMBEDDING_PATH)[-1].json()
            assert body["model"] == "text-embedding-v2"
            assert body["parameters"] == {"dimension": 1024}
        else:
            response = model("a cat")
            assert response.image_urls == ["https://dashscope-result.example/a-cat/0.png"]
            assert asyncio.run(model.acall("a cat")).image_urls == response.image_urls
            body = server.requests_to(IMAGE_PATH)[-1].json()
            assert body["model"] == "wanx-v1"
            assert body["input"] == {"prompt": "a cat", "negative_prompt": "xxx"}
            assert body["parameters"] == {"n": 1}


# -- chat: format --------------------------------------------------------------------------------
def test_format_merges_system_messages_and_consecutive_roles(server: FakeServer) -> None:
    model = chat(server)
    messages = model.format(
        Msg("system", "You are terse.", role="system"),
        [user("Hi"), user("Are you there?")],
        Msg("bot", "Yes.", role="assistant"),
        Msg("system", "Answer in English.", role="system"),
        user("Good."),
    )
    assert messages == [
        {"role": "system", "content": "You are terse.\nAnswer in English."},
        {"role": "user", "content": "Hi\nAre you there?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Good."},
    ]


def test_format_sends_an_opening_assistant_turn_as_the_users(server: FakeServer) -> None:
    model = chat(server)
    messages = model.format(Msg("bot", "Welcome!", role="assistant"), user("Thanks"))
    assert messages == [{"role": "user", "content": "Welcome!\nThanks"}]


def test_format_with_media_uses_parts_and_reaches_the_multimodal_endpoint(
    server: FakeServer, wire: Any
) -> None:
    wire.chat("A cat on a mat.", path=MULTIMODAL_PATH)
    model = load(server, "dashscope_multimodal", "qwen-vl-max")
    messages = model.format(
        Msg("system", "Describe.", role="system"),
        user("What is this?", url=["https://x.example/cat.PNG", "https://x.example/clip.mp4"]),
        user("And this?", url="https://x.example/meow.wav?sig=1"),
    )
    assert messages == [
        {"role": "system", "content": [{"text": "Describe."}]},
        {
            "role": "user",
            "content": [
                {"image": "https://x.example/cat.PNG"},
                {"video": "https://x.example/clip.mp4"},
                {"text": "What is this?"},
                {"audio": "https://x.example/meow.wav?sig=1"},
                {"text": "And this?"},
            ],
        },
    ]
    assert model(messages).text == "A cat on a mat."
    sent = server.requests_to(MULTIMODAL_PATH)[-1].json()
    assert sent["input"]["messages"] == messages
    assert server.requests_to(CHAT_PATH) == []


def test_media_for_a_text_model_is_refused_naming_dashscope_multimodal(server: FakeServer) -> None:
    model = chat(server, "qwen-max")
    with pytest.raises(BadRequestError, match="dashscope_multimodal"):
        model.format(user("What is this?", url="https://x.example/cat.png"))
    assert server.requests == []


def test_vision_models_always_use_parts_and_the_multimodal_endpoint(
    server: FakeServer, wire: Any
) -> None:
    wire.chat("Text only, still VL.", path=MULTIMODAL_PATH)
    model = chat(server, "qwen-vl-max")
    messages = model.format(user("Hello"))
    assert messages == [{"role": "user", "content": [{"text": "Hello"}]}]
    assert model(messages).text == "Text only, still VL."
    chunks = list(model.stream(messages))
    assert "".join(c.text for c in chunks) == "Text only, still VL."
    assert len(server.requests_to(MULTIMODAL_PATH)) == 2
    text_model = chat(server, "qwen-vl-max", multimodal=False)
    assert text_model.format(user("Hello")) == [{"role": "user", "content": "Hello"}]


# -- chat: calls, streams, usage ---------------------------------------------------------------
def test_call_sends_generate_args_and_per_call_overrides(server: FakeServer, wire: Any) -> None:
    wire.chat("ok")
    model = chat(server, generate_args={"temperature": 0.2, "seed": 7, "top_p": 0.8})
    response = model(model.format(user("Hi")), temperature=0.9)
    body = server.requests_to(CHAT_PATH)[-1].json()
    assert body["parameters"]["temperature"] == 0.9
    assert body["parameters"]["seed"] == 7
    assert body["parameters"]["top_p"] == 0.8
    assert body["parameters"]["result_format"] == "message"
    assert response.finish_reason == "stop"
    assert response.raw["usage"]["input_tokens"] == 12


def test_stream_is_incremental_with_usage_on_the_last_chunk(server: FakeServer, wire: Any) -> None:
    wire.chat("one two three four", (9, 4), pieces=4)
    model = chat(server, generate_args={"incremental_output": False})
    chunks = list(model.stream(model.format(user("Count"))))
    request = server.requests_to(CHAT_PATH)[-1]
    assert request.header("x-dashscope-sse") == "enable"
    assert request.json()["parameters"]["incremental_output"] is True
    assert [c.text for c in chunks] == ["one t", "wo th", "ree f", "our"]
    assert "".join(c.text for c in chunks) == "one two three four"
    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].usage == Usage(9, 4, 13)
    assert [c.finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert model.usage["completion_tokens"] == 4


def test_stream_without_finishing_event_is_an_error_keeping_the_text(server: FakeServer) -> None:
    payload = {
        "output": {"choices": [{"message": {"content": "partial"}, "finish_reason": "null"}]},
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    events = [RawEvent(f"id:1\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(payload)}")]
    server.route("POST", CHAT_PATH, Reply.sse(events))
    model = chat(server)
    received = []
    with pytest.raises(ResponseParseError) as info:
        for chunk in model.stream([{"role": "user", "content": "Hi"}]):
            received.append(chunk.text)
    assert received == ["partial"]
    assert info.value.partial_text == "partial"
    assert model.usage["errors"] == 1


def test_acall_and_astream_work_across_event_loops(server: FakeServer, wire: Any) -> None:
    wire.chat("again")
    model = chat(server)
    messages = model.format(user("Hi"))

    async def both() -> tuple[str, str]:
        response = await model.acall(messages)
        text = "".join([chunk.text async for chunk in model.astream(messages)])
        return response.text, text

    for _ in range(3):  # one asyncio.run per round: a new loop each time
        assert asyncio.run(both()) == ("again", "again")
    assert model.usage["calls"] == 6


def test_usage_is_priced_from_the_plugin_table(server: FakeServer, wire: Any) -> None:
    wire.chat("priced", (1000, 500))
    model = chat(server, "qwen-max-latest", budget=1.0)
    model(model.format(user("Hi")))
    assert model.usage["cost_usd"] == pytest.approx(0.0016 + 0.5 * 0.0064)
    with pytest.raises(ConfigError, match="pricing"):
        chat(server, "some-unlisted-model", budget=1.0)


# -- error codes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "error_type", "requests"),
    [
        (401, "InvalidApiKey", AuthenticationError, 1),
        (403, "AccessDenied.Unpurchased", AuthenticationError, 1),
        (400, "Arrearage", AuthenticationError, 1),
        (400, "InvalidParameter", BadRequestError, 1),
        (400, "DataInspectionFailed", BadRequestError, 1),
        (404, "Model.NotExist", BadRequestError, 1),
        (429, "Throttling.AllocationQuota", RateLimitError, 3),
        (400, "Throttling", RateLimitError, 3),
        (500, "InternalError.Algo", ServiceUnavailableError, 3),
        (503, "ModelUnavailable", ServiceUnavailableError, 3),
        (418, "SomethingNew", BadRequestError, 1),
    ],
)
def test_http_error_codes_map_to_modelwire_errors(
    server: FakeServer, wire: Any, status: int, code: str, error_type: type, requests: int
) -> None:
    server.route("POST", CHAT_PATH, wire.error(status, code, message=f"{code} happened"))
    model = chat(server)
    with pytest.raises(error_type) as info:
        model(model.format(user("Hi")))
    assert type(info.value) is error_type
    assert info.value.status == status
    assert code in str(info.value) and f"{code} happened" in str(info.value)
    assert "request_id req-" in str(info.value)
    assert len(server.requests_to(CHAT_PATH)) == requests


@pytest.mark.parametrize(
    ("code", "error_type", "status"),
    [
        ("Throttling.RateQuota", RateLimitError, 429),
        ("InvalidApiKey", AuthenticationError, 401),
        ("InvalidParameter", BadRequestError, 400),
        ("InternalError", ServiceUnavailableError, 500),
    ],
)
def test_business_errors_in_http_200_replies_are_raised(
    server: FakeServer, wire: Any, code: str, error_type: type, status: int
) -> None:
    server.route("POST", EMBEDDING_PATH, wire.business_error(code, "in the body"))
    model = embedder(server, retry={"max_retries": 0})
    with pytest.raises(error_type) as info:
        model(["x"])
    assert type(info.value) is error_type
    assert info.value.status == status
    assert code in str(info.value)


def test_unknown_business_code_is_a_provider_error_not_retried(
    server: FakeServer, wire: Any
) -> None:
    server.route("POST", CHAT_PATH, wire.business_error("Brand.NewFailure", "hm"))
    model = chat(server)
    with pytest.raises(ProviderError) as info:
        model(model.format(user("Hi")))
    assert type(info.value) is ProviderError
    assert "Brand.NewFailure" in str(info.value)
    assert len(server.requests_to(CHAT_PATH)) == 1


def test_throttling_in_a_200_body_is_retried_like_a_429(server: FakeServer, wire: Any) -> None:
    wire.chat("after throttling")
    server.once("POST", CHAT_PATH, wire.business_error("Throttling.RateQuota"))
    model = chat(server)
    assert model(model.format(user("Hi"))).text == "after throttling"
    assert len(server.requests_to(CHAT_PATH)) == 2


def test_stream_429_with_sse_error_body_honours_retry_after(server: FakeServer, wire: Any) -> None:
    wire.chat("streamed")
    error = Reply.sse([wire.sse_error(429, "Throttling.RateQuota")], status=429)
    error.headers["Retry-After"] = "0.3"
    server.once("POST", CHAT_PATH, error)
    model = chat(server)
    started = time.perf_counter()
    chunks = list(model.stream(model.format(user("Hi"))))
    assert time.perf_counter() - started >= 0.28
    assert "".join(c.text for c in chunks) == "streamed"
    assert len(server.requests_to(CHAT_PATH)) == 2


def test_error_event_mid_stream_is_mapped_and_keeps_partial_text(
    server: FakeServer, wire: Any
) -> None:
    events = [*wire.sse_events(["Hel", "lo"], (3, 2))[:1], wire.sse_error(200, "Throttling")]
    server.route("POST", CHAT_PATH, Reply.sse(events))
    model = chat(server)
    received = []
    with pytest.raises(RateLimitError) as info:
        for chunk in model.stream(model.format(user("Hi"))):
            received.append(chunk.text)
    assert received == ["Hel"]
    assert info.value.partial_text == "Hel"
    assert len(server.requests_to(CHAT_PATH)) == 1


def test_stream_answered_with_json_is_a_parse_error(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT_PATH, Reply.json(wire.chat_payload("not a stream", (1, 1))))
    model = chat(server)
    with pytest.raises(ResponseParseError):
        list(model.stream(model.format(user("Hi"))))


def test_reply_without_choices_is_a_parse_error(server: FakeServer) -> None:
    server.route("POST", CHAT_PATH, Reply.json({"request_id": "r", "output": {}}))
    model = chat(server)
    with pytest.raises(ResponseParseError, match="no choices"):
        model(model.format(user("Hi")))


def test_sdk_retries_are_off(server: FakeServer, wire: Any) -> None:
    server.route("POST", CHAT_PATH, wire.error(503))
    model = chat(server, retry={"max_retries": 0})
    with pytest.raises(ServiceUnavailableError):
        model(model.format(user("Hi")))
    assert len(server.requests_to(CHAT_PATH)) == 1


# -- credentials and clients ----------------------------------------------------------------------
def test_api_key_from_environment_reaches_the_wire_and_nothing_else(
    server: FakeServer, wire: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = "sk-from-the-environment-9876543210"
    monkeypatch.setenv("DASHSCOPE_API_KEY", env_key)
    server.route("POST", CHAT_PATH, wire.error(401, message=f"key {env_key} is not valid"))
    config = {
        "config_name": "env-key",
        "model_type": "dashscope_chat",
        "model_name": "qwen-max",
        "base_url": wire.base_url,
    }
    model = ModelRegistry([config]).load_model("env-key")
    with pytest.raises(AuthenticationError) as info:
        model(model.format(user("Hi")))
    assert server.requests_to(CHAT_PATH)[0].header("authorization") == f"Bearer {env_key}"
    assert env_key not in str(info.value) and env_key not in repr(info.value)
    assert env_key not in repr(model)


def test_workspace_is_sent_as_header(server: FakeServer, wire: Any) -> None:
    wire.embeddings()
    embedder(server, workspace="ws-1234")(["x"])
    assert server.requests_to(EMBEDDING_PATH)[0].header("x-dashscope-workspace") == "ws-1234"


@pytest.mark.parametrize("use_async", [False, True])
def test_stream_idle_timeout_longer_than_timeout_is_kept(
    server: FakeServer, wire: Any, use_async: bool
) -> None:
    """Gaps between events longer than `timeout` but within `stream_idle_timeout` are fine."""
    wire.chat("one two three", pieces=3)
    model = chat(server, timeout=0.4, stream_idle_timeout=2.0)
    assert model.clients.sync is not None  # the SDK imported: not part of the deadline test
    server.slow_next("POST", CHAT_PATH, interval=0.6)
    received: list[str] = []

    async def consume() -> None:
        async for chunk in model.astream(model.format(user("Hi"))):
            received.append(chunk.text)

    if use_async:
        asyncio.run(consume())
    else:
        received.extend(chunk.text for chunk in model.stream(model.format(user("Hi"))))
    assert "".join(received) == "one two three"


def test_clients_are_built_on_modelwires_transport_and_closed(
    server: FakeServer, wire: Any
) -> None:
    from modelwire import AsyncGuardedTransport, GuardedTransport

    wire.chat("Hi there")
    model = chat(server)
    assert model(model.format(user("Hi"))).text == "Hi there"
    http_client = model.clients.sync.transport.http_client
    assert isinstance(http_client._transport, GuardedTransport)

    async def call() -> Any:
        http = model.clients.async_.transport.http_client
        assert isinstance(http._transport, AsyncGuardedTransport)
        text = (await model.acall(model.format(user("Hi")))).text
        await model.aclose()
        return text, http

    text, async_http_client = asyncio.run(call())
    assert text == "Hi there"
    assert http_client.is_closed and async_http_client.is_closed
    request = server.requests[-1]
    assert request.header("authorization") == f"Bearer {KEY}"
    assert request.header("user-agent").startswith("dashscope-v2-python/")


def test_wrappers_with_different_base_urls_do_not_race(wire: Any) -> None:
    with FakeServer() as other:
        wire.chat("from the first")
        type(wire)(other).chat("from the second")
        first, second = chat(wire.server), chat(other)
        results: dict[str, list[str]] = {"first": [], "second": []}

        def run(name: str, model: Any) -> None:
            for _ in range(10):
                results[name].append(model([{"role": "user", "content": "Hi"}]).text)

        threads = [
            threading.Thread(target=run, args=(name, model))
            for name, model in (("first", first), ("second", second))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(results["first"]) == {"from the first"} and len(results["first"]) == 40
        assert set(results["second"]) == {"from the second"} and len(results["second"]) == 40
        assert len(other.requests_to(CHAT_PATH)) == 40
        assert len(wire.server.requests_to(CHAT_PATH)) == 40


# -- embeddings ----------------------------------------------------------------------------------
def test_long_inputs_are_split_into_service_sized_batches(server: FakeServer, wire: Any) -> None:
    wire.embeddings(tokens_per_text=2)
    texts = [f"text number {i}" + "!" * i for i in range(30)]
    response = embedder(server, "text-embedding-v2")(texts)
    sent = [len(r.json()["input"]["texts"]) for r in server.requests_to(EMBEDDING_PATH)]
    assert sent == [25, 5]
    assert response.embedding == [wire.vector(text) for text in texts]
    assert response.usage == Usage(60, 0, 60)
    assert len(response.raw) == 2


def test_raw_keeps_every_vector_as_its_own_copy(server: FakeServer, wire: Any) -> None:
    wire.embeddings(tokens_per_text=2)
    response = embedder(server)(["a", "bb"])
    (raw,) = response.raw  # the reply as sent: its order, not the inputs'
    by_index = {item["index"]: item["embedding"] for item in raw["embeddings"]}
    assert [by_index[0], by_index[1]] == response.embedding
    assert raw["usage"]["total_tokens"] == 4 and "headers" not in raw
    by_index[0].append(9.0)
    assert response.embedding[0] == wire.vector("a")


@pytest.mark.parametrize(
    ("model_name", "batch_size", "expected"),
    [
        ("text-embedding-v3", None, [10, 2]),
        ("text-embedding-v4", None, [10, 2]),
        ("text-embedding-v1", 5, [5, 5, 2]),
    ],
)
def test_batch_limit_by_model_or_config(
    server: FakeServer, wire: Any, model_name: str, batch_size: int | None, expected: list[int]
) -> None:
    wire.embeddings()
    model = embedder(server, model_name, batch_size=batch_size)
    texts = [str(i) for i in range(12)]
    response = asyncio.run(model.acall(texts))
    assert [len(r.json()["input"]["texts"]) for r in server.requests] == expected
    assert response.embedding == [wire.vector(text) for text in texts]


def test_single_text_and_bad_inputs(server: FakeServer, wire: Any) -> None:
    wire.embeddings()
    model = embedder(server)
    assert model("just one").embedding == [wire.vector("just one")]
    for bad in ([], ["ok", 3]):
        with pytest.raises(BadRequestError):
            model(bad)
    assert len(server.requests) == 1
    with pytest.raises(ConfigError, match="batch_size"):
        embedder(server, batch_size=0)


def test_missing_vectors_are_a_parse_error(server: FakeServer) -> None:
    reply = {"output": {"embeddings": [{"text_index": 0, "embedding": [1.0]}]}, "usage": {}}
    server.route("POST", EMBEDDING_PATH, Reply.json(reply))
    with pytest.raises(ResponseParseError, match="1 vectors for 2 texts"):
        embedder(server)(["a", "b"])


# -- image synthesis -----------------------------------------------------------------------------
def test_image_task_is_submitted_async_and_polled_with_backoff(
    server: FakeServer, wire: Any
) -> None:
    tasks = wire.images(running_polls=3)
    model = painter(
        server,
        poll_interval=0.05,
        max_poll_interval=0.1,
        generate_args={"negative_prompt": "blur", "size": "1024x1024", "n": 2, "ref_mode": "x"},
    )
    started = time.perf_counter()
    response = model("a red fox")
    elapsed = time.perf_counter() - started
    assert response.image_urls == tasks.urls("a red fox", 2)
    assert response.extra["task_id"] == "task-1"
    submission = server.requests_to(IMAGE_PATH)[0]
    assert submission.header("x-dashscope-async") == "enable"
    assert tasks.submissions[0]["input"] == {"prompt": "a red fox", "negative_prompt": "blur"}
    assert tasks.submissions[0]["parameters"] == {"size": "1024*1024", "n": 2, "ref_mode": "x"}
    assert len(server.requests_to(TASK_PATH, "GET")) == 4
    assert 0.05 + 0.1 + 0.1 + 0.1 <= elapsed < 2.0  # 0.05, then doubling capped at 0.1


def test_image_acall_polls_too(server: FakeServer, wire: Any) -> None:
    tasks = wire.images(running_polls=2)
    response = asyncio.run(painter(server).acall("a boat", n=1))
    assert response.image_urls == tasks.urls("a boat", 1)
    assert len(server.requests_to(TASK_PATH, "GET")) == 3


@pytest.mark.parametrize("use_async", [False, True])
def test_failed_task_raises_a_clear_error(server: FakeServer, wire: Any, use_async: bool) -> None:
    wire.images(final="FAILED", code="DataInspectionFailed", message="unsafe prompt")
    model = painter(server)
    with pytest.raises(BadRequestError) as info:
        if use_async:
            asyncio.run(model.acall("something"))
        else:
            model("something")
    message = str(info.value)
    assert "task-1 FAILED" in message
    assert "DataInspectionFailed" in message and "unsafe prompt" in message
    assert len(server.requests_to(IMAGE_PATH)) == 1


def test_task_failed_on_the_service_side_is_resubmitted(server: FakeServer, wire: Any) -> None:
    wire.images(final="FAILED", code="InternalError", message="worker crashed")
    model = painter(server, retry={"max_retries": 1, "initial_delay": 0.01})
    with pytest.raises(ServiceUnavailableError, match="worker crashed"):
        model("something")
    assert len(server.requests_to(IMAGE_PATH)) == 2


@pytest.mark.parametrize("final", ["CANCELED", "UNKNOWN"])
def test_canceled_or_unknown_task_is_a_provider_error(
    server: FakeServer, wire: Any, final: str
) -> None:
    wire.images(final=final)
    with pytest.raises(ProviderError) as info:
        painter(server)("something")
    assert type(info.value) is ProviderError
    assert "task-1" in str(info.value) and final.lower() in str(info.value).lower()
    assert len(server.requests_to(IMAGE_PATH)) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_polling_gives_up_after_wait_timeout(
    server: FakeServer, wire: Any, use_async: bool
) -> None:
    wire.images(running_polls=10_000)
    model = painter(server, poll_interval=0.02, max_poll_interval=0.05, wait_timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(ModelTimeoutError) as info:
        asyncio.run(model.acall("slow")) if use_async else model("slow")
    assert 0.3 <= time.perf_counter() - started < 1.5
    assert "task-1" in str(info.value) and "RUNNING" in str(info.value)
    assert len(server.requests_to(IMAGE_PATH)) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_timeout_bounds_the_whole_task_wait(server: FakeServer, wire: Any, use_async: bool) -> None:
    """The submission and the polls are one attempt: `timeout` is its deadline."""
    wire.images(running_polls=10_000)
    model = painter(server, poll_interval=0.02, max_poll_interval=0.05, timeout=0.4)
    started = time.perf_counter()
    with pytest.raises(ModelTimeoutError, match=r"timeout=0\.4s"):
        asyncio.run(model.acall("slow")) if use_async else model("slow")
    assert time.perf_counter() - started < 1.5
    assert len(server.requests_to(IMAGE_PATH)) == 1


def test_default_timeout_leaves_the_task_its_wait_timeout(server: FakeServer) -> None:
    config = {
        "config_name": "painter",
        "model_type": "dashscope_image_synthesis",
        "model_name": "wanx-v1",
        "api_key": KEY,
        "base_url": server.url + API,
    }
    model = ModelRegistry([config]).load_model("painter")
    assert model.timeout == model.wait_timeout + 120 == 420
    model = ModelRegistry([{**config, "wait_timeout": 30}]).load_model("painter")
    assert model.timeout == 150
    model = ModelRegistry([{**config, "timeout": 10}]).load_model("painter")
    assert model.timeout == 10


def test_transient_poll_failures_are_retried_in_place(server: FakeServer, wire: Any) -> None:
    tasks = wire.images(running_polls=1)
    server.once("GET", TASK_PATH, wire.error(503), Reply.connection_reset(), wire.error(429))
    response = painter(server, retry={"max_retries": 3, "initial_delay": 0.01})("a tree")
    assert response.image_urls == tasks.urls("a tree", 1)
    assert len(server.requests_to(IMAGE_PATH)) == 1
    assert len(server.requests_to(TASK_PATH, "GET")) == 5


def test_poll_failures_beyond_retries_do_not_resubmit(server: FakeServer, wire: Any) -> None:
    wire.images(running_polls=1)
    server.route("GET", TASK_PATH, wire.error(503))
    with pytest.raises(ServiceUnavailableError) as info:
        painter(server, retry={"max_retries": 1, "initial_delay": 0.01})("a tree")
    assert "polling image task task-1 failed" in str(info.value)
    assert info.value.retryable is False
    assert len(server.requests_to(IMAGE_PATH)) == 1
    assert len(server.requests_to(TASK_PATH, "GET")) == 2


def test_partly_failed_results_keep_the_images_that_were_made(
    server: FakeServer, wire: Any
) -> None:
    blocked = {"code": "DataInspectionFailed", "message": "image 2 blocked"}
    wire.images(results=[{"url": "https://r.example/1.png"}, blocked])
    response = painter(server)("two images", n=2)
    assert response.image_urls == ["https://r.example/1.png"]
    assert response.extra["failed_results"] == [blocked]


def test_no_image_at_all_raises_the_results_code(server: FakeServer, wire: Any) -> None:
    wire.images(results=[{"code": "DataInspectionFailed", "message": "blocked"}])
    with pytest.raises(BadRequestError, match="produced no image: blocked"):
        painter(server)("nothing")


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"wait_timeout": -1}, "wait_timeout"),
        ({"wait_timeout": 1e300}, "wait_timeout"),
        ({"poll_interval": 2.0, "max_poll_interval": 1.0}, "max_poll_interval"),
    ],
)
def test_polling_settings_are_validated(
    server: FakeServer, params: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(server, "dashscope_image_synthesis", "wanx-v1", **params)
    assert any(issue.key == key for issue in info.value.issues)
    assert server.requests == []


@pytest.mark.parametrize("code", [429, 1.5, True, None], ids=repr)
@pytest.mark.parametrize("status", [400, 429, 503])
def test_error_codes_that_are_not_strings_map_by_status(
    server: FakeServer, status: int, code: object
) -> None:
    """Services have sent numeric and boolean codes: the mapper must not crash on them."""
    body = {"code": code, "message": "odd code", "request_id": "req-1"}
    server.route("POST", CHAT_PATH, Reply.json(body, status))
    model = chat(server, retry={"max_retries": 0})
    with pytest.raises(ProviderError) as info:
        model(model.format(user("Hi")))
    assert info.value.status == status
    assert "odd code" in str(info.value)


UNREADABLE_CODES = [["Throttling"], {"name": "Throttling"}, []]
STATUS_ERRORS = {400: BadRequestError, 429: RateLimitError, 503: ServiceUnavailableError}


@pytest.mark.parametrize("code", UNREADABLE_CODES, ids=repr)
@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
def test_error_codes_that_are_lists_or_objects_map_by_status(
    server: FakeServer, status: int, code: object
) -> None:
    """The SDK looks a code up in a dict, and a list or an object makes it raise TypeError:
    the call, the async call and the stream request all give the status's error instead."""
    body = {"code": code, "message": "odd code", "request_id": "req-1"}
    server.route("POST", CHAT_PATH, Reply.json(body, status))
    model = chat(server, retry={"max_retries": 0})
    messages = model.format(user("Hi"))
    for run in (
        lambda: model(messages),
        lambda: asyncio.run(model.acall(messages)),
        lambda: list(model.stream(messages)),
    ):
        with pytest.raises(ProviderError) as info:
            run()
        assert type(info.value) is STATUS_ERRORS[status]
        assert info.value.status == status
        assert "odd code" in str(info.value) and "req-1" in str(info.value)


@pytest.mark.parametrize("code", UNREADABLE_CODES, ids=repr)
def test_a_list_code_in_an_http_200_is_a_parse_error(server: FakeServer, code: object) -> None:
    server.route("POST", CHAT_PATH, Reply.json({"code": code, "message": "odd code"}))
    model = chat(server)
    with pytest.raises(ResponseParseError, match="odd code"):
        model(model.format(user("Hi")))
    assert len(server.requests_to(CHAT_PATH)) == 1


@pytest.mark.parametrize("code", UNREADABLE_CODES[:2], ids=repr)
def test_a_list_code_in_a_stream_event_is_a_parse_error_keeping_partial_text(
    server: FakeServer, wire: Any, code: object
) -> None:
    body = json.dumps({"code": code, "message": "odd code", "request_id": "req-1"})
    odd = RawEvent(f"id:2\nevent:error\n:HTTP_STATUS/200\ndata:{body}\n\n")
    server.route("POST", CHAT_PATH, Reply.sse([*wire.sse_events(["Hel", "lo"], (3, 2))[:1], odd]))
    model = chat(server)
    with pytest.raises(ResponseParseError) as info:
        list(model.stream(model.format(user("Hi"))))
    assert info.value.partial_text == "Hel"
