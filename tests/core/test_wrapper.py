"""The base class's guarantees, through the example plugin over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelwire import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ModelRegistry,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
)
from modelwire import records as records_module
from modelwire.testing import FakeServer, Reply, Request

USAGE = {"input_tokens": 5, "output_tokens": 5}
COST = (5 * 0.001 + 5 * 0.002) / 1000  # reverse-1's price table


def answer(request: Request) -> Reply:
    body = request.json()
    if body.get("stream"):
        text = body["text"][::-1]
        return Reply.ndjson([{"delta": ch} for ch in text] + [{"delta": "", "usage": USAGE}])
    return Reply.json({"output": body["text"][::-1], "usage": USAGE})


def load(server: FakeServer, **params: Any) -> Any:
    config = {
        "config_name": "rev",
        "model_type": "reverse_echo",
        "model_name": "reverse-1",
        "base_url": server.url,
        "api_key": "sk-test-secret-abcdef123456",
        "retry": {"max_retries": 3, "initial_delay": 0.01, "max_delay": 2.0},
        **params,
    }
    return ModelRegistry([config]).load_model("rev")


def test_call_and_usage_booking(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server)
    response = model("abc")
    assert response.text == "cba"
    assert response.usage.total_tokens == 10
    assert model.usage["calls"] == 1
    assert model.usage["cost_usd"] == pytest.approx(COST)
    again = model("de")
    booked = {
        key: model.usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    assert booked == {
        "prompt_tokens": response.usage.prompt_tokens + again.usage.prompt_tokens,
        "completion_tokens": response.usage.completion_tokens + again.usage.completion_tokens,
        "total_tokens": response.usage.total_tokens + again.usage.total_tokens,
    }


def test_retry_after_is_honoured(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    server.once("POST", "/v1/reverse", Reply.error(429, headers={"Retry-After": "0.6"}))
    model = load(server)
    started = time.perf_counter()
    assert model("ab").text == "ba"
    assert 0.55 <= time.perf_counter() - started < 2.0
    assert len(server.requests) == 2


def test_retry_after_beyond_max_delay_is_not_waited(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    server.once("POST", "/v1/reverse", Reply.error(429, headers={"Retry-After": "30"}))
    model = load(server)
    started = time.perf_counter()
    with pytest.raises(RateLimitError) as info:
        model("ab")
    assert time.perf_counter() - started < 1.0
    assert info.value.retry_after == 30.0
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_then_success(server: FakeServer, status: int) -> None:
    server.route("POST", "/v1/reverse", answer)
    server.once(
        "POST", "/v1/reverse", Reply.error(status), Reply.html("<h1>Bad gateway</h1>", status)
    )
    model = load(server)
    assert model("xy").text == "yx"
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_never_retried(server: FakeServer, status: int) -> None:
    server.route("POST", "/v1/reverse", Reply.error(status))
    model = load(server)
    with pytest.raises((BadRequestError, AuthenticationError)) as info:
        model("xy")
    assert info.value.status == status
    assert len(server.requests) == 1
    assert isinstance(info.value.__cause__, Exception)


def test_connection_reset_is_retried_then_succeeds(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    server.once("POST", "/v1/reverse", Reply.connection_reset())
    model = load(server)
    assert model("ok").text == "ko"


def test_malformed_json_is_parse_error_not_retried(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.text("{not json", content_type="application/json"))
    model = load(server)
    with pytest.raises(ResponseParseError):
        model("x")
    assert len(server.requests) == 1


def test_wrong_shape_is_parse_error(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.json({"unexpected": 1}))
    with pytest.raises(ResponseParseError, match="unexpected reply shape"):
        load(server)("x")


def test_timeout_is_bounded(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.json({"output": "late"}, delay=3))
    model = load(server, timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(ModelTimeoutError):
        model("x")
    assert time.perf_counter() - started < 1.5


def test_acall_retries_without_blocking_the_loop(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    server.once("POST", "/v1/reverse", Reply.error(503))
    model = load(server)

    async def main() -> list[str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(model.acall(f"m{i}") for i in range(4)))
        task.cancel()
        assert ticks > 0
        return [r.text for r in results]

    assert asyncio.run(main()) == ["0m", "1m", "2m", "3m"]


def test_stream_chunks_and_final_usage(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server)
    chunks = list(model.stream("hello"))
    assert "".join(c.text for c in chunks) == "olleh"
    assert chunks[-1].usage.total_tokens == 10
    assert model.usage["calls"] == 1


def test_stream_cut_off_carries_partial_text(server: FakeServer) -> None:
    events = [{"delta": "par"}, {"delta": "tial"}, {"delta": "never"}]
    server.route("POST", "/v1/reverse", Reply.ndjson(events, cut_after=2))
    model = load(server)
    received = []
    with pytest.raises(ProviderError) as info:
        for chunk in model.stream("x"):
            received.append(chunk.text)
    assert received == ["par", "tial"]
    assert info.value.partial_text == "partial"
    assert "7 characters were received" in str(info.value)
    assert model.usage["errors"] == 1


def test_stream_retries_before_first_chunk_only(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    server.once("POST", "/v1/reverse", Reply.error(502))
    model = load(server)
    assert "".join(c.text for c in model.stream("abc")) == "cba"
    assert len(server.requests) == 2


def test_astream_and_early_close(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server)

    async def main() -> str:
        parts = []
        # aclosing: an async generator left by `break` is otherwise closed only at loop
        # shutdown, where asyncio closes it and the connection's generator concurrently
        async with contextlib.aclosing(model.astream("abcdef")) as chunks:
            async for chunk in chunks:
                parts.append(chunk.text)
                if len(parts) == 2:
                    break
        return "".join(parts)

    assert asyncio.run(main()) == "fe"
    generator = model.stream("xyz")
    assert next(generator).text == "z"
    generator.close()
    assert model.usage["calls"] == 2


def test_budget_blocks_before_sending(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    model = load(server, budget=COST * 2)
    model("a")
    model("b")
    with pytest.raises(BudgetExceededError, match="the call was not sent"):
        model("c")
    assert len(server.requests) == 2
    assert model.usage["rejected"] == 1


def test_budget_exact_under_64_threads(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    admitted = 10
    model = load(server, budget=COST * admitted)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            model(f"t{i:04d}")
            result = "ok"
        except BudgetExceededError:
            result = "refused"
        with lock:
            outcomes.append(result)

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(one, range(64)))
    assert outcomes.count("ok") == admitted
    assert outcomes.count("refused") == 64 - admitted
    assert len(server.requests) == admitted
    assert model.tracker.spent == pytest.approx(COST * admitted)


def test_budget_exact_under_256_tasks(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", answer)
    admitted = 12
    model = load(server, budget=COST * admitted)

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(model.acall(f"a{i:04d}") for i in range(256)), return_exceptions=True
        )

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(results) - len(refused) == admitted
    assert all(not isinstance(r, Exception) or isinstance(r, BudgetExceededError) for r in results)
    assert len(server.requests) == admitted
    assert model.usage["cost_usd"] == pytest.approx(COST * admitted)


def test_records_are_complete_lines_under_threads(server: FakeServer, tmp_path: Path) -> None:
    server.route("POST", "/v1/reverse", answer)
    path = tmp_path / "records.jsonl"
    records_module.configure(path)
    try:
        model = load(server)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: model(f"r{i}"), range(80)))
        server.route("POST", "/v1/reverse", Reply.error(401))
        with pytest.raises(AuthenticationError):
            model("denied")
    finally:
        records_module.configure(None)
    lines = path.read_text().splitlines()
    assert len(lines) == 81
    parsed = [json.loads(line) for line in lines]
    assert sorted(p["request"]["args"][0] for p in parsed[:80]) == sorted(
        f"r{i}" for i in range(80)
    )
    assert parsed[-1]["status"] == "error" and parsed[-1]["error"]["type"] == "AuthenticationError"
    assert "sk-test-secret-abcdef123456" not in path.read_text()
    assert all(p["usage"]["total_tokens"] == 10 for p in parsed[:80])


def test_init_records_argument(server: FakeServer, tmp_path: Path) -> None:
    import modelwire

    server.route("POST", "/v1/reverse", answer)
    path = tmp_path / "r.jsonl"
    modelwire.init(records=path)
    try:
        load(server)("q")
    finally:
        records_module.configure(None)
    assert json.loads(path.read_text())["response"]["text"] == "q"


def test_records_from_environment(server: FakeServer, tmp_path: Path) -> None:
    from modelwire.testing.distributions import run_python

    server.route("POST", "/v1/reverse", answer)
    path = tmp_path / "env.jsonl"
    code = f"""
