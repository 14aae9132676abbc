"""The Ollama routes through the official `ollama` SDK and modelwire's `ollama_*` configs.

The configs are the ones a user writes for a real Ollama, with `host` pointed at
this service (and the key as a header): they must work unmodified.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from modelwire import BadRequestError, ModelRegistry, Msg, ProviderError

MODEL = "smollm2"
EMBEDDER = "all-minilm-l6-v2"
QUESTION = "What is the capital of France?"
STORY = "Write a long story about a brave dragon."
GREEDY = {"temperature": 0, "num_predict": 10}


@pytest.fixture(scope="module")
def client(server: Any) -> Iterator[ollama.Client]:
    sdk = ollama.Client(host=server.base_url, headers=server.headers, timeout=120)
    yield sdk
    sdk._client.close()


def _durations_are_nanoseconds(reply: Any) -> None:
    for name in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(reply[name], int) and reply[name] > 0, name
    # Generation here takes at least milliseconds: nanoseconds, not seconds or ms.
    assert reply.total_duration > 1_000_000
    assert reply.total_duration >= reply.prompt_eval_duration + reply.eval_duration - 1_000_000


# -- /api/chat -----------------------------------------------------------------------------


def test_chat_answers_with_counts_and_durations(client: ollama.Client) -> None:
    reply = client.chat(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], options=GREEDY
    )
    assert reply.model == MODEL and reply.done is True
    assert reply.message.role == "assistant"
    assert "Paris" in (reply.message.content or "")
    assert reply.done_reason in ("stop", "length")
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count > 20  # templated
    assert reply.eval_count is not None and 0 < reply.eval_count <= 10
    assert reply.created_at and reply.created_at.endswith("Z")
    _durations_are_nanoseconds(reply)


def test_chat_streams_ndjson_by_default(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": STORY}]
    whole = client.chat(model=MODEL, messages=messages, options=GREEDY)
    parts = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert len(parts) > 2
    assert all(part.done is False for part in parts[:-1])
    assert all(part.eval_count is None for part in parts[:-1])
    assert parts[-1].done is True and parts[-1].done_reason == "length"
    assert "".join(part.message.content or "" for part in parts) == whole.message.content
    assert parts[-1].eval_count == whole.eval_count == 10
    assert parts[-1].prompt_eval_count == whole.prompt_eval_count


def test_raw_stream_framing(server: Any, http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "options": GREEDY}
    with http.stream("POST", "/api/chat", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert lines[-1]["done"] is True and "eval_count" in lines[-1]
    whole = http.post("/api/chat", json={**body, "stream": False})
    assert whole.headers["content-type"].startswith("application/json")
    assert whole.json()["message"]["content"] == "".join(
        line["message"]["content"] for line in lines
    )


def test_async_client_chat(server: Any) -> None:
    async def run() -> str:
        sdk = ollama.AsyncClient(host=server.base_url, headers=server.headers, timeout=120)
        reply = await sdk.chat(
            model=f"{MODEL}:latest",
            messages=[{"role": "user", "content": QUESTION}],
            options=GREEDY,
        )
        return reply.message.content or ""

    assert "Paris" in asyncio.run(run())


# -- options ---------------------------------------------------------------------------------


def test_options_num_predict_stop_and_seed(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": STORY}]
    short = client.chat(
        model=MODEL, messages=messages, options={"num_predict": 4, "temperature": 0}
    )
    assert short.eval_count == 4 and short.done_reason == "length"
    text = client.chat(model=MODEL, messages=messages, options={**GREEDY, "num_predict": 16})
    content = text.message.content or ""
    stop = content[content.index(" ", 4) :][:3]
    stopped = client.chat(
        model=MODEL, messages=messages, options={**GREEDY, "num_predict": 16, "stop": [stop]}
    )
    assert stopped.message.content == content[: content.index(stop)]
    assert stopped.done_reason == "stop"
    sampled = {"temperature": 0.9, "top_p": 0.9, "top_k": 40, "seed": 5, "num_predict": 8}
    first = client.chat(model=MODEL, messages=messages, options=sampled)
    again = client.chat(model=MODEL, messages=messages, options=sampled)
    assert first.message.content == again.message.content
    unlimited = client.generate(model=MODEL, prompt=QUESTION, options={"num_predict": -1})
    assert unlimited.eval_count is not None and unlimited.eval_count > 0


def test_format_is_validated_and_reported(server: Any, http: httpx.Client) -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "prompt": 'Reply with exactly this JSON and nothing else: {"city": "Paris"}',
        "stream": False,
        "options": {"temperature": 0, "num_predict": 24},
    }
    reply = http.post("/api/generate", json={**body, "format": "json"}).json()
    assert isinstance(reply["format_valid"], bool)
    text = reply["response"]
    try:
        json.loads(text)
        parses = True
    except ValueError:
        parses = False
    assert reply["format_valid"] is parses
    assert ("format_error" in reply) is not parses
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    checked = http.post("/api/generate", json={**body, "format": schema}).json()
    assert checked["format_valid"] is False  # the reply has no "n"
    assert "format_error" in checked
    assert "format_valid" not in http.post("/api/generate", json=body).json()
    bad = http.post("/api/generate", json={**body, "format": "xml"})
    assert bad.status_code == 400
    assert bad.json() == {"error": 'invalid format: expected "json" or a JSON schema object'}


# -- /api/generate ---------------------------------------------------------------------------------


def test_generate_applies_the_template_unless_raw(client: ollama.Client) -> None:
    templated = client.generate(model=MODEL, prompt=QUESTION, options=GREEDY)
    chat = client.chat(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], options=GREEDY
    )
    assert templated.response == chat.message.content
    assert templated.prompt_eval_count == chat.prompt_eval_count
    raw = client.generate(model=MODEL, prompt="The capital of France is", raw=True, options=GREEDY)
    assert raw.prompt_eval_count is not None and raw.prompt_eval_count < 10
    assert raw.response and raw.response.strip()
    with_system = client.generate(
        model=MODEL, prompt=QUESTION, system="Answer in one word.", options=GREEDY
    )
    assert with_system.prompt_eval_count != templated.prompt_eval_count
    _durations_are_nanoseconds(templated)


def test_generate_streams_and_an_empty_prompt_only_loads(client: ollama.Client) -> None:
    parts = list(client.generate(model=MODEL, prompt=STORY, options=GREEDY, stream=True))
    assert parts[-1].done is True and parts[-1].eval_count == 10
    assert "".join(part.response or "" for part in parts).strip()
    loaded = client.generate(model=MODEL)
    assert loaded.done is True and loaded.done_reason == "load" and loaded.response == ""


# -- embeddings --------------------------------------------------------------------------------


def test_embed_matches_the_openai_route(client: ollama.Client, http: httpx.Client) -> None:
    texts = ["A cat sits on the mat.", "Stock markets fell today."]
    reply = client.embed(model=EMBEDDER, input=texts)
    assert len(reply.embeddings) == 2 and {len(v) for v in reply.embeddings} == {384}
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count > 0
    assert isinstance(reply.total_duration, int) and reply.total_duration > 0
    openai_style = http.post(
        "/v1/embeddings", json={"input": texts, "encoding_format": "float"}
    ).json()
    for ours, theirs in zip(reply.embeddings, openai_style["data"], strict=True):
        assert all(
            math.isclose(a, b, abs_tol=1e-5) for a, b in zip(ours, theirs["embedding"], strict=True)
        )
    single = client.embed(model=EMBEDDER, input=texts[0])
    assert len(single.embeddings) == 1
    legacy = client.embeddings(model=EMBEDDER, prompt=texts[0])
    assert all(
        math.isclose(a, b, abs_tol=1e-5)
        for a, b in zip(legacy.embedding, single.embeddings[0], strict=True)
    )


def test_embed_truncate_false_refuses_long_input(client: ollama.Client) -> None:
    long_text = "word " * 600
    assert len(client.embed(model=EMBEDDER, input=long_text).embeddings[0]) == 384
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model=EMBEDDER, input=long_text, truncate=False)
    assert info.value.status_code == 400 and "truncate" in info.value.error


# -- model listing -----------------------------------------------------------------------------


def test_tags_show_ps_and_version(client: ollama.Client) -> None:
    models = {model.model: model for model in client.list().models}
    assert set(models) == {MODEL, EMBEDDER}
    chat_model = models[MODEL]
    assert chat_model.size is not None and chat_model.size > 10_000_000
    assert chat_model.details is not None and chat_model.details.format == "gguf"
    assert chat_model.details.family == "llama"
    assert chat_model.details.parameter_size == "135M"
    assert chat_model.digest and len(chat_model.digest) == 64
    shown = client.show(MODEL)
    assert shown.capabilities == ["completion"]
    assert shown.template and "im_start" in shown.template
    assert shown.modelinfo is not None and shown.modelinfo["general.parameter_count"] > 100e6
    assert client.show(EMBEDDER).capabilities == ["embedding"]
    assert {model.model for model in client.ps().models} == {MODEL, EMBEDDER}
    version = httpx.get(f"{client._client.base_url}/api/version", headers=client._client.headers)
    assert version.status_code == 200 and version.json()["version"]


def test_root_answers_liveness_probes_without_a_key(server: Any) -> None:
    for method in ("GET", "HEAD"):
        reply = httpx.request(method, f"{server.base_url}/")
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/plain")
    assert "running" in httpx.get(f"{server.base_url}/").text
    assert httpx.get(f"{server.base_url}/api/tags").status_code == 401  # only / is open


# -- errors: Ollama's shape and status ----------------------------------------------------


HI = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("method", "kwargs", "status", "fragment"),
    [
        ("chat", {"model": "llama3", "messages": HI}, 404, 'model "llama3" not found'),
        ("chat", {"model": EMBEDDER, "messages": HI}, 400, "does not support chat"),
        ("embed", {"model": MODEL, "input": "x"}, 400, "does not support embeddings"),
        ("show", {"model": "nope"}, 404, 'model "nope" not found'),
        ("generate", {"model": MODEL, "prompt": "x", "images": [b"\x89PNG"]}, 400, "text-only"),
        ("chat", {"model": MODEL, "messages": HI, "think": True}, 400, "thinking"),
        ("generate", {"model": MODEL, "prompt": "x", "options": {"mirostat": 2}}, 400, "mirostat"),
        (
            "generate",
            {"model": MODEL, "options": {"num_predict": 10**4}, "prompt": "x"},
            400,
            "cap",
        ),
        (
            "generate",
            {"model": MODEL, "options": {"temperature": 1e-300}, "prompt": "x"},
            400,
            "0.01",
        ),
        ("generate", {"model": MODEL, "prompt": "x", "template": "{{ .Prompt }}"}, 400, "template"),
    ],
)
def test_errors_have_ollamas_shape(
    client: ollama.Client, method: str, kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        getattr(client, method)(**kwargs)
    assert info.value.status_code == status, info.value
    assert fragment in info.value.error


def test_raw_http_errors_are_error_strings(server: Any, http: httpx.Client) -> None:
    for reply, status in [
        (http.post("/api/chat", content=b"{nope"), 400),
        (http.post("/api/generate", content=b'{"model": "smollm2", "prompt": "\\ud800"}'), 400),
        (http.post("/api/chat", json={"messages": []}), 400),
        (http.post("/api/pull", json={"model": MODEL}), 404),
        (http.get("/api/chat"), 405),
        (httpx.get(f"{server.base_url}/api/tags"), 401),  # no key
        (http.post("/api/generate", json={"model": MODEL, "prompt": "x" * 40_000}), 413),
    ]:
        assert reply.status_code == status, reply.text
        body = reply.json()
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]


# -- modelwire's ollama_* configs, unmodified but for host -------------------------------------


def _registry(server: Any) -> ModelRegistry:
    common = {"host": server.base_url, "headers": {"Authorization": f"Bearer {server.api_key}"}}
    return ModelRegistry(
        [
            {
                "config_name": "local_ollama_chat",
                "model_type": "ollama_chat",
                "model": MODEL,
                "options": {"temperature": 0, "num_predict": 12},
                **common,
            },
            {
                "config_name": "local_ollama_generate",
                "model_type": "ollama_generate",
                "model": MODEL,
                "options": {"temperature": 0, "num_predict": 12},
                **common,
            },
            {
                "config_name": "local_ollama_embedding",
                "model_type": "ollama_embedding",
                "model": EMBEDDER,
                **common,
            },
            {
                "config_name": "missing_model",
                "model_type": "ollama_chat",
                "model": "llama3",
                **common,
            },
        ]
    )


def test_modelwire_ollama_chat_config(server: Any) -> None:
    model = _registry(server).load_model("local_ollama_chat")
    messages = model.format(Msg("user", QUESTION, role="user"))
    response = model(messages)
    assert "Paris" in response.text
    assert response.usage is not None and 0 < response.usage.completion_tokens <= 12
    assert response.finish_reason in ("stop", "length")
    chunks = list(model.stream(messages))
    assert "".join(chunk.text for chunk in chunks) == response.text
    assert chunks[-1].usage == response.usage
    assert asyncio.run(model.acall(messages)).text == response.text


def test_modelwire_ollama_generate_and_embedding_configs(server: Any) -> None:
    registry = _registry(server)
    generated = registry.load_model("local_ollama_generate")(QUESTION)
    assert "Paris" in generated.text
    raw = registry.load_model("local_ollama_generate")("The capital of France is", raw=True)
    assert raw.usage is not None and raw.usage.prompt_tokens < 10
    embedded = registry.load_model("local_ollama_embedding")(["a cat", "a dog"])
    assert embedded.embedding is not None and [len(v) for v in embedded.embedding] == [384, 384]


def test_modelwire_sees_a_missing_model_and_a_bad_option(server: Any) -> None:
    registry = _registry(server)
    missing = registry.load_model("missing_model")
    with pytest.raises(ProviderError, match="not available on this Ollama server") as info:
        missing(missing.format(Msg("user", "Hi", role="user")))
    assert info.value.status == 404
    model = registry.load_model("local_ollama_generate")
    with pytest.raises(BadRequestError, match="images"):
        model("x", images=["data:image/png;base64,iVBORw0KGgo="])
