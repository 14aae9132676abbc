"""Ollama-specific behaviour, through the real ``ollama`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelwire.errors import (
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
from modelwire.response import ModelResponse
from modelwire.testing import FakeServer, Reply

from .conftest import (
    EMBED_TOKENS_PER_INPUT,
    PIECES,
    SERVICES,
    TEXT,
    USAGE,
    config,
    load,
    not_pulled,
    ollama_error,
    serve,
    vector_for,
)

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "examples" / "model_configs.json"
README = ROOT / "plugins" / "ollama" / "README.md"
TYPES = ["ollama_chat", "ollama_generate", "ollama_embedding"]
TEXT_TYPES = ["ollama_chat", "ollama_generate"]
PNG = b"\x89PNG\r\n\x1a\n fake image bytes"


def call_args(model: Any) -> tuple[Any, ...]:
    """One plain call of the model's type."""
    if model.model_type == "ollama_embedding":
        return (["hello", "world"],)
    return (model.format(Msg("user", "Hello", role="user")),)


def collect(model: Any, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [chunk async for chunk in model.astream(*args)]

    return asyncio.run(run())


def seed_configs() -> list[dict[str, Any]]:
    return [c for c in json.loads(SEED.read_text()) if c["model_type"].startswith("ollama")]


# -- seed configs ------------------------------------------------------------------------------
def test_seed_has_one_config_per_type() -> None:
    assert sorted(c["model_type"] for c in seed_configs()) == sorted(TYPES)


@pytest.mark.parametrize("seed", seed_configs(), ids=lambda c: c["model_type"])
def test_seed_config_works(server: FakeServer, seed: dict[str, Any]) -> None:
    path = serve(server, seed["model_type"])
    registry = ModelRegistry([{**seed, "host": server.url}])
    model = registry.load_model(seed["config_name"])
    response = model(*call_args(model))
    if seed["model_type"] == "ollama_embedding":
        assert response.embedding == [vector_for("hello"), vector_for("world")]
    else:
        assert response.text == TEXT
        assert response.usage == USAGE
    (request,) = server.requests_to(path)
    body = request.json()
    assert body["model"] == seed["model"]
    assert body["options"] == seed["options"]
    assert body["keep_alive"] == seed["keep_alive"]


def test_readme_example_configs_load(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_PROXY_TOKEN", "proxy-token-0a9b8c")
    block = README.read_text().split("```json\n", 1)[1].split("```", 1)[0]
    configs = [{**c, "host": server.url} for c in json.loads(block)]
    registry = ModelRegistry(configs)
    for cfg in configs:
        serve(server, cfg["model_type"])
        model = registry.load_model(cfg["config_name"])
        assert model(*call_args(model)).raw is not None
    assert server.requests[-1].header("authorization") == "Bearer proxy-token-0a9b8c"
    assert "proxy-token-0a9b8c" not in repr(registry.config("remote_json_chat"))


# -- config schema -----------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", TYPES)
def test_model_name_is_not_the_key(server: FakeServer, model_type: str) -> None:
    cfg = config(server, model_type)
    cfg["model_name"] = cfg.pop("model")
    with pytest.raises(ConfigError) as info:
        ModelRegistry([cfg])
    assert "did you mean 'model'" in str(info.value)
    assert server.requests == []


def test_option_typo_did_you_mean(server: FakeServer) -> None:
    cfg = config(server, "ollama_chat", options={"temprature": 0.5, "num_ctx": "big"})
    with pytest.raises(ConfigError) as info:
        ModelRegistry([cfg])
    message = str(info.value)
    assert "did you mean 'temperature'" in message
    assert {issue.key for issue in info.value.issues} == {"options.temprature", "options.num_ctx"}


@pytest.mark.parametrize("bad", ["xml", 3, ["json"]])
def test_format_must_be_json_or_a_schema(server: FakeServer, bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([config(server, "ollama_chat", format=bad)])
    assert [issue.key for issue in info.value.issues] == ["format"]


def test_embedding_has_no_format_key(server: FakeServer) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([config(server, "ollama_embedding", format="json")])
    assert "unknown parameter" in str(info.value)


def test_budget_needs_pricing_because_ollama_is_free(server: FakeServer) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([config(server, "ollama_chat", budget=1.0)])
    assert "pricing" in str(info.value)

    serve(server, "ollama_chat")
    model = load(server, "ollama_chat", budget=10.0, pricing={"prompt": 1.0, "completion": 2.0})
    model(*call_args(model))
    expected = (USAGE.prompt_tokens * 1.0 + USAGE.completion_tokens * 2.0) / 1000
    assert model.usage["cost_usd"] == pytest.approx(expected)


# -- structured output -------------------------------------------------------------------------
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.mark.parametrize("model_type", TEXT_TYPES)
@pytest.mark.parametrize("output_format", ["json", SCHEMA])
def test_format_key_is_sent_and_format_method_still_works(
    server: FakeServer, model_type: str, output_format: Any
) -> None:
    path = serve(server, model_type)
    model = load(server, model_type, format=output_format)
    assert model.output_format == output_format
    prompt = model.format(Msg("user", "Hello", role="user"))  # the method, not the config key
    model(prompt)
    list(model.stream(prompt))
    bodies = [request.json() for request in server.requests_to(path)]
    assert [body["format"] for body in bodies] == [output_format, output_format]


def test_no_format_key_sends_no_format(server: FakeServer) -> None:
    serve(server, "ollama_chat")
    model = load(server, "ollama_chat")
    model(*call_args(model))
    assert "format" not in server.requests[-1].json()


# -- chat --------------------------------------------------------------------------------------
def test_chat_format_roles_and_images(server: FakeServer, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    data_uri = "data:image/png;base64," + base64.b64encode(b"second image").decode()
    serve(server, "ollama_chat")
    model = load(server, "ollama_chat")
    messages = model.format(
        Msg("system", "Be brief.", role="system"),
        [
            Msg("alice", "What is this?", role="user", url=[str(image), data_uri]),
            Msg("bot", "A cat.", role="assistant"),
        ],
        None,
        Msg("alice", {"follow_up": True}, role="user"),
    )
    response = model(messages)
    assert response.text == TEXT
    assert response.raw["message"]["content"] == TEXT
    assert response.finish_reason == "stop"
    sent = server.requests[-1].json()["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in sent] == [
        "Be brief.",
        "What is this?",
        "A cat.",
        '{"follow_up": true}',
    ]
    assert sent[1]["images"] == [
        base64.b64encode(PNG).decode(),
        base64.b64encode(b"second image").decode(),
    ]
    assert "images" not in sent[0]


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("https://example.com/cat.png", "does not download"),
        ("/no/such/cat.png", "neither a URL nor an existing file"),
    ],
)
def test_chat_format_rejects_images_ollama_cannot_take(
    server: FakeServer, url: str, complaint: str
) -> None:
    model = load(server, "ollama_chat")
    with pytest.raises(BadRequestError, match=complaint):
        model.format(Msg("u", "look", role="user", url=url))


def test_chat_thinking_is_kept(server: FakeServer) -> None:
    reply = {
        "model": "llama3.2",
        "message": {"role": "assistant", "content": "42", "thinking": "six times seven"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 5,
        "eval_count": 1,
    }
    server.route("POST", "/api/chat", Reply.json(reply))
    model = load(server, "ollama_chat")
    response = model(*call_args(model))
    assert response.text == "42"
    assert response.thinking == "six times seven"
    assert "thinking" not in response.extra
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 1)


# -- generate ----------------------------------------------------------------------------------
def test_generate_prompt_system_raw_images(server: FakeServer, tmp_path: Path) -> None:
    image = tmp_path / "cat.jpg"
    image.write_bytes(PNG)
    serve(server, "ollama_generate")
    model = load(server, "ollama_generate")
    response = asyncio.run(
        model.acall("[INST] Why? [/INST]", system="Be brief.", raw=True, images=[str(image)])
    )
    assert response.text == TEXT
    body = server.requests[-1].json()
    assert body["prompt"] == "[INST] Why? [/INST]"
    assert body["system"] == "Be brief."
    assert body["raw"] is True
    assert body["images"] == [base64.b64encode(PNG).decode()]
    assert body["stream"] is False


def test_generate_sends_only_what_was_given(server: FakeServer) -> None:
    serve(server, "ollama_generate")
    model = load(server, "ollama_generate")
    model("Why?")
    body = server.requests[-1].json()
    assert not {"system", "raw", "images", "options", "keep_alive"} & body.keys()


def test_generate_bad_image_is_bad_request_and_nothing_is_sent(server: FakeServer) -> None:
    serve(server, "ollama_generate")
    model = load(server, "ollama_generate")
    with pytest.raises(BadRequestError, match="neither a URL nor an existing file"):
        model("Why?", images=["/no/such/image.png"])
    assert server.requests == []


def test_generate_format_builds_a_transcript_prompt(server: FakeServer) -> None:
    model = load(server, "ollama_generate")
    prompt = model.format(
        Msg("system", "You are terse.", role="system"),
        Msg("alice", "Hi", role="user"),
        Msg("bot", "Hello", role="assistant"),
    )
    assert prompt == "You are terse.\n\nalice: Hi\nbot: Hello"
    assert model.format(Msg("alice", "Hi", role="user")) == "alice: Hi"


# -- embedding ---------------------------------------------------------------------------------
def test_embedding_batch_one_vector_each(server: FakeServer) -> None:
    serve(server, "ollama_embedding")
    model = load(server, "ollama_embedding")
    texts = ["a", "bb", "ccc"]
    response = model(texts)
    assert response.embedding == [vector_for(text) for text in texts]
    assert response.usage.prompt_tokens == 3 * EMBED_TOKENS_PER_INPUT
    assert response.usage.completion_tokens == 0
    assert server.requests[-1].json()["input"] == texts

    single = asyncio.run(model.acall("dddd"))
    assert single.embedding == [vector_for("dddd")]
    assert server.requests[-1].json()["input"] == ["dddd"]
    assert model.format(Msg("u", "x", role="user"), Msg("u", "y", role="user")) == ["x", "y"]


def test_embedding_whole_numbers_come_back_as_floats(server: FakeServer) -> None:
    reply = {"model": "m", "embeddings": [[1, 0, -2]], "prompt_eval_count": 1}
    server.route("POST", "/api/embed", Reply.json(reply))
    response = load(server, "ollama_embedding")("a")
    assert response.embedding == [[1.0, 0.0, -2.0]]
    assert [type(x) for x in response.embedding[0]] == [float, float, float]
    assert response.raw["embeddings"] == [[1.0, 0.0, -2.0]]
    assert response.raw["embeddings"][0] is not response.embedding[0]


def test_embedding_count_mismatch_is_parse_error(server: FakeServer) -> None:
    server.route("POST", "/api/embed", Reply.json({"model": "m", "embeddings": [[0.1, 0.2]]}))
    model = load(server, "ollama_embedding")
    with pytest.raises(ResponseParseError, match="1 embeddings for 2 inputs"):
        model(["a", "b"])


# -- streaming ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", TEXT_TYPES)
def test_stream_chunks_and_final_usage(server: FakeServer, model_type: str) -> None:
    path = serve(server, model_type)
    model = load(server, model_type)
    args = call_args(model)
    for chunks in (list(model.stream(*args)), collect(model, *args)):
        assert [c.text for c in chunks] == [*PIECES, ""]
        assert all(c.usage is None for c in chunks[:-1])
        assert chunks[-1].usage == USAGE
        assert chunks[-1].finish_reason == "stop"
        assert all(c.model_name == "llama3.2" for c in chunks)
    assert all(r.json()["stream"] is True for r in server.requests_to(path))
    assert model.usage["total_tokens"] == 2 * USAGE.total_tokens


@pytest.mark.parametrize("model_type", TEXT_TYPES)
def test_stream_error_line_keeps_partial_text(server: FakeServer, model_type: str) -> None:
    path, _ = SERVICES[model_type]
    key = "message" if model_type == "ollama_chat" else "response"
    first = {"role": "assistant", "content": "Hel"} if key == "message" else "Hel"
    lines = [{"model": "llama3.2", key: first, "done": False}, {"error": "model runner crashed"}]
    server.route("POST", path, Reply.ndjson(lines))
    model = load(server, model_type)
    with pytest.raises(ProviderError, match="model runner crashed") as info:
        list(model.stream(*call_args(model)))
    assert info.value.partial_text == "Hel"
    assert len(server.requests_to(path)) == 1


@pytest.mark.parametrize("model_type", TEXT_TYPES)
def test_cut_stream_is_service_unavailable(server: FakeServer, model_type: str) -> None:
    path, service = SERVICES[model_type]
    server.route("POST", path, service(cut_after=2))
    model = load(server, model_type)
    with pytest.raises(ServiceUnavailableError) as info:
        list(model.stream(*call_args(model)))
    assert info.value.partial_text == "".join(PIECES[:2])
    with pytest.raises(ServiceUnavailableError):
        collect(model, *call_args(model))


def test_stream_without_done_line_is_parse_error(server: FakeServer) -> None:
    lines = [{"model": "m", "response": p, "done": False} for p in PIECES]
    server.route("POST", "/api/generate", Reply.ndjson(lines))
    model = load(server, "ollama_generate")
    with pytest.raises(ResponseParseError, match="before the service said it was complete"):
        list(model.stream("Why?"))
    with pytest.raises(ResponseParseError, match="before the service said it was complete"):
        collect(model, "Why?")


def test_stream_retries_429_before_the_first_chunk(server: FakeServer) -> None:
    serve(server, "ollama_chat")
    server.once("POST", "/api/chat", ollama_error(429, "busy", {"Retry-After": "0"}))
    model = load(server, "ollama_chat")
    chunks = list(model.stream(*call_args(model)))
    assert "".join(c.text for c in chunks) == TEXT
    assert len(server.requests_to("/api/chat")) == 2


def test_rate_limit_retry_after_on_async_call(server: FakeServer) -> None:
    server.route("POST", "/api/chat", ollama_error(429, "busy", {"Retry-After": "9"}))
    model = load(server, "ollama_chat", retry={"max_retries": 0})
    with pytest.raises(RateLimitError) as info:
        asyncio.run(model.acall(*call_args(model)))
    assert info.value.retry_after == 9.0
    assert "busy" in str(info.value)


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", TYPES)
def test_not_pulled_model_says_ollama_pull(server: FakeServer, model_type: str) -> None:
    path, _ = SERVICES[model_type]
    server.route("POST", path, not_pulled("llama3.2"))
    model = load(server, model_type)
    args = call_args(model)
    attempts: list[Any] = [lambda: model(*args), lambda: asyncio.run(model.acall(*args))]
    if model_type != "ollama_embedding":
        attempts += [lambda: list(model.stream(*args)), lambda: collect(model, *args)]
    for attempt in attempts:
        with pytest.raises(BadRequestError) as info:
            attempt()
        assert info.value.status == 404
        assert "ollama pull llama3.2" in str(info.value)
        assert info.value.config_name == model.config_name
    assert len(server.requests_to(path)) == len(attempts)  # never retried


def test_other_404_has_no_pull_hint(server: FakeServer) -> None:
    server.route("POST", "/api/chat", Reply.text("404 page", 404))
    model = load(server, "ollama_chat")
    with pytest.raises(BadRequestError) as info:
        model(*call_args(model))
    assert "ollama pull" not in str(info.value)


@pytest.mark.parametrize("model_type", TYPES)
def test_timeout_is_applied(server: FakeServer, model_type: str) -> None:
    path, service = SERVICES[model_type]
    server.route("POST", path, service(delay=2.0))
    model = load(server, model_type, timeout=0.3)
    args = call_args(model)
    attempts: list[Any] = [lambda: model(*args), lambda: asyncio.run(model.acall(*args))]
    if model_type != "ollama_embedding":
        attempts += [lambda: list(model.stream(*args)), lambda: collect(model, *args)]
    for attempt in attempts:
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError, match="timeout"):
            attempt()
        assert time.perf_counter() - started < 1.5
    assert len(server.requests_to(path)) == len(attempts)  # a timeout is not retried


@pytest.mark.parametrize("model_type", TEXT_TYPES)
def test_timeout_between_stream_chunks(server: FakeServer, model_type: str) -> None:
    path, service = SERVICES[model_type]
    server.route("POST", path, service(interval=1.0))
    model = load(server, model_type, timeout=0.3)
    with pytest.raises(ModelTimeoutError) as info:
        list(model.stream(*call_args(model)))
    assert info.value.partial_text == PIECES[0]


@pytest.mark.parametrize("model_type", TEXT_TYPES)
def test_a_stream_idle_timeout_longer_than_timeout_is_kept(
    server: FakeServer, model_type: str
) -> None:
    """httpx's own per-read timeout must not cut a wait that ``stream_idle_timeout``
    allows: lines 0.5 s apart pass with ``timeout: 0.3, stream_idle_timeout: 2``."""
    path, service = SERVICES[model_type]
    server.route("POST", path, service(interval=0.5))
    model = load(server, model_type, timeout=0.3, stream_idle_timeout=2.0)
    assert "".join(chunk.text for chunk in model.stream(*call_args(model))) == TEXT


@pytest.mark.parametrize("use_async", [False, True], ids=["call", "acall"])
def test_environment_proxies_are_used_and_guarded(
    server: FakeServer, http_proxy: Callable[[str], None], use_async: bool
) -> None:
    """A client given a transport no longer reads HTTP_PROXY itself: the plugin mounts
    the environment's proxies, each on modelwire's transport (so the size cap holds)."""
    http_proxy(server.url)
    path = serve(server, "ollama_chat")

    def run(model: Any) -> Any:
        args = call_args(model)
        return asyncio.run(model.acall(*args)) if use_async else model(*args)

    upstream = {"host": "http://upstream.invalid:11434"}
    assert run(load(server, "ollama_chat", **upstream)).text == TEXT
    (request,) = server.requests_to(path)
    assert request.header("host") == "upstream.invalid:11434"  # it went through the proxy
    with pytest.raises(ResponseParseError, match="max_response_bytes=16"):
        run(load(server, "ollama_chat", max_response_bytes=16, **upstream))


def test_default_timeout_is_the_core_one(server: FakeServer) -> None:
    cfg = config(server, "ollama_chat")
    del cfg["timeout"]
    model = ModelRegistry([cfg]).load_model(cfg["config_name"])
    assert model.timeout == 120.0


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("<html>not json</html>", 200),
        Reply.json({"model": "llama3.2", "done": True}),  # no "message"
    ],
    ids=["not-json", "wrong-shape"],
)
def test_unparseable_reply(server: FakeServer, reply: Reply) -> None:
    server.route("POST", "/api/chat", reply)
    model = load(server, "ollama_chat")
    with pytest.raises(ResponseParseError):
        model(*call_args(model))
    with pytest.raises(ResponseParseError):
        asyncio.run(model.acall(*call_args(model)))