import modelwire
m = modelwire.ModelRegistry([{{"config_name": "e", "model_type": "reverse_echo",
     "model_name": "reverse-1", "base_url": "{server.url}"}}]).load_model("e")
print(m("env").text)
"""
    result = run_python(code, MODELWIRE_RECORDS=str(path))
    assert result.stdout.strip() == "vne", result.stderr
    assert json.loads(path.read_text())["config_name"] == "e"


def test_connection_refused(server: FakeServer) -> None:
    model = load(server, retry={"max_retries": 1, "initial_delay": 0.01})
    server.close()
    with pytest.raises(ServiceUnavailableError, match="cannot reach the service"):
        model("x")


def test_close_and_context_managers(server: FakeServer) -> None:
    from modelwire.wrapper import ModelWrapper

    closed: list[str] = []

    class Closing(ModelWrapper):
        model_type = "closing"

        def close(self) -> None:
            closed.append(self.config_name)

    with Closing("a") as wrapper:
        assert wrapper.config_name == "a"
    assert closed == ["a"]

    async def main() -> None:
        async with Closing("b"):
            pass

    asyncio.run(main())
    assert closed == ["a", "b"]
    with ModelRegistry(
        [{"config_name": "r", "model_type": "reverse_echo", "model_name": "m"}]
    ) as r:
        r.load_model("r")
