"""OpenAI-specific behaviour, through the real ``openai`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelwire import Msg, ScrubbedError
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
from modelwire.registry import ModelRegistry
from modelwire.response import Usage
from modelwire.testing import FakeServer, Reply, Request

ROOT = Path(__file__).resolve().parents[3]
SEED_CONFIGS = ROOT / "examples" / "model_configs.json"
SERVE_CONFIGS = ROOT / "plugins" / "openai" / "examples" / "modelwire_serve.json"
OPENAI_TYPES = ("openai", "openai_chat", "openai_embedding", "openai_dall_e")
KEY = "sk-test-0123456789abcdef"

Loader = Callable[[dict[str, Any]], Any]


def chat_config(**overrides: Any) -> dict[str, Any]:
    return {
        "config_name": "chat",
        "model_type": "openai_chat",
        "model_name": "gpt-4o",
        "api_key": KEY,
        **overrides,
    }


def hello(model: Any) -> list[dict[str, Any]]:
    return model.format(Msg("user", "Hello", role="user"))


def bodies(server: FakeServer, path: str) -> list[Any]:
    return [request.json() for request in server.requests_to(path, "POST")]


# -- registration and imports ------------------------------------------------------------
def test_openai_chat_is_an_alias_of_openai(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    aliased = load(chat_config(model_type="openai_chat"))
    canonical = load(chat_config(model_type="openai"))
    assert type(aliased) is type(canonical)
    assert aliased.model_type == "openai"
    assert aliased(hello(aliased)).text == wire.reply_text


# -- the seed's configs ------------------------------------------------------------------
def seed_configs() -> list[dict[str, Any]]:
    configs = json.loads(SEED_CONFIGS.read_text(encoding="utf-8"))
    return [config for config in configs if config["model_type"] in OPENAI_TYPES]


def test_the_seed_has_openai_configs_of_every_type() -> None:
    types = {config["model_type"] for config in seed_configs()}
    assert types == {"openai_chat", "openai_embedding", "openai_dall_e"}


@pytest.mark.parametrize("seed", seed_configs(), ids=lambda config: config["config_name"])
def test_every_seed_config_works(
    seed: dict[str, Any], server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    server.route("POST", wire.embeddings_path, wire.embeddings())
    server.route("POST", wire.images_path, wire.images())
    config = json.loads(json.dumps(seed))
    config.setdefault("client_args", {})["base_url"] = server.url + "/v1/"  # as the vLLM one
    model = load(config)
    if seed["model_type"] == "openai_chat":
        response = model(hello(model))
        assert response.text == wire.reply_text
        path = wire.chat_path
    elif seed["model_type"] == "openai_embedding":
        response = model(["hello world", "bye"])
        assert response.embedding == [wire.vector_of("hello world"), wire.vector_of("bye")]
        path = wire.embeddings_path
    else:
        response = model("a lighthouse at dawn")
        assert response.image_urls == [wire.image_url(0)]
        path = wire.images_path
    (request,) = server.requests_to(path, "POST")
    body = request.json()
    assert body["model"] == seed["model_name"]
    for key, value in seed.get("generate_args", {}).items():
        assert body[key] == value
    assert request.header("authorization") == f"Bearer {seed['api_key']}"
    assert request.header("openai-organization") == seed.get("organization")


def test_all_seed_configs_load_together() -> None:
    registry = ModelRegistry([{**config} for config in seed_configs()])
    assert sorted(registry) == sorted(config["config_name"] for config in seed_configs())


# -- OpenAI-compatible servers -----------------------------------------------------------
SERVE_CHAT_KEYS = {"model", "messages", "stream", "stream_options", "temperature", "max_tokens"}


def test_the_modelwire_serve_example_configs_work(server: FakeServer, wire: Any) -> None:
    """The documented configs, with port 8000 swapped for the fake server's."""
    chat = wire.chat()

    def strict_chat(request: Request) -> Reply:  # modelwire-serve refuses unknown keys
        unknown = set(request.json()) - SERVE_CHAT_KEYS
        if unknown:
            return wire.error(400, f"unknown keys {sorted(unknown)}")
        return chat(request)

    server.route("POST", wire.chat_path, strict_chat)
    server.route("POST", wire.embeddings_path, wire.embeddings())
    text = SERVE_CONFIGS.read_text(encoding="utf-8")
    assert "http://127.0.0.1:8000/v1" in text
    configs = json.loads(text.replace("http://127.0.0.1:8000", server.url))
    registry = ModelRegistry(configs)
    chat_model = registry.load_model("local-chat")
    assert chat_model(hello(chat_model)).text == wire.reply_text
    chunks = list(chat_model.stream(hello(chat_model)))
    assert "".join(chunk.text for chunk in chunks) == wire.reply_text
    assert chunks[-1].usage == Usage(9, 7, 16)
    embedder = registry.load_model("local-embedding")
    assert embedder(["a b"]).embedding == [wire.vector_of("a b")]
    assert {request.header("authorization") for request in server.requests} == {"Bearer EMPTY"}