@pytest.mark.parametrize("model_type", TEXT_TYPES)
def test_connection_refused_names_the_host(server: FakeServer, model_type: str) -> None:
    model = load(server, model_type, retry={"max_retries": 0})
    server.close()
    with pytest.raises(ServiceUnavailableError, match="ollama serve") as info:
        model(*call_args(model))
    assert server.url in str(info.value)
    with pytest.raises(ServiceUnavailableError):
        list(model.stream(*call_args(model)))


# -- host, headers, secrets --------------------------------------------------------------------
def test_host_falls_back_to_ollama_host(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(server, "ollama_chat")
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    cfg = config(server, "ollama_chat")
    del cfg["host"]
    model = ModelRegistry([cfg]).load_model(cfg["config_name"])
    assert model(*call_args(model)).text == TEXT
    assert len(server.requests) == 1


def test_host_default(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    cfg = config(server, "ollama_chat")
    del cfg["host"]
    assert ModelRegistry([cfg]).load_model(cfg["config_name"]).host == "http://127.0.0.1:11434"


def test_headers_and_api_key_from_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "ollama-env-key-7d3c9b1a"
    monkeypatch.setenv("OLLAMA_API_KEY", key)
    serve(server, "ollama_chat")
    server.once("POST", "/api/chat", ollama_error(401, f"key {key} is not valid"))
    model = load(server, "ollama_chat", headers={"X-Team": "search"})
    with pytest.raises(ProviderError) as info:
        model(*call_args(model))
    model(*call_args(model))
    for request in server.requests:
        assert request.header("authorization") == f"Bearer {key}"
        assert request.header("x-team") == "search"
    assert key not in str(info.value) and key not in repr(info.value)
    assert key not in repr(model)


def test_config_authorization_wins_over_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-env-key-unused")
    serve(server, "ollama_embedding")
    model = load(server, "ollama_embedding", headers={"Authorization": "Bearer config-key-123"})
    model(["x"])
    assert server.requests[-1].header("authorization") == "Bearer config-key-123"


# -- clients -----------------------------------------------------------------------------------
def test_one_sync_client_shared_by_threads(server: FakeServer) -> None:
    serve(server, "ollama_chat")
    model = load(server, "ollama_chat")
    barrier = threading.Barrier(8)
    clients: list[Any] = []
    responses: list[ModelResponse] = []

    def work() -> None:
        barrier.wait()
        clients.append(model.clients.sync)
        responses.append(model(*call_args(model)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(client) for client in clients}) == 1
    assert [r.text for r in responses] == [TEXT] * 8
    assert model.usage["calls"] == 8


def test_async_calls_work_across_event_loops(server: FakeServer) -> None:
    serve(server, "ollama_chat")
    model = load(server, "ollama_chat")

    async def twice() -> list[Any]:
        first = model.clients.async_
        results = await asyncio.gather(*(model.acall(*call_args(model)) for _ in range(3)))
        assert model.clients.async_ is first
        return results

    for _ in range(2):  # a pool bound to a closed loop would fail the second run
        assert [r.text for r in asyncio.run(twice())] == [TEXT] * 3
