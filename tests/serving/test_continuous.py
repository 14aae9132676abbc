"""The continuous scheduler (the default) on the real bundled model, through HTTP.

The session's server runs `--scheduler continuous` (the default) with up to 8
requests in flight. Each test here fails under static batches or under a
scheduler that applies one request's settings to the whole batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

STORY = [{"role": "user", "content": "Write a long story about a brave dragon."}]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
PROMPTS = [
    STORY,
    QUESTION,
    [{"role": "user", "content": "Name three colors and one fruit."}],
    [{"role": "user", "content": "Why is the sky blue?"}],
]


def llm(http: httpx.Client, **body: Any) -> dict[str, Any]:
    reply = http.post("/llm/", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def health(http: httpx.Client) -> dict[str, Any]:
    return http.get("/health").json()


def sse_payloads(lines: Any) -> Any:
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[len("data: ") :])


def test_health_says_continuous(http: httpx.Client) -> None:
    info = health(http)
    assert info["scheduler"] == "continuous"
    assert info["max_batch_size"] == 8
    # The engine's shape, defaults of serving/src/modelwire_serving/continuous.py.
    assert info["engine"]["max_batch_tokens"] == 2048
    assert info["engine"]["kv_page_size"] == 32


@pytest.mark.parametrize(
    ("flag", "value", "least"), [("--max-batch-tokens", "0", 1), ("--kv-page-size", "2", 4)]
)
def test_engine_flags_out_of_range_fail_before_loading(flag: str, value: str, least: int) -> None:
    command = [sys.executable, "-m", "modelwire_serving", "--model_name_or_path"]
    command += ["bundled:smollm2", "--port", "0", flag, value]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert f"{flag} must be at least {least}, got {value}" in done.stderr
    assert "Loading model" not in done.stdout


def test_a_short_request_sent_mid_generation_finishes_first(
    server: Any, http: httpx.Client
) -> None:
    # Under static batches the short request waits for the long one's batch to end.
    finished: dict[str, float] = {}
    started = threading.Event()

    def long_stream() -> None:
        body = {"messages": STORY, "max_tokens": server.max_new_tokens, "stream": True}
        with (
            httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as c,
            c.stream("POST", "/v1/chat/completions", json=body) as reply,
        ):
            deltas = 0
            for payload in sse_payloads(reply.iter_lines()):
                if payload["choices"] and payload["choices"][0]["delta"].get("content"):
                    deltas += 1
                    if deltas == 3:
                        started.set()  # mid-generation: tokens are coming
        finished["long"] = time.monotonic()

    thread = threading.Thread(target=long_stream)
    thread.start()
    assert started.wait(120), "the long request produced no tokens"
    short = llm(http, inputs=QUESTION, max_new_tokens=2)
    finished["short"] = time.monotonic()
    thread.join(120)
    assert short["usage"]["completion_tokens"] == 2
    assert "long" in finished and finished["short"] < finished["long"]


def test_a_client_that_disconnects_frees_its_slot(server: Any, http: httpx.Client) -> None:
    before = health(http)
    body = {"messages": STORY, "max_tokens": server.max_new_tokens, "stream": True}
    with (
        httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as reply,
    ):
        for payload in sse_payloads(reply.iter_lines()):
            if payload["choices"] and payload["choices"][0]["delta"].get("content"):
                break  # the first token arrived: hang up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = health(http)
        if after["cancelled"] > before["cancelled"] and after["running"] == 0:
            break
        time.sleep(0.1)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["running"] == 0


def test_stop_strings_cut_a_stream_and_end_the_request(http: httpx.Client) -> None:
    full = llm(http, inputs=STORY, max_new_tokens=16)["response"]
    space = full.index(" ", 6)
    stop = full[space : space + 3]
    body = {"messages": STORY, "max_tokens": 16, "stream": True, "stop": [stop]}
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        payloads = list(sse_payloads(reply.iter_lines()))
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"])
    finish = [p["choices"][0]["finish_reason"] for p in payloads if p["choices"]][-1]
    assert text == full[: full.index(stop)]
    assert finish == "stop"
    assert health(http)["running"] == 0


def test_mixed_settings_in_one_batch_each_hold(server: Any, http: httpx.Client) -> None:
    alone = {i: llm(http, inputs=PROMPTS[i], max_new_tokens=10)["response"] for i in (0, 1)}
    before = health(http)
    bodies = [
        {"inputs": PROMPTS[0], "max_new_tokens": 10},  # greedy
        {"inputs": PROMPTS[1], "max_new_tokens": 10, "temperature": 0.8, "top_k": 1},  # = greedy
        {"inputs": PROMPTS[2], "max_new_tokens": 3, "temperature": 1.2, "top_p": 0.9},
        {"inputs": PROMPTS[3], "max_new_tokens": 7, "temperature": 0.7, "top_k": 40},
    ]
    replies: list[dict[str, Any]] = [{} for _ in bodies]
    barrier = threading.Barrier(len(bodies))

    def call(index: int) -> None:
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as c:
            barrier.wait()
            replies[index] = c.post("/llm/", json=bodies[index]).json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    after = health(http)
    assert after["largest_batch"] >= 2
    assert after["fallback_requests"] == before["fallback_requests"]  # all on the engine
    # Greedy rows stay greedy beside sampling rows, and top-k 1 samples the arg-max.
    assert replies[0]["response"] == alone[0]
    assert replies[1]["response"] == alone[1]
    # Each row stops at its own limit.
    assert replies[2]["usage"]["completion_tokens"] <= 3
    assert replies[3]["usage"]["completion_tokens"] <= 7


def test_greedy_answers_match_the_static_batches(server: Any, http: httpx.Client) -> None:
    # repetition_penalty (even 1.0, a no-op) sends a request to the static worker.
    before = health(http)
    for messages in PROMPTS:
        continuous = llm(http, inputs=messages, max_new_tokens=server.max_new_tokens)
        static = llm(
            http, inputs=messages, max_new_tokens=server.max_new_tokens, repetition_penalty=1.0
        )
        assert continuous["response"] == static["response"]
        assert continuous["usage"] == static["usage"]
    after = health(http)
    reasons_before = before["fallback_reasons"].get("repetition_penalty", 0)
    assert after["fallback_reasons"]["repetition_penalty"] == reasons_before + len(PROMPTS)


def test_repetition_penalty_goes_to_the_static_worker_and_says_so(
    server: Any, http: httpx.Client
) -> None:
    before = health(http)
    plain = llm(http, inputs=STORY, max_new_tokens=server.max_new_tokens)["response"]
    penalized = llm(
        http, inputs=STORY, max_new_tokens=server.max_new_tokens, repetition_penalty=1.5
    )
    after = health(http)
    assert after["fallback_requests"] == before["fallback_requests"] + 1
    assert penalized["response"] and penalized["response"] != plain  # the penalty applied
    assert "a request with repetition_penalty is served by a static batch" in server.log()
    assert "Scheduler: continuous batching" in server.log()


def test_a_seeded_sample_is_reproducible_while_the_engine_samples(
    server: Any, http: httpx.Client
) -> None:
    # Seeded requests run on the static worker; torch's random generator is shared with
    # the engine, so the engine must not sample while a seeded batch does.
    body = {"inputs": STORY, "max_new_tokens": 12, "temperature": 0.9, "top_p": 0.95, "seed": 5}
    alone = llm(http, **body)["response"]
    stop = threading.Event()

    def keep_the_engine_busy() -> None:
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as c:
            while not stop.is_set():
                c.post("/llm/", json={"inputs": QUESTION, "max_new_tokens": 8, "temperature": 1.0})

    busy = [threading.Thread(target=keep_the_engine_busy) for _ in range(2)]
    for thread in busy:
        thread.start()
    try:
        time.sleep(0.5)
        assert [llm(http, **body)["response"] for _ in range(2)] == [alone, alone]
    finally:
        stop.set()
        for thread in busy:
            thread.join(60)