@pytest.mark.parametrize("suffix", ["/v1", "/v1/"])
def test_base_url_with_or_without_trailing_slash(
    suffix: str, server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(client_args={"base_url": server.url + suffix}))
    assert model(hello(model)).text == wire.reply_text
    assert [r.path for r in server.requests] == [wire.chat_path]


def test_404_hints_at_a_base_url_without_v1(server: FakeServer, load: Loader) -> None:
    model = load(chat_config(client_args={"base_url": server.url}))
    with pytest.raises(BadRequestError) as info:
        model(hello(model))
    assert info.value.status == 404
    assert "/v1" in str(info.value) and server.url in str(info.value)


def test_options_the_sdk_does_not_know_reach_the_server(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(generate_args={"top_k": 20, "repetition_penalty": 1.1}))
    model(hello(model), extra_body={"min_p": 0.05})
    body = bodies(server, wire.chat_path)[0]
    assert (body["top_k"], body["repetition_penalty"], body["min_p"]) == (20, 1.1, 0.05)


# -- credentials and headers -------------------------------------------------------------
def test_organization_header_sent(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(organization="org-acme"))
    model(hello(model))
    asyncio.run(model.acall(hello(model)))
    list(model.stream(hello(model)))
    assert [r.header("openai-organization") for r in server.requests] == ["org-acme"] * 3


