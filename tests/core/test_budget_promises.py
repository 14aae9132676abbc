"""Budgets cannot hang, overspend or be bypassed: every exit from a call releases what it
reserved and writes its record; calls reserve their worst case; nothing is free."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelwire import BudgetExceededError, ModelRegistry, ResponseParseError
from modelwire import records as records_module
from modelwire.testing import FakeServer, Reply, Request

PRICE = (0.001, 0.002)  # reverse-1's USD per 1K (prompt, completion) tokens


def cost(prompt: int, completion: int) -> float:
    return (prompt * PRICE[0] + completion * PRICE[1]) / 1000


def answer(request: Request) -> Reply:
    """Reverses the text; usage counts one token per byte, as the example plugin assumes."""
    body = request.json()
    size = len(body["text"].encode())
    usage = {"input_tokens": size, "output_tokens": size}
    if body.get("stream"):
        text = body["text"][::-1]
        return Reply.ndjson([{"delta": ch} for ch in text] + [{"delta": "", "usage": usage}])
    return Reply.json({"output": body["text"][::-1], "usage": usage})


def load(server: FakeServer, **params: Any) -> Any:
    config = {
        "config_name": "rev",
        "model_type": "reverse_echo",
        "model_name": "reverse-1",
        "base_url": server.url,
        "retry": {"max_retries": 3, "initial_delay": 0.01, "max_delay": 5.0},
        **params,
    }
    return ModelRegistry([config]).load_model("rev")


@pytest.fixture
def records(tmp_path: Path) -> Any:
    path = tmp_path / "records.jsonl"
    records_module.configure(path)
    yield lambda: [json.loads(line) for line in path.read_text().splitlines()]
    records_module.configure(None)


def cheap_and_slow(delay: float) -> Reply:
    """A reply that takes ``delay`` seconds and costs less than was reserved for it."""
    usage = {"input_tokens": 1, "output_tokens": 1}
    return Reply.json({"output": "edcba", "usage": usage}, delay=delay)


def retry_later(seconds: float) -> Reply:
    return Reply.error(429, headers={"Retry-After": str(seconds)})


def assert_released(model: Any) -> None:
    assert model.tracker.reserved == 0
    assert model.tracker._in_flight == 0


# -- 1. every exit releases its reservation and writes its record ------------------------------
def test_cancelled_while_waiting_to_retry_releases_and_records(
    server: FakeServer, records: Any
) -> None:
    server.once("POST", "/v1/reverse", retry_later(3))
    server.route("POST", "/v1/reverse", answer)
    model = load(server, budget=1.0)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(model.acall("abc"), 0.3)
        assert_released(model)
        # the next call is admitted at once (it used to wait for ever)
        response = await asyncio.wait_for(model.acall("xyz"), 2.0)
        assert response.text == "zyx"

    asyncio.run(main())
    first, second = records()
    assert first["status"] == "error"
    assert "CancelledError" in first["error"]["message"]
    assert second["status"] == "ok"


def test_keyboard_interrupt_while_waiting_to_retry_releases_and_records(
    server: FakeServer, records: Any
) -> None:
    server.once("POST", "/v1/reverse", retry_later(3))
    server.route("POST", "/v1/reverse", answer)
    model = load(server, budget=1.0)
    # Python's Ctrl+C handler, whatever this process inherited (a background job
    # starts with SIGINT ignored, and then os.kill would do nothing).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl+C
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            model("abc")
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - started < 2.0
    assert_released(model)
    assert model("xyz").text == "zyx"
    first, second = records()
    assert first["status"] == "error" and "KeyboardInterrupt" in first["error"]["message"]
    assert second["status"] == "ok"


def test_stream_closed_early_is_booked_and_recorded(server: FakeServer, records: Any) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server, budget=1.0)
    chunks = model.stream("abcdef")
    assert next(chunks).text == "f"
    chunks.close()
    assert_released(model)
    # no usage arrived: the stream is charged what it reserved (6 bytes each way)
    assert model.usage["cost_usd"] == pytest.approx(cost(6, 6))
    (record,) = records()
    assert record["status"] == "ok"
    assert record["response"]["finish_reason"] == "cancelled"


def test_astream_closed_early_is_booked(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server, budget=1.0)

    async def main() -> None:
        chunks = model.astream("abcdef")
        assert (await anext(chunks)).text == "f"
        await chunks.aclose()

    asyncio.run(main())
    assert_released(model)
    assert model.usage["cost_usd"] == pytest.approx(cost(6, 6))


def test_async_waiter_is_woken_by_a_settlement_in_another_thread(server: FakeServer) -> None:
    # one slow call holds the budget; an async call waits for it and is admitted as soon
    # as it settles (woken by the settlement, not by polling)
    server.once("POST", "/v1/reverse", cheap_and_slow(0.5))
    server.route("POST", "/v1/reverse", answer)
    # "abcde" reserves cost(5, 5): "ab" (cost(2, 2)) fits only once it has settled
    model = load(server, budget=cost(5, 5) * 1.2)
    slow = ThreadPoolExecutor(1).submit(model, "abcde")
    time.sleep(0.1)

    async def main() -> float:
        started = time.perf_counter()
        response = await asyncio.wait_for(model.acall("ab"), 3.0)
        assert response.text == "ba"
        return time.perf_counter() - started

    waited = asyncio.run(main())
    assert slow.result().text == "edcba"
    assert 0.25 < waited < 1.5
    assert_released(model)


def test_cancelled_while_waiting_for_admission_leaves_nothing_behind(server: FakeServer) -> None:
    server.once("POST", "/v1/reverse", cheap_and_slow(0.6))
    server.route("POST", "/v1/reverse", answer)
    # "abcde" reserves cost(5, 5): "ab" (cost(2, 2)) fits only once it has settled
    model = load(server, budget=cost(5, 5) * 1.2)

    async def main() -> None:
        slow = asyncio.create_task(model.acall("abcde"))
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(model.acall("ab"), 0.2)  # cancelled while waiting
        assert (await slow).text == "edcba"
        assert (await asyncio.wait_for(model.acall("ab"), 2.0)).text == "ba"

    asyncio.run(main())
    assert_released(model)
    assert len(model.tracker._async_waiters) == 0


# -- 2. the worst case is reserved, so concurrency cannot overspend ---------------------------
def test_budget_below_one_calls_worst_case_is_refused_before_sending(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server, budget=1e-9)
    with pytest.raises(BudgetExceededError, match="may cost up to"):
        model("hello")
    assert server.requests == []


def test_replies_dearer_than_the_first_cannot_overspend_under_threads(server: FakeServer) -> None:
    # the first texts are short and cheap, later ones long: admission must price each
    # call's own worst case, not the dearest call seen so far
    server.route("POST", "/v1/reverse", answer)
    budget = 0.01
    model = load(server, budget=budget)
    texts = ["a"] * 8 + ["x" * 1000] * 56

    def one(text: str) -> str:
        try:
            model(text)
            return "ok"
        except BudgetExceededError:
            return "refused"

    with ThreadPoolExecutor(64) as pool:
        outcomes = list(pool.map(one, texts))
    assert model.usage["cost_usd"] <= budget
    assert outcomes.count("ok") == len(server.requests)
    assert outcomes.count("refused") > 0
    assert_released(model)


def test_replies_dearer_than_the_first_cannot_overspend_under_tasks(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    budget = 0.01
    model = load(server, budget=budget)

    async def main() -> list[Any]:
        texts = ["a"] * 8 + ["x" * 1000] * 248
        return await asyncio.gather(*(model.acall(t) for t in texts), return_exceptions=True)

    results = asyncio.run(main())
    assert model.usage["cost_usd"] <= budget
    assert all(
        not isinstance(r, BaseException) or isinstance(r, BudgetExceededError) for r in results
    )
    assert sum(not isinstance(r, BaseException) for r in results) == len(server.requests)
    assert_released(model)


# -- 3. nothing is free --------------------------------------------------------------------
def test_reply_without_usage_is_charged_its_reservation(server: FakeServer) -> None:
    server.route("POST", "/llm/", Reply.json({"response": "Paris"}))  # no usage in the reply
    config = {
        "config_name": "flask",
        "model_type": "post_api",
        "api_url": server.url + "/llm/",
        "json_args": {"max_new_tokens": 20},
        "pricing": {"prompt": 1.0, "completion": 2.0},
        "budget": 1.0,
    }
    model = ModelRegistry([config]).load_model("flask")
    request = model._request("Capital of France?")
    reserved = model.worst_case_cost(request)
    assert 20 * 2.0 / 1000 < reserved < 0.2  # 20 output tokens plus the prompt's bytes
    assert model("Capital of France?").text == "Paris"
    assert model.usage["cost_usd"] == pytest.approx(reserved)
    assert_released(model)


def test_negative_usage_is_a_parse_error_and_spends_nothing(server: FakeServer) -> None:
    server.route(
        "POST",
        "/v1/reverse",
        Reply.json({"output": "cba", "usage": {"input_tokens": -1000, "output_tokens": 3}}),
    )
    model = load(server, budget=1.0)
    with pytest.raises(ResponseParseError, match=r"input|prompt"):
        model("abc")
    assert model.usage["cost_usd"] == 0
    assert_released(model)
