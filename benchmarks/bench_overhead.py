"""Per-call overhead: each first-party wrapper versus its raw SDK, against the same server.

For every provider, the same chat call (and embedding call where the provider has
one) is made through the modelwire wrapper (``model(...)`` / ``await model.acall(...)``)
and through the SDK it wraps, configured alike (no SDK retries, the same timeout), on
identical prebuilt replies from ``fakeservice.py`` running in its own process. The two
sides alternate in blocks of 10 calls, N calls each (default 500) after a warm-up; the
figure is the median over adjacent block pairs of the ratio of their median latencies
(``common.paired_ratio``; target ≤ 1.05), with both sides' medians and p99s reported.
An A/A control (the raw OpenAI chat call against itself, sync) shows the noise floor.

The raw side does what a user of the SDK would: one call, then read the text (or the
first vector) out of the SDK's reply. The wrapper side also counts usage and runs the
lifecycle hooks (records are off, as by default).

    .venv/bin/python benchmarks/bench_overhead.py [--n 500] [--only openai] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import fakeservice as fs
from common import Row, Samples, ainterleaved, emit, interleaved, latency_row, loopback_only

import modelwire

TARGET = 1.05
API_KEY = "sk-bench-not-a-secret"
TIMEOUT = 120.0

#: The tool of the "with tools" row, as OpenAI's function dict (what both sides send).
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]

#: The generation_config of the Gemini row where both sides send one.
GEMINI_CONFIG = {"temperature": 0.5}

SyncFn = Callable[[], object]
AsyncFn = Callable[[], Awaitable[object]]
#: An async call and how to close its client, built inside the running loop.
AsyncPair = tuple[AsyncFn, Callable[[], Awaitable[object]]]


@dataclass
class Case:
    """One provider and operation: the wrapper and the raw SDK, sync and async."""

    name: str
    wrapper: Any
    wrapper_input: Any
    raw_sync: SyncFn
    raw_async: Callable[[], AsyncPair]
    close: Callable[[], object]
    #: Keyword arguments of the wrapper's call (the raw side passes their SDK form).
    wrapper_kwargs: dict[str, Any] = field(default_factory=dict)

    def ours_sync(self) -> object:
        return self.wrapper(self.wrapper_input, **self.wrapper_kwargs)

    async def ours_async(self) -> object:
        return await self.wrapper.acall(self.wrapper_input, **self.wrapper_kwargs)


def load(config: dict[str, Any]) -> Any:
    """A wrapper built the way users get one: from a config, through a registry."""
    config = {"config_name": f"bench-{config['model_type']}", "timeout": TIMEOUT, **config}
    return modelwire.ModelRegistry([config]).load_model(config["config_name"])


# -- OpenAI ----------------------------------------------------------------------------------
def openai_cases(url: str) -> list[Case]:
    import openai

    options = {"api_key": API_KEY, "base_url": url + "/v1", "max_retries": 0, "timeout": TIMEOUT}
    client = openai.OpenAI(**options)
    client_args = {"base_url": url + "/v1"}

    def chat() -> object:
        reply = client.chat.completions.create(model=fs.OPENAI_MODEL, messages=fs.CHAT_MESSAGES)
        return reply.choices[0].message.content

    def achat() -> AsyncPair:
        aclient = openai.AsyncOpenAI(**options)

        async def call() -> object:
            reply = await aclient.chat.completions.create(
                model=fs.OPENAI_MODEL, messages=fs.CHAT_MESSAGES
            )
            return reply.choices[0].message.content

        return call, aclient.close

    def chat_with_tools() -> object:
        reply = client.chat.completions.create(
            model=fs.OPENAI_MODEL, messages=fs.CHAT_MESSAGES, tools=TOOLS
        )
        return reply.choices[0].message.content

    def achat_with_tools() -> AsyncPair:
        aclient = openai.AsyncOpenAI(**options)

        async def call() -> object:
            reply = await aclient.chat.completions.create(
                model=fs.OPENAI_MODEL, messages=fs.CHAT_MESSAGES, tools=TOOLS
            )
            return reply.choices[0].message.content

        return call, aclient.close

    def embed() -> object:
        reply = client.embeddings.create(
            model=fs.OPENAI_EMBED_MODEL, input=fs.EMBED_INPUTS, encoding_format="float"
        )
        return reply.data[0].embedding

    def aembed() -> AsyncPair:
        aclient = openai.AsyncOpenAI(**options)

        async def call() -> object:
            reply = await aclient.embeddings.create(
                model=fs.OPENAI_EMBED_MODEL, input=fs.EMBED_INPUTS, encoding_format="float"
            )
            return reply.data[0].embedding

        return call, aclient.close

    chat_model = load(
        {
            "model_type": "openai_chat",
            "model_name": fs.OPENAI_MODEL,
            "api_key": API_KEY,
            "client_args": client_args,
        }
    )
    embed_model = load(
        {
            "model_type": "openai_embedding",
            "model_name": fs.OPENAI_EMBED_MODEL,
            "api_key": API_KEY,
            "client_args": client_args,
        }
    )
    return [
        Case("openai chat", chat_model, fs.CHAT_MESSAGES, chat, achat, client.close),
        Case(
            "openai chat with tools",
            chat_model,
            fs.CHAT_MESSAGES,
            chat_with_tools,
            achat_with_tools,
            client.close,
            wrapper_kwargs={"tools": TOOLS},
        ),
        Case("openai embedding", embed_model, fs.EMBED_INPUTS, embed, aembed, client.close),
    ]


# -- DashScope -------------------------------------------------------------------------------
def dashscope_cases(url: str) -> list[Case]:
    import dashscope

    base_url = url + fs.DASHSCOPE_API
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": base_url,
        "timeout": TIMEOUT,
        "protocol": "native",
        "max_retries": 0,
    }
    client = dashscope.Client(**options)
    request = {"model": fs.DASHSCOPE_MODEL, "messages": fs.CHAT_MESSAGES, "parameters": {}}
    embed_request = {"model": fs.DASHSCOPE_EMBED_MODEL, "input": fs.EMBED_INPUTS, "parameters": {}}

    def chat() -> object:
        return client.chat.completions.create(**request).choices[0].message.content

    def achat() -> AsyncPair:
        aclient = dashscope.AsyncClient(**options)

        async def call() -> object:
            reply = await aclient.chat.completions.create(**request)
            return reply.choices[0].message.content

        return call, aclient.aclose

    def embed() -> object:
        return client.embeddings.create(**embed_request).embeddings[0].embedding

    def aembed() -> AsyncPair:
        aclient = dashscope.AsyncClient(**options)

        async def call() -> object:
            return (await aclient.embeddings.create(**embed_request)).embeddings[0].embedding

        return call, aclient.aclose

    common = {"api_key": API_KEY, "base_url": base_url}
    chat_model = load({"model_type": "dashscope_chat", "model_name": fs.DASHSCOPE_MODEL, **common})
    embed_model = load(
        {
            "model_type": "dashscope_text_embedding",
            "model_name": fs.DASHSCOPE_EMBED_MODEL,
            **common,
        }
    )
    return [
        Case("dashscope chat", chat_model, fs.CHAT_MESSAGES, chat, achat, client.close),
        Case("dashscope embedding", embed_model, fs.EMBED_INPUTS, embed, aembed, client.close),
    ]


# -- Gemini ----------------------------------------------------------------------------------
def gemini_cases(url: str) -> list[Case]:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(
        base_url=url,
        timeout=int(TIMEOUT * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    client = genai.Client(api_key=API_KEY, http_options=options)
    contents = [{"role": "user", "parts": [{"text": fs.CHAT_MESSAGES[0]["content"]}]}]

    def chat() -> object:
        return client.models.generate_content(model=fs.GEMINI_MODEL, contents=contents).text

    def achat() -> AsyncPair:
        aclient = genai.Client(api_key=API_KEY, http_options=options).aio

        async def call() -> object:
            reply = await aclient.models.generate_content(model=fs.GEMINI_MODEL, contents=contents)
            return reply.text

        return call, aclient.aclose

    def chat_configured() -> object:
        reply = client.models.generate_content(
            model=fs.GEMINI_MODEL, contents=contents, config=GEMINI_CONFIG
        )
        return reply.text

    def achat_configured() -> AsyncPair:
        aclient = genai.Client(api_key=API_KEY, http_options=options).aio

        async def call() -> object:
            reply = await aclient.models.generate_content(
                model=fs.GEMINI_MODEL, contents=contents, config=GEMINI_CONFIG
            )
            return reply.text

        return call, aclient.aclose

    def embed() -> object:
        reply = client.models.embed_content(model=fs.GEMINI_EMBED_MODEL, contents=fs.EMBED_INPUTS)
        return reply.embeddings[0].values

    def aembed() -> AsyncPair:
        aclient = genai.Client(api_key=API_KEY, http_options=options).aio

        async def call() -> object:
            reply = await aclient.models.embed_content(
                model=fs.GEMINI_EMBED_MODEL, contents=fs.EMBED_INPUTS
            )
            return reply.embeddings[0].values

        return call, aclient.aclose

    common = {"api_key": API_KEY, "base_url": url}
    chat_model = load({"model_type": "gemini_chat", "model_name": fs.GEMINI_MODEL, **common})
    configured_model = load(
        {
            "model_type": "gemini_chat",
            "model_name": fs.GEMINI_MODEL,
            "generation_config": GEMINI_CONFIG,
            **common,
        }
    )
    embed_model = load(
        {"model_type": "gemini_embedding", "model_name": fs.GEMINI_EMBED_MODEL, **common}
    )
    prompt = chat_model.format(modelwire.Msg("user", fs.CHAT_MESSAGES[0]["content"], role="user"))
    return [
        Case("gemini chat", chat_model, prompt, chat, achat, client.close),
        Case(
            "gemini chat with generation_config",
            configured_model,
            prompt,
            chat_configured,
            achat_configured,
            client.close,
        ),
        Case("gemini embedding", embed_model, fs.EMBED_INPUTS, embed, aembed, client.close),
    ]


# -- Ollama ----------------------------------------------------------------------------------
def ollama_cases(url: str) -> list[Case]:
    import ollama

    client = ollama.Client(host=url, timeout=TIMEOUT)

    def chat() -> object:
        reply = client.chat(model=fs.OLLAMA_MODEL, messages=fs.CHAT_MESSAGES, stream=False)
        return reply.message.content

    def achat() -> AsyncPair:
        aclient = ollama.AsyncClient(host=url, timeout=TIMEOUT)

        async def call() -> object:
            reply = await aclient.chat(
                model=fs.OLLAMA_MODEL, messages=fs.CHAT_MESSAGES, stream=False
            )
            return reply.message.content

        return call, aclient.close

    def embed() -> object:
        return client.embed(model=fs.OLLAMA_MODEL, input=fs.EMBED_INPUTS).embeddings[0]

    def aembed() -> AsyncPair:
        aclient = ollama.AsyncClient(host=url, timeout=TIMEOUT)

        async def call() -> object:
            return (await aclient.embed(model=fs.OLLAMA_MODEL, input=fs.EMBED_INPUTS)).embeddings[0]

        return call, aclient.close

    common = {"model": fs.OLLAMA_MODEL, "host": url}
    chat_model = load({"model_type": "ollama_chat", **common})
    embed_model = load({"model_type": "ollama_embedding", **common})
    return [
        Case("ollama chat", chat_model, fs.CHAT_MESSAGES, chat, achat, client.close),
        Case("ollama embedding", embed_model, fs.EMBED_INPUTS, embed, aembed, client.close),
    ]


# -- post_api (raw: httpx, what the wrapper runs on) ------------------------------------------
def postapi_cases(url: str) -> list[Case]:
    import httpx

    api_url = url + "/llm/"
    prompt = fs.CHAT_MESSAGES[0]["content"]
    client = httpx.Client(timeout=TIMEOUT)

    def post() -> object:
        return client.post(api_url, json={"inputs": prompt}).json()["response"]

    def apost() -> AsyncPair:
        aclient = httpx.AsyncClient(timeout=TIMEOUT)

        async def call() -> object:
            return (await aclient.post(api_url, json={"inputs": prompt})).json()["response"]

        return call, aclient.aclose

    model = load({"model_type": "post_api", "api_url": api_url})
    return [Case("post_api", model, prompt, post, apost, client.close)]


PROVIDERS = {
    "openai": openai_cases,
    "dashscope": dashscope_cases,
    "gemini": gemini_cases,
    "ollama": ollama_cases,
    "postapi": postapi_cases,
}


def check(case: Case) -> None:
    """Both sides must work (and agree on the text) before anything is timed."""
    ours = case.ours_sync()
    raw = case.raw_sync()
    text = getattr(ours, "text", None)
    if text is not None and text != raw:
        raise AssertionError(f"{case.name}: wrapper said {text!r}, SDK said {raw!r}")


async def run_async(case: Case, n: int) -> tuple[Samples, Samples]:
    raw, close = case.raw_async()
    result = await ainterleaved(case.ours_async, raw, n)
    await close()
    await case.wrapper.aclose()
    return result


def measure(case: Case, n: int) -> list[Row]:
    check(case)
    ours, raw = interleaved(case.ours_sync, case.raw_sync, n)
    rows = [latency_row(f"per-call {case.name}, sync", ours, raw, TARGET, "raw SDK")]
    ours, raw = asyncio.run(run_async(case, n))
    rows.append(latency_row(f"per-call {case.name}, async", ours, raw, TARGET, "raw SDK"))
    case.wrapper.close()
    if case.name == "openai chat":
        rows.append(control(case, n))
    return rows


def control(case: Case, n: int) -> Row:
    """The raw call against itself, measured like every row: how far 1.000 can move."""
    first, second = interleaved(case.raw_sync, case.raw_sync, n)
    row = latency_row(f"A/A control: raw {case.name} vs itself, sync", first, second, 1, "")
    row.baseline = row.baseline.rstrip() + " the same raw SDK call"
    row.target, row.met = "≈ 1 (noise)", None
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="calls per side and row (≥ 500)")
    parser.add_argument("--only", default="", help="providers to run, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    loopback_only()
    for name in ("OPENAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "OLLAMA_HOST"):
        os.environ.pop(name, None)
    chosen = [p for p in args.only.split(",") if p] or list(PROVIDERS)
    rows: list[Row] = []
    with fs.Service() as service:
        for provider in chosen:
            cases = PROVIDERS[provider](service.url)
            for case in cases:
                rows += measure(case, args.n)
            cases[0].close()
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