def test_key_and_organization_from_the_environment(
    server: FakeServer, wire: Any, load: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = "sk-from-env-9876543210"
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    server.route("POST", wire.chat_path, wire.error(401, f"bad key {env_key}"))
    config = chat_config()
    del config["api_key"]
    model = load(config)
    with pytest.raises(AuthenticationError) as info:
        model(hello(model))
    (request,) = server.requests
    assert request.header("authorization") == f"Bearer {env_key}"
    assert request.header("openai-organization") == "org-env"
    assert env_key not in str(info.value) and env_key not in repr(info.value)


def test_config_key_wins_over_the_environment(
    server: FakeServer, wire: Any, load: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-9876543210")
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config())
    model(hello(model))
    assert server.requests[0].header("authorization") == f"Bearer {KEY}"


def test_missing_api_key_is_a_config_error(server: FakeServer, load: Loader) -> None:
    config = chat_config()
    del config["api_key"]
    with pytest.raises(ConfigError) as info:
        load(config)
    assert any(issue.key == "api_key" for issue in info.value.issues)
    assert "OPENAI_API_KEY" in str(info.value)
    assert server.requests == []


def test_default_headers_reach_the_server(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(
        chat_config(
            client_args={"base_url": server.url + "/v1", "default_headers": {"X-Team": "nlp"}}
        )
    )
    model(hello(model))
    assert server.requests[0].header("x-team") == "nlp"


def test_misspelt_client_arg_is_caught_at_load(server: FakeServer) -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([chat_config(client_args={"base_uri": server.url})])
    assert "did you mean 'base_url'" in str(info.value)


# -- generate_args and per-call kwargs ---------------------------------------------------
def test_generate_args_merged_with_call_kwargs(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(generate_args={"temperature": 0.0, "max_tokens": 5, "seed": 7}))
    model(hello(model), temperature=0.9, top_p=0.5)
    asyncio.run(model.acall(hello(model), max_tokens=9))
    first, second = bodies(server, wire.chat_path)
    assert first["temperature"] == 0.9 and first["max_tokens"] == 5 and first["top_p"] == 0.5
    assert first["seed"] == 7 and first["messages"] == hello(model)
    assert second["temperature"] == 0.0 and second["max_tokens"] == 9 and "top_p" not in second
    assert model.generate_args == {"temperature": 0.0, "max_tokens": 5, "seed": 7}


def test_generate_args_apply_to_embeddings_and_images(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.embeddings_path, wire.embeddings())
    server.route("POST", wire.images_path, wire.images())
    embedder = load(
        {
            "config_name": "embed",
            "model_type": "openai_embedding",
            "model_name": "text-embedding-3-large",
            "api_key": KEY,
            "generate_args": {"dimensions": 3},
        }
    )
    embedder("hi", user="u-1")
    painter = load(
        {
            "config_name": "paint",
            "model_type": "openai_dall_e",
            "model_name": "dall-e-3",
            "api_key": KEY,
            "generate_args": {"size": "1792x1024", "quality": "hd", "n": 1},
        }
    )
    response = painter("a cat", n=2, style="vivid")
    (embed_body,) = bodies(server, wire.embeddings_path)
    assert embed_body["dimensions"] == 3 and embed_body["user"] == "u-1"
    (image_body,) = bodies(server, wire.images_path)
    assert image_body == {
        "model": "dall-e-3",
        "prompt": "a cat",
        "size": "1792x1024",
        "quality": "hd",
        "n": 2,
        "style": "vivid",
    }
    assert response.image_urls == [wire.image_url(0), wire.image_url(1)]


def test_reserved_generate_args_are_refused_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([chat_config(generate_args={"stream": True, "model": "gpt-4"})])
    keys = {issue.key for issue in info.value.issues}
    assert {"generate_args.stream", "generate_args.model"} <= keys


def test_reserved_call_kwarg_is_a_bad_request(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config())
    with pytest.raises(BadRequestError, match="stream"):
        model(hello(model), stream=True)
    assert server.requests == []


# -- streaming ---------------------------------------------------------------------------
def test_stream_asks_for_usage_and_reports_it_last(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(generate_args={"temperature": 0.2}))
    chunks = list(model.stream(hello(model)))

    async def collect() -> list[Any]:
        return [chunk async for chunk in model.astream(hello(model), temperature=0.4)]

    achunks = asyncio.run(collect())
    for got in (chunks, achunks):
        assert "".join(chunk.text for chunk in got) == wire.reply_text
        assert got[-1].usage == Usage(9, 7, 16)
        assert all(chunk.usage is None for chunk in got[:-1])
        assert any(chunk.finish_reason == "stop" for chunk in got)
        assert all(isinstance(chunk.raw, dict) for chunk in got)
    sync_body, async_body = bodies(server, wire.chat_path)
    for body, temperature in ((sync_body, 0.2), (async_body, 0.4)):
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["temperature"] == temperature
    usage = model.usage
    assert (usage["calls"], usage["prompt_tokens"], usage["total_tokens"]) == (2, 18, 32)


def test_stream_options_can_be_left_out(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config())
    chunks = list(model.stream(hello(model), stream_options=None))
    assert "".join(chunk.text for chunk in chunks) == wire.reply_text
    assert chunks[-1].usage is None
    assert "stream_options" not in bodies(server, wire.chat_path)[0]


def test_stream_options_in_generate_args_are_for_streams_only(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(generate_args={"stream_options": {"include_obfuscation": False}}))
    model(hello(model))
    list(model.stream(hello(model)))
    call_body, stream_body = bodies(server, wire.chat_path)
    assert "stream_options" not in call_body
    assert stream_body["stream_options"] == {"include_usage": True, "include_obfuscation": False}


def test_broken_stream_keeps_the_partial_text(server: FakeServer, wire: Any, load: Loader) -> None:
    events = wire.chunks("one two three four", pieces=4)  # a role event, then the pieces
    sent = "".join(event["choices"][0]["delta"]["content"] for event in events[:3])
    assert sent and sent != "one two three four"
    server.route("POST", wire.chat_path, Reply.sse(events, done="[DONE]", cut_after=3))
    model = load(chat_config())
    received = []
    with pytest.raises(ServiceUnavailableError) as info:
        for chunk in model.stream(hello(model)):
            received.append(chunk.text)
    assert "".join(received) == info.value.partial_text == sent
    assert model.usage["errors"] == 1


def test_error_event_in_a_stream(server: FakeServer, wire: Any, load: Loader) -> None:
    events = wire.chunks("partial", usage=None, pieces=1)[:2]  # role, then all the text
    events.append({"error": {"message": "model overloaded", "type": "server_error"}})
    server.route("POST", wire.chat_path, Reply.sse(events, done="[DONE]"))
    model = load(chat_config())
    with pytest.raises(ProviderError, match="model overloaded") as info:
        list(model.stream(hello(model)))
    assert isinstance(info.value, ServiceUnavailableError)  # by the event's error type
    assert info.value.partial_text == "partial"
    assert len(server.requests) == 1  # not retried once text has arrived


def test_stream_events_of_compatible_servers(server: FakeServer, wire: Any, load: Loader) -> None:
    """Text sent as parts, usage named input/output_tokens, no index, extra keys: each
    chunk reads them as a payload would, and its ``raw`` is the event as sent."""
    events = [
        {"model": "served-name", "choices": [{"delta": {"content": [{"text": "Hel"}]}}]},
        {"choices": [{"index": 1, "delta": {"content": "ignored"}}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}], "vendor": 1},
        {"choices": [], "usage": {"input_tokens": 3, "output_tokens": 2}},
    ]
    server.route("POST", wire.chat_path, Reply.sse(events, done="[DONE]"))
    model = load(chat_config())

    async def collect() -> list[Any]:
        return [chunk async for chunk in model.astream(hello(model))]

    for chunks in (list(model.stream(hello(model))), asyncio.run(collect())):
        assert [chunk.text for chunk in chunks if chunk.text] == ["Hel", "lo"]
        assert [chunk.raw for chunk in chunks] == events
        assert chunks[0].model_name == "served-name"
        assert chunks[1].model_name == model.model_name
        assert [chunk.finish_reason for chunk in chunks] == [None, None, "stop", None]
        assert chunks[-1].usage == Usage(3, 2, 5)


def test_stream_that_is_not_sse_is_a_parse_error(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, Reply.json(wire.completion()))
    model = load(chat_config())
    with pytest.raises(ResponseParseError):
        list(model.stream(hello(model)))


# -- responses ---------------------------------------------------------------------------
def test_tool_calls_kept_in_raw(server: FakeServer, wire: Any, load: Loader) -> None:
    tool_calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    payload = wire.completion(None, tool_calls=tool_calls, finish_reason="tool_calls")
    server.route("POST", wire.chat_path, Reply.json(payload))
    model = load(chat_config())
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    response = model(hello(model), tools=tools)
    assert response.text == ""
    assert response.finish_reason == "tool_calls"
    assert response.raw["choices"][0]["message"]["tool_calls"] == tool_calls
    assert response.extra["tool_calls"] == tool_calls
    assert response.model_name == "gpt-4o-2024-08-06"
    assert bodies(server, wire.chat_path)[0]["tools"] == tools


@pytest.mark.parametrize(
    "reply",
    [
        Reply.html("<html>maintenance</html>", 200),
        Reply.json({"object": "chat.completion", "choices": []}),
        Reply.json(["not", "an", "object"]),
        Reply.empty(200),
    ],
    ids=["html", "no-choices", "list", "empty"],
)
def test_unusable_replies_are_parse_errors(
    reply: Reply, server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, reply)
    model = load(chat_config(retry={"max_retries": 2, "initial_delay": 0.01}))
    with pytest.raises(ResponseParseError):
        model(hello(model))
    assert len(server.requests) == 1  # parse errors are not retried


def test_html_error_page_is_service_unavailable(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, Reply.html("<h1>502 Bad Gateway</h1>", 502))
    model = load(chat_config())
    with pytest.raises(ServiceUnavailableError) as info:
        model(hello(model))
    assert info.value.status == 502
    assert "Bad Gateway" in str(info.value)


# -- embeddings --------------------------------------------------------------------------
def embedding_config(**overrides: Any) -> dict[str, Any]:
    return {
        "config_name": "embed",
        "model_type": "openai_embedding",
        "model_name": "text-embedding-3-small",
        "api_key": KEY,
        **overrides,
    }


def test_embeddings_are_floats_one_per_input_in_order(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.embeddings_path, wire.embeddings(shuffle=True))
    model = load(embedding_config())
    texts = ["first text", "second", "third one here"]
    response = model(texts)
    assert response.embedding == [wire.vector_of(text) for text in texts]
    assert response.usage == Usage(6, 0, 6)
    (body,) = bodies(server, wire.embeddings_path)
    assert body["encoding_format"] == "float" and body["input"] == texts
    single = asyncio.run(model.acall("solo"))
    assert single.embedding == [wire.vector_of("solo")]


def test_embedding_raw_is_the_whole_reply_with_vectors_of_its_own(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.embeddings_path, wire.embeddings(shuffle=True))
    response = load(embedding_config())(["first text", "second"])
    assert response.raw == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": wire.vector_of("second")},
            {"object": "embedding", "index": 0, "embedding": wire.vector_of("first text")},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    response.raw["data"][1]["embedding"].append(9.0)
    assert response.embedding == [wire.vector_of("first text"), wire.vector_of("second")]


def test_base64_embeddings_are_decoded(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.embeddings_path, wire.embeddings())
    model = load(embedding_config(generate_args={"encoding_format": "base64"}))
    response = model(["abc", "de"])
    assert response.embedding == [wire.vector_of("abc"), wire.vector_of("de")]
    assert bodies(server, wire.embeddings_path)[0]["encoding_format"] == "base64"


def test_embedding_format_gives_one_input_per_message(wire: Any, load: Loader) -> None:
    model = load(embedding_config())
    msgs = [Msg("a", "hello", role="user"), Msg("b", {"k": 1}, role="assistant")]
    assert model.format(msgs) == ["hello", '{"k": 1}']


def test_wrong_number_of_embeddings_is_a_parse_error(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    payload = {"object": "list", "data": [{"index": 0, "embedding": [0.1]}], "model": "m"}
    server.route("POST", wire.embeddings_path, Reply.json(payload))
    model = load(embedding_config())
    with pytest.raises(ResponseParseError, match="2 input"):
        model(["a", "b"])


# -- images ------------------------------------------------------------------------------
def dall_e_config(**overrides: Any) -> dict[str, Any]:
    return {
        "config_name": "paint",
        "model_type": "openai_dall_e",
        "model_name": "dall-e-3",
        "api_key": KEY,
        **overrides,
    }


def test_base64_images_are_saved_to_files(
    server: FakeServer, wire: Any, load: Loader, tmp_path: Path
) -> None:
    server.route("POST", wire.images_path, wire.images())
    model = load(dall_e_config(generate_args={"response_format": "b64_json"}))
    response = model("a red square", n=2, save_dir=str(tmp_path))
    assert len(response.image_urls) == 2 and len(set(response.image_urls)) == 2
    for url in response.image_urls:
        path = Path(url)
        assert path.parent == tmp_path and path.suffix == ".png"
        assert path.read_bytes() == wire.png_bytes
    (body,) = bodies(server, wire.images_path)
    assert body["response_format"] == "b64_json" and "save_dir" not in body
    again = asyncio.run(model.acall("a blue square", save_dir=str(tmp_path / "async")))
    assert Path(again.image_urls[0]).read_bytes() == wire.png_bytes


def test_base64_images_default_to_a_temporary_folder(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    from modelwire_openai.image import default_save_dir

    server.route("POST", wire.images_path, wire.images())
    model = load(dall_e_config(model_name="gpt-image-1"))
    response = model("a dot", response_format="b64_json")
    path = Path(response.image_urls[0])
    try:
        assert path.parent == default_save_dir().resolve()
        assert path.read_bytes() == wire.png_bytes
    finally:
        path.unlink(missing_ok=True)


def test_gpt_image_usage_is_reported_and_priced(server: FakeServer, load: Loader) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    payload = {
        "created": 1,
        "data": [{"b64_json": png}],
        "usage": {"input_tokens": 10, "output_tokens": 1000, "total_tokens": 1010},
    }
    server.route("POST", "/v1/images/generations", Reply.json(payload))
    model = load(dall_e_config(model_name="gpt-image-1", budget=1.0))
    response = model("a dot")
    assert response.usage == Usage(10, 1000, 1010)
    assert model.usage["cost_usd"] == pytest.approx((10 * 0.005 + 1000 * 0.04) / 1000)
    Path(response.image_urls[0]).unlink()


def test_dall_e_budget_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        ModelRegistry([dall_e_config(budget=1.0, pricing={"prompt": 0.1, "completion": 0.1})])
    assert "per image" in str(info.value)


# -- format ------------------------------------------------------------------------------
def test_format_roles_names_and_content(load: Loader) -> None:
    model = load(chat_config())
    messages = model.format(
        Msg("system", "Be brief.", role="system"),
        [Msg("Alice Smith", "Hi", role="user"), Msg("bot<1>", {"answer": 42}, role="assistant")],
        None,
    )
    assert messages == [
        {"role": "system", "content": "Be brief.", "name": "system"},
        {"role": "user", "content": "Hi", "name": "Alice_Smith"},
        {"role": "assistant", "content": '{"answer": 42}', "name": "bot_1"},
    ]


def test_format_images_by_url_and_by_path(load: Loader, tmp_path: Path, wire: Any) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(wire.png_bytes)
    model = load(chat_config(model_name="gpt-4o"))
    (message,) = model.format(
        Msg("user", "What is this?", role="user", url=["https://x.test/a.jpg", str(image)])
    )
    inline = "data:image/png;base64," + base64.b64encode(wire.png_bytes).decode()
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        {"type": "image_url", "image_url": {"url": inline}},
    ]
    (file_url,) = model.format(Msg("user", "", role="user", url=image.as_uri()))
    assert file_url["content"] == [{"type": "image_url", "image_url": {"url": inline}}]


def test_format_leaves_images_out_where_the_model_takes_none(
    load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    text_only = load(chat_config(model_name="gpt-3.5-turbo"))
    msg = Msg("user", "Look", role="user", url="https://x.test/a.jpg")
    assert text_only.format(msg)[0]["content"] == "Look"
    vision = load(chat_config(model_name="gpt-4o"))
    assistant = Msg("bot", "Here", role="assistant", url="https://x.test/a.jpg")
    assert vision.format(assistant)[0]["content"] == "Here"
    assert caplog.text.count("left out") == 2


def test_format_refuses_a_missing_image_file(load: Loader, tmp_path: Path) -> None:
    model = load(chat_config())
    with pytest.raises(BadRequestError, match=r"missing\.png"):
        model.format(Msg("user", "x", role="user", url=str(tmp_path / "missing.png")))


def test_images_reach_the_server(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config())
    model(model.format(Msg("user", "See", role="user", url="https://x.test/a.jpg")))
    content = bodies(server, wire.chat_path)[0]["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}


# -- retries, timeouts, errors -----------------------------------------------------------
def test_client_args_max_retries_drives_the_core_policy(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.error(503))
    model = load(
        chat_config(retry=None, client_args={"base_url": server.url + "/v1", "max_retries": 1})
    )
    assert model.retry_policy.max_retries == 1
    assert model.clients.sync.max_retries == 0
    with pytest.raises(ServiceUnavailableError):
        model(hello(model))
    retry_counts = [r.header("x-stainless-retry-count") for r in server.requests]
    assert retry_counts == ["0", "0"]  # two core attempts, no SDK retry


def test_retry_key_wins_over_client_args_max_retries(load: Loader, server: FakeServer) -> None:
    model = load(
        chat_config(
            retry={"max_retries": 4}, client_args={"base_url": server.url + "/v1", "max_retries": 1}
        )
    )
    assert model.retry_policy.max_retries == 4


def test_client_args_timeout_is_the_timeout_unless_set(load: Loader, server: FakeServer) -> None:
    base = server.url + "/v1"
    from_client_args = load(
        chat_config(timeout=None, client_args={"base_url": base, "timeout": 0.4})
    )
    assert from_client_args.timeout == 0.4
    core_wins = load(chat_config(timeout=2.0, client_args={"base_url": base, "timeout": 0.4}))
    assert core_wins.timeout == 2.0


def test_timeout_applies_to_the_sdk(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, Reply.json(wire.completion(), delay=2.0))
    model = load(chat_config(timeout=0.3))
    with pytest.raises(ModelTimeoutError):
        asyncio.run(model.acall(hello(model)))


def test_a_stream_idle_timeout_longer_than_timeout_is_kept(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    """httpx's own per-read timeout must not cut a wait that ``stream_idle_timeout``
    allows: chunks 0.5 s apart pass with ``timeout: 0.3, stream_idle_timeout: 2``."""
    server.route("POST", wire.chat_path, wire.chat("a b c", interval=0.5))
    model = load(chat_config(timeout=0.3, stream_idle_timeout=2.0))
    assert "".join(chunk.text for chunk in model.stream(hello(model))) == "a b c"


@pytest.mark.parametrize("use_async", [False, True], ids=["call", "acall"])
def test_environment_proxies_are_used_and_guarded(
    server: FakeServer, wire: Any, load: Loader, http_proxy: Callable[[str], None], use_async: bool
) -> None:
    """A client given a transport no longer reads HTTP_PROXY itself: the plugin mounts
    the environment's proxies, each on modelwire's transport (so the size cap holds)."""
    http_proxy(server.url)
    server.route("POST", wire.chat_path, wire.chat())
    config = chat_config(client_args={"base_url": "http://upstream.invalid/v1"})
    model = load(config)
    run = (lambda m: asyncio.run(m.acall(hello(m)))) if use_async else (lambda m: m(hello(m)))
    assert run(model).text == wire.reply_text
    (request,) = server.requests_to(wire.chat_path, "POST")
    assert request.header("host") == "upstream.invalid"  # it went through the proxy
    with pytest.raises(ResponseParseError, match="max_response_bytes=16"):
        run(load({**config, "max_response_bytes": 16}))


def test_rate_limit_retry_after_ms_header(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.error(429, headers={"retry-after-ms": "2500"}))
    model = load(chat_config())
    with pytest.raises(RateLimitError) as info:
        model(hello(model))
    assert info.value.retry_after == 2.5
    assert "scripted failure" in str(info.value)


def test_bad_request_message_comes_from_the_body(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.error(400, "max_tokens is too large"))
    model = load(chat_config(retry={"max_retries": 3}))
    with pytest.raises(BadRequestError, match="max_tokens is too large") as info:
        model(hello(model))
    assert info.value.status == 400
    cause = info.value.__cause__
    assert isinstance(cause, ScrubbedError)  # a scrubbed copy, safe in any traceback
    assert str(cause).startswith("openai.BadRequestError: ")
    assert type(cause.original).__module__.startswith("openai")
    assert len(server.requests) == 1


# -- budgets -----------------------------------------------------------------------------
def test_budget_uses_the_price_table(server: FakeServer, wire: Any, load: Loader) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config(model_name="gpt-4", budget=10.0))
    model(hello(model))
    assert model.usage["cost_usd"] == pytest.approx((9 * 0.03 + 7 * 0.06) / 1000)


def test_budget_for_an_unknown_model_needs_pricing() -> None:
    config = chat_config(model_name="my-finetune", budget=1.0)
    with pytest.raises(ConfigError, match="pricing"):
        ModelRegistry([config])
    ModelRegistry([{**config, "pricing": {"prompt": 0.001, "completion": 0.002}}])


def test_budget_stops_calls_once_spent(server: FakeServer, wire: Any, load: Loader) -> None:
    from modelwire.errors import BudgetExceededError

    server.route("POST", wire.chat_path, wire.chat())
    # gpt-4 costs $0.03/$0.06 per 1K tokens: a call may cost about $0.0012 with
    # max_tokens 10 (its worst case is reserved), and really costs $0.00069
    model = load(chat_config(model_name="gpt-4", budget=0.0015, generate_args={"max_tokens": 10}))
    model(hello(model))
    assert model.usage["cost_usd"] == pytest.approx(0.00069)
    with pytest.raises(BudgetExceededError, match="may cost up to"):
        model(hello(model))
    assert len(server.requests) == 1


# -- clients -----------------------------------------------------------------------------
def test_one_client_per_wrapper_and_per_event_loop(
    server: FakeServer, wire: Any, load: Loader
) -> None:
    server.route("POST", wire.chat_path, wire.chat())
    model = load(chat_config())
    model(hello(model))
    client = model.clients.sync
    model(hello(model))
    assert model.clients.sync is client

    async def twice() -> tuple[Any, Any]:
        await model.acall(hello(model))
        first = model.clients.async_
        await model.acall(hello(model))
        return first, model.clients.async_

    first, second = asyncio.run(twice())
    assert first is second
    # a second event loop works too (pooled connections of the first one are not reused)
    assert asyncio.run(model.acall(hello(model))).text == wire.reply_text
    assert len(server.requests) == 5


def test_parameter_cache_keeps_no_client_alive() -> None:
    """Request args are shaped by the SDK method's signature, cached per class function:
    ``with_raw_response`` wrappers are new for every client (one per event loop for
    async ones), and a cache keyed on them would keep every client alive."""
    import openai

    from modelwire_openai.client import _parameters, _parameters_of

    def methods() -> list[Any]:
        client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
        aclient = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
        return [
            client.chat.completions.with_raw_response.create,
            aclient.chat.completions.with_raw_response.create,
            client.embeddings.with_raw_response.create,
        ]

    first = [_parameters(method) for method in methods()]
    size = _parameters_of.cache_info().currsize
    for _ in range(5):
        assert [_parameters(method) for method in methods()] == first
    assert _parameters_of.cache_info().currsize == size
    assert {"messages", "temperature", "stream_options"} <= first[0]
    assert {"input", "encoding_format", "dimensions"} <= first[2]


def test_a_redirect_loop_is_an_error_not_retried(server: FakeServer, load: Loader) -> None:
    """A same-origin redirect to itself is followed until httpx gives up; that is no
    broken connection, so it is not retried as one."""
    server.route(
        "POST",
        "/v1/chat/completions",
        Reply.empty(307, headers={"Location": "/v1/chat/completions"}),
    )
    model = load(chat_config(retry={"max_retries": 2, "initial_delay": 0.01}))
    with pytest.raises(ProviderError, match="redirects in a loop") as info:
        model(hello(model))
    assert not isinstance(info.value, ServiceUnavailableError)
    assert len(server.requests) == 21  # the first request and 20 redirects: one attempt
