"""Time to first chunk: ``model.stream()`` / ``astream()`` versus the raw SDK's stream.

The clock runs from the call until the first chunk is in hand (the wrapper's first
``ModelChunk``, the SDK's first event); the rest of the stream is then read, untimed,
so the connection goes back to the pool as a user's would. Same fake server in its own
process, same prebuilt replies, sides alternating in blocks; the ratio is
``common.paired_ratio`` (median over adjacent block pairs); target ≤ 1.05.

    .venv/bin/python benchmarks/bench_streaming.py [--n 300] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import fakeservice as fs
from bench_overhead import API_KEY, TIMEOUT, load
from common import Row, Samples, ainterleaved, emit, interleaved, latency_row, loopback_only

TARGET = 1.05


def first_then_drain(open_stream: Callable[[], Iterator[Any]]) -> Callable[[], int]:
    """A call that returns ns to the first item, then consumes the rest."""

    def call() -> int:
        started = time.perf_counter_ns()
        iterator = iter(open_stream())
        next(iterator)
        elapsed = time.perf_counter_ns() - started
        for _ in iterator:
            pass
        return elapsed

    return call


def afirst_then_drain(
    open_stream: Callable[[], Awaitable[AsyncIterator[Any]] | AsyncIterator[Any]],
) -> Callable[[], Awaitable[int]]:
    async def call() -> int:
        started = time.perf_counter_ns()
        stream = open_stream()
        if not hasattr(stream, "__aiter__"):
            stream = await stream
        iterator = aiter(stream)
        await anext(iterator)
        elapsed = time.perf_counter_ns() - started
        async for _ in iterator:
            pass
        return elapsed

    return call


def to_first(samples: tuple[Samples, Samples], ttfc: tuple[list[int], list[int]]) -> Any:
    """Replace whole-call wall times with the recorded times to first chunk."""
    ours, base = samples
    ours.wall, base.wall = ttfc
    return ours, base


def recording(function: Callable[[], int], out: list[int]) -> Callable[[], int]:
    def call() -> int:
        value = function()
        out.append(value)
        return value

    return call


def arecording(function: Callable[[], Awaitable[int]], out: list[int]) -> Any:
    async def call() -> int:
        value = await function()
        out.append(value)
        return value

    return call


def sync_row(name: str, ours: Callable[[], int], raw: Callable[[], int], n: int) -> Row:
    ours_ttfc: list[int] = []
    raw_ttfc: list[int] = []
    samples = interleaved(recording(ours, ours_ttfc), recording(raw, raw_ttfc), n)
    # warm-up calls were recorded too: keep the last n of each
    pair = to_first(
        samples, (ours_ttfc[-len(samples[0].wall) :], raw_ttfc[-len(samples[1].wall) :])
    )
    return latency_row(f"time to first chunk: {name}", *pair, TARGET, "raw SDK stream")


async def async_row(
    name: str, ours: Callable[[], Awaitable[int]], raw: Callable[[], Awaitable[int]], n: int
) -> Row:
    ours_ttfc: list[int] = []
    raw_ttfc: list[int] = []
    samples = await ainterleaved(arecording(ours, ours_ttfc), arecording(raw, raw_ttfc), n)
    pair = to_first(
        samples, (ours_ttfc[-len(samples[0].wall) :], raw_ttfc[-len(samples[1].wall) :])
    )
    return latency_row(f"time to first chunk: {name}", *pair, TARGET, "raw SDK stream")


def openai_rows(url: str, n: int) -> list[Row]:
    import openai

    options = {"api_key": API_KEY, "base_url": url + "/v1", "max_retries": 0, "timeout": TIMEOUT}
    client = openai.OpenAI(**options)
    request = {
        "model": fs.OPENAI_MODEL,
        "messages": fs.CHAT_MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},  # what the wrapper asks for too
    }
    model = load(
        {
            "model_type": "openai_chat",
            "model_name": fs.OPENAI_MODEL,
            "api_key": API_KEY,
            "client_args": {"base_url": url + "/v1"},
        }
    )
    rows = [
        sync_row(
            "openai, sync",
            first_then_drain(lambda: model.stream(fs.CHAT_MESSAGES)),
            first_then_drain(lambda: client.chat.completions.create(**request)),
            n,
        )
    ]

    async def run() -> Row:
        aclient = openai.AsyncOpenAI(**options)
        row = await async_row(
            "openai, async",
            afirst_then_drain(lambda: model.astream(fs.CHAT_MESSAGES)),
            afirst_then_drain(lambda: aclient.chat.completions.create(**request)),
            n,
        )
        await aclient.close()
        return row

    rows.append(asyncio.run(run()))
    client.close()
    model.close()
    return rows


def ollama_rows(url: str, n: int) -> list[Row]:
    import ollama

    client = ollama.Client(host=url, timeout=TIMEOUT)
    request = {"model": fs.OLLAMA_MODEL, "messages": fs.CHAT_MESSAGES, "stream": True}
    model = load({"model_type": "ollama_chat", "model": fs.OLLAMA_MODEL, "host": url})
    rows = [
        sync_row(
            "ollama, sync",
            first_then_drain(lambda: model.stream(fs.CHAT_MESSAGES)),
            first_then_drain(lambda: client.chat(**request)),
            n,
        )
    ]

    async def run() -> Row:
        aclient = ollama.AsyncClient(host=url, timeout=TIMEOUT)
        row = await async_row(
            "ollama, async",
            afirst_then_drain(lambda: model.astream(fs.CHAT_MESSAGES)),
            afirst_then_drain(lambda: aclient.chat(**request)),
            n,
        )
        await aclient.close()
        return row

    rows.append(asyncio.run(run()))
    client.close()
    model.close()
    return rows


def dashscope_rows(url: str, n: int) -> list[Row]:
    import dashscope

    base_url = url + fs.DASHSCOPE_API
    client = dashscope.Client(
        api_key=API_KEY, base_url=base_url, timeout=TIMEOUT, protocol="native", max_retries=0
    )
    request = {
        "model": fs.DASHSCOPE_MODEL,
        "messages": fs.CHAT_MESSAGES,
        "stream": True,
        "parameters": {},
    }
    model = load(
        {
            "model_type": "dashscope_chat",
            "model_name": fs.DASHSCOPE_MODEL,
            "api_key": API_KEY,
            "base_url": base_url,
        }
    )
    row = sync_row(
        "dashscope, sync",
        first_then_drain(lambda: model.stream(fs.CHAT_MESSAGES)),
        first_then_drain(lambda: client.chat.completions.create(**request)),
        n,
    )
    client.close()
    model.close()
    return [row]


def gemini_rows(url: str, n: int) -> list[Row]:
    from google import genai
    from google.genai import types

    import modelwire

    options = types.HttpOptions(
        base_url=url, timeout=int(TIMEOUT * 1000), retry_options=types.HttpRetryOptions(attempts=1)
    )
    client = genai.Client(api_key=API_KEY, http_options=options)
    contents = [{"role": "user", "parts": [{"text": fs.CHAT_MESSAGES[0]["content"]}]}]
    model = load(
        {
            "model_type": "gemini_chat",
            "model_name": fs.GEMINI_MODEL,
            "api_key": API_KEY,
            "base_url": url,
        }
    )
    prompt = model.format(modelwire.Msg("user", fs.CHAT_MESSAGES[0]["content"], role="user"))
    row = sync_row(
        "gemini, sync",
        first_then_drain(lambda: model.stream(prompt)),
        first_then_drain(
            lambda: client.models.generate_content_stream(model=fs.GEMINI_MODEL, contents=contents)
        ),
        n,
    )
    client.close()
    model.close()
    return [row]


PROVIDERS = {
    "openai": openai_rows,
    "ollama": ollama_rows,
    "dashscope": dashscope_rows,
    "gemini": gemini_rows,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="streams per side and row")
    parser.add_argument("--only", default="", help="providers to run, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    loopback_only()
    chosen = [p for p in args.only.split(",") if p] or list(PROVIDERS)
    rows: list[Row] = []
    with fs.Service() as service:
        for provider in chosen:
            rows += PROVIDERS[provider](service.url, args.n)
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
