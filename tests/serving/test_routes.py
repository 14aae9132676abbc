"""Every route of the real service on the real small model.

Raw HTTP for the seed's /llm/ and for SSE framing; the official `openai` SDK for
the /v1 routes (if the SDK can call it, OpenAI-compatible clients can).
Generation is greedy and short so the module stays fast on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest.mock import ANY

import httpx
import openai
import pytest

from modelwire_serving.app import create_app
from modelwire_serving.jobs import Completion, Job
from modelwire_serving.prompts import Prompter
from modelwire_serving.service import Limits, Service

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a brave dragon."}]


@pytest.fixture(scope="module")
def client(server: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120
    ) as sdk:
        yield sdk


def llm(http: httpx.Client, **body: Any) -> dict[str, Any]:
    reply = http.post("/llm/", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


# -- /health and /v1/models --------------------------------------------------------------


def test_health_needs_no_key_and_describes_the_server(server: Any) -> None:
    reply = httpx.get(f"{server.base_url}/health")
    assert reply.status_code == 200
    health = reply.json()
    assert health["status"] == "ok"
    assert health["model"] == "smollm2"
    assert health["embedding_model"] == "all-minilm-l6-v2"
    assert health["device"] == "cpu"


def test_models_lists_the_chat_and_embedding_models(client: openai.OpenAI) -> None:
    assert {model.id for model in client.models.list()} == {"smollm2", "all-minilm-l6-v2"}


# -- the seed's POST /llm/ -------------------------------------------------------------------


def test_llm_string_prompt_has_the_seed_reply_shape(http: httpx.Client) -> None:
    reply = llm(http, inputs="The capital of France is", max_new_tokens=8)
    text = reply["response"]
    assert isinstance(text, str) and text.strip()
    assert reply["data"]["response"]["choices"][0]["message"]["content"] == text
    usage = reply["usage"]
    assert usage["prompt_tokens"] == reply["n_token_prompt"] > 0
    assert 0 < usage["completion_tokens"] == reply["n_token_response"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", reply["timestamp"])
    assert reply["model"] == "smollm2"


def test_llm_messages_go_through_the_chat_template(http: httpx.Client) -> None:
    templated = llm(http, inputs=QUESTION, max_new_tokens=8)
    # SmolLM2's template adds a system prompt and role markers around the question.
    assert templated["n_token_prompt"] > 20
    assert "Paris" in templated["response"]
    aliased = llm(http, messages=QUESTION, max_new_tokens=8)
    assert aliased["response"] == templated["response"]


def test_llm_string_prompt_is_one_user_turn_unless_raw(http: httpx.Client) -> None:
    question = QUESTION[0]["content"]
    templated = llm(http, inputs=question, max_new_tokens=8)
    as_messages = llm(http, inputs=QUESTION, max_new_tokens=8)
    assert templated["response"] == as_messages["response"]
    assert templated["n_token_prompt"] == as_messages["n_token_prompt"] > 20
    assert "Paris" in templated["response"]
    raw = llm(http, inputs=question, max_new_tokens=8, raw=True)
    assert raw["n_token_prompt"] < 12  # the seed's tokenizer(prompt): the question alone
    assert llm(http, inputs=question, max_new_tokens=8, raw=False) == {
        **templated,
        "timestamp": ANY,
        "data": ANY,
    }


def test_raw_prompts_flag_and_per_request_raw() -> None:
    """`create_app(raw_prompts=...)` (the --raw-prompts flag) and "raw" decide what the model sees.

    A stub worker echoes the prompt it was given, so no second model is loaded.
    """
    for server_raw, body_raw, seen in [
        (False, None, "<user>hi</user><assistant>"),
        (False, True, "hi"),
        (True, None, "hi"),
        (True, False, "<user>hi</user><assistant>"),
    ]:
        app = create_app(_echo_service(), raw_prompts=server_raw)
        body: dict[str, Any] = {"inputs": "hi", **({} if body_raw is None else {"raw": body_raw})}
        reply = app.test_client().post("/llm/", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.get_json()["response"] == seen, (server_raw, body_raw)
        health = app.test_client().get("/health").get_json()
        assert health["string_prompts"] == ("raw" if server_raw else "chat_template")


class _EchoTokenizer:
    """Characters as token ids, and a visible chat template."""

    chat_template = "{{ messages }}"

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
        return SimpleNamespace(input_ids=[ord(c) for c in text])

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
        return (
            "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"
        )

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


class _EchoWorker:
    """Finishes every job at once with its own prompt as the text."""

    alive = True
    queued = 0
    failure = None
    max_batch_size = 1
    stats = SimpleNamespace(requests=0, batches=0, largest_batch=0, batch_sizes={})

    def __init__(self, prompter: Prompter) -> None:
        self.prompter = prompter

    def submit(self, job: Job) -> None:
        text = self.prompter.decode(job.prompt_ids)
        job.events.put(("done", Completion(text, len(job.prompt_ids), 0, "stop")))


def _echo_service() -> Service:
    prompter = Prompter(_EchoTokenizer())
    return Service(
        model_name="echo",
        prompter=prompter,
        worker=_EchoWorker(prompter),  # type: ignore[arg-type]
        limits=Limits(),
        context_length=4096,
        default_do_sample=False,
        device="cpu",
    )


def test_llm_length_limited_reply_counts_exactly_the_limit(http: httpx.Client) -> None:
    reply = llm(http, inputs=STORY, max_new_tokens=5)
    assert reply["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 5


def test_llm_seed_max_length_bounds_prompt_plus_answer(http: httpx.Client) -> None:
    prompt_tokens = llm(http, inputs=STORY, max_new_tokens=1)["n_token_prompt"]
    reply = llm(http, inputs=STORY, max_length=prompt_tokens + 6, temperature=0.0)
    assert reply["usage"]["completion_tokens"] == 6
    assert reply["usage"]["total_tokens"] == prompt_tokens + 6


def test_llm_without_a_limit_uses_the_server_cap(server: Any, http: httpx.Client) -> None:
    reply = llm(http, inputs=STORY)
    assert 0 < reply["usage"]["completion_tokens"] <= server.max_new_tokens


def test_greedy_is_deterministic_and_stop_strings_cut_the_text(http: httpx.Client) -> None:
    first = llm(http, inputs=STORY, max_new_tokens=16)["response"]
    assert llm(http, inputs=STORY, max_new_tokens=16)["response"] == first
    space = first.index(" ", 4)
    stop = first[space : space + 3]
    expected = first[: first.index(stop)]
    stopped = llm(http, inputs=STORY, max_new_tokens=16, stop=[stop])
    assert stopped["response"] == expected
    assert stopped["finish_reason"] == "stop"


def test_sampling_with_a_seed_is_reproducible(http: httpx.Client) -> None:
    body = {"inputs": STORY, "max_new_tokens": 8, "temperature": 0.9, "top_p": 0.95, "seed": 7}
    assert llm(http, **body)["response"] == llm(http, **body)["response"]


# -- dynamic batching --------------------------------------------------------------------------


def test_concurrent_requests_are_batched(server: Any, http: httpx.Client) -> None:
    before = http.get("/health").json()
    prompts = [QUESTION] * 3 + [
        [{"role": "user", "content": "Name a color."}],
        [{"role": "user", "content": "Say hello in French, then explain why greetings matter."}],
        "Once upon a time",
    ]
    replies: list[dict[str, Any]] = [{} for _ in prompts]
    barrier = threading.Barrier(len(prompts))

    def call(index: int) -> None:
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as c:
            barrier.wait()
            replies[index] = c.post(
                "/llm/", json={"inputs": prompts[index], "max_new_tokens": 12}
            ).json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    after = http.get("/health").json()
    assert after["requests"] - before["requests"] == len(prompts)
    assert after["batches"] - before["batches"] < len(prompts)  # some requests shared a batch
    assert after["largest_batch"] >= 2
    for reply in replies:
        assert reply["response"].strip(), reply
        assert 0 < reply["usage"]["completion_tokens"] <= 12
        assert reply["usage"]["prompt_tokens"] > 0
    # Identical prompts in one batch get identical greedy answers.
    assert replies[0]["response"] == replies[1]["response"] == replies[2]["response"]
    assert "Paris" in replies[0]["response"]


# -- OpenAI chat completions ----------------------------------------------------------------------


def test_chat_completion_with_the_openai_sdk(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=12, temperature=0
    )
    assert reply.object == "chat.completion"
    assert reply.model == "smollm2"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert 0 < reply.usage.completion_tokens <= 12


def test_streamed_chat_matches_the_non_streamed_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="smollm2", messages=STORY, max_tokens=10, temperature=0
    )
    stream = client.chat.completions.create(
        model="smollm2",
        messages=STORY,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish_reasons: list[str] = []
    usage = None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert len([piece for piece in pieces if piece]) > 1  # really streamed, token by token
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish_reasons == [whole.choices[0].finish_reason]
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens == 10


def test_raw_sse_framing(http: httpx.Client) -> None:
    body = {"model": "smollm2", "messages": QUESTION, "max_tokens": 4, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line for line in reply.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "usage" not in chunks[-1]  # include_usage was not asked for


# -- OpenAI embeddings --------------------------------------------------------------------------


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_with_the_openai_sdk(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; ask for floats explicitly too.
    single = client.embeddings.create(model="all-minilm-l6-v2", input="A cat sits on the mat.")
    assert len(single.data) == 1 and len(single.data[0].embedding) == 384
    assert math.isclose(math.fsum(x * x for x in single.data[0].embedding), 1.0, rel_tol=1e-4)
    assert single.usage.prompt_tokens > 0

    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell today."]
    floats = client.embeddings.create(model="any", input=texts, encoding_format="float")
    vectors = [item.embedding for item in floats.data]
    assert [item.index for item in floats.data] == [0, 1, 2]
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.2
    assert all(
        math.isclose(a, b, abs_tol=1e-5)
        for a, b in zip(vectors[0], single.data[0].embedding, strict=True)
    )
