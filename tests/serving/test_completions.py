"""POST /v1/completions through the official `openai` SDK (`client.completions.create`).

The raw route: the prompt is continued as it is, never put through the chat
template, as vLLM and `transformers serve` users expect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

PROMPT = "The capital of France is"
STORY = "Once upon a time, in a land far away,"


@pytest.fixture(scope="module")
def client(server: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120
    ) as sdk:
        yield sdk


def test_completion_continues_the_raw_prompt(client: openai.OpenAI, http: httpx.Client) -> None:
    reply = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=8, temperature=0)
    assert reply.object == "text_completion"
    assert reply.id.startswith("cmpl-")
    assert reply.model == "smollm2"
    (choice,) = reply.choices
    assert choice.index == 0 and choice.text.strip()
    assert "Paris" in choice.text
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    # The same tokens as the seed's raw /llm/ prompt: no chat template around it.
    raw = http.post("/llm/", json={"inputs": PROMPT, "raw": True, "max_new_tokens": 8}).json()
    assert reply.usage.prompt_tokens == raw["n_token_prompt"]
    assert choice.text == raw["response"]


def test_default_max_tokens_is_openais_16(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="smollm2", prompt=STORY, temperature=0)
    assert reply.usage is not None and reply.usage.completion_tokens == 16
    assert reply.choices[0].finish_reason == "length"


def test_streamed_completion_matches_the_whole_one(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="smollm2", prompt=STORY, max_tokens=10, temperature=0)
    stream = client.completions.create(
        model="smollm2",
        prompt=STORY,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finishes: list[str] = []
    usage = None
    for chunk in stream:
        assert chunk.object == "text_completion"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            pieces.append(choice.text)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert len([piece for piece in pieces if piece]) > 1  # token by token
    assert "".join(pieces) == whole.choices[0].text
    assert finishes == [whole.choices[0].finish_reason] == ["length"]
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens == 10


def test_raw_sse_framing_without_usage(http: httpx.Client) -> None:
    body = {"model": "smollm2", "prompt": PROMPT, "max_tokens": 3, "stream": True}
    with http.stream("POST", "/v1/completions", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line for line in reply.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stop_string_cuts_the_text(client: openai.OpenAI) -> None:
    first = client.completions.create(model="m", prompt=STORY, max_tokens=16, temperature=0)
    text = first.choices[0].text
    space = text.index(" ", 4)
    stop = text[space : space + 3]
    stopped = client.completions.create(
        model="m", prompt=STORY, max_tokens=16, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_seeded_sampling_is_reproducible(client: openai.OpenAI) -> None:
    settings: dict[str, Any] = {"max_tokens": 8, "temperature": 0.9, "top_p": 0.95, "seed": 11}
    first = client.completions.create(model="m", prompt=STORY, **settings)
    second = client.completions.create(model="m", prompt=STORY, **settings)
    assert first.choices[0].text == second.choices[0].text


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"prompt": ["one", "two"]}, "only one prompt"),
        ({"prompt": [1, 2, 3]}, "token-id prompts are not supported"),
        ({"prompt": ""}, "must not be empty"),
        ({"prompt": PROMPT, "n": 2}, "n=1"),
        ({"prompt": PROMPT, "best_of": 3}, "best_of=1"),
        ({"prompt": PROMPT, "echo": True}, "'echo'"),
        ({"prompt": PROMPT, "suffix": "end"}, "'suffix'"),
        ({"prompt": PROMPT, "logprobs": 2}, "'logprobs'"),
        ({"prompt": PROMPT, "max_tokens": 10_000}, "--max-new-tokens"),
        ({"prompt": PROMPT, "temperature": 1e-300}, "at least 0.01"),
        ({"prompt": PROMPT, "frequency_penalty": 1.0}, "repetition_penalty"),
    ],
)
def test_bad_completion_requests_are_400s(
    client: openai.OpenAI, settings: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="m", **settings)
    assert fragment in info.value.message


def test_missing_prompt_and_unknown_parameters(http: httpx.Client) -> None:
    reply = http.post("/v1/completions", json={"model": "m"})
    assert reply.status_code == 400 and "missing 'prompt'" in reply.json()["error"]["message"]
    reply = http.post("/v1/completions", json={"prompt": "x", "messages": []})
    assert reply.status_code == 400 and "'messages'" in reply.json()["error"]["message"]
