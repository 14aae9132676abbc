"""Start `modelwire-serve vllm ...` as a user would, wait for it, measure it, stop it.

Only `make test-engines` loads this folder (pyproject's `norecursedirs` keeps
`make test` out), inside `.venv-engines`. One engine runs at a time: each test
module starts its own with a module-scoped fixture, stopped at the module's end.
"""

from __future__ import annotations

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

SCRIPT = Path(sys.executable).with_name("modelwire-serve")
STARTUP_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0
FIGURES = Path(sys.prefix) / "vllm-figures.json"


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


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (the launcher, vLLM's server and its workers)."""
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


def memory_kib(pids: list[int]) -> dict[str, int]:
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


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_pids(process.pid):
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + STOP_TIMEOUT
        while group_pids(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
    if process.poll() is None:
        process.wait(timeout=10)


def _config_line(log: str) -> dict[str, Any]:
    line = next(line for line in log.splitlines() if '"model_type"' in line)
    return json.loads(line)


@contextmanager
def running_engine(home: Path, *argv: str) -> Iterator[Engine]:
    """`modelwire-serve vllm *argv --port N`, ready on /v1/models; stopped on exit."""
    port = free_port()
    log_path = home / "serve.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "MODELWIRE_CACHE_DIR": str(home / "cache"),  # a fresh conversion every run
    }
    for name in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CACHE_ROOT", "TMPDIR"):
        env.pop(name, None)  # the launcher's defaults, as a user without them gets
    command = [str(SCRIPT), "vllm", *argv, "--port", str(port)]
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    scratch = Path(tempfile.gettempdir()) / f"modelwire-vllm-{port}"
    engine: Engine | None = None
    try:
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-6000:]
                pytest.fail(f"modelwire-serve vllm exited with {process.returncode}:\n{tail}")
            if time.monotonic() - started > STARTUP_TIMEOUT:
                tail = log_path.read_text(errors="replace")[-6000:]
                pytest.fail(f"vLLM did not answer /v1/models in time:\n{tail}")
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
        stop(process)
        if engine is not None:
            name = " ".join(argv)
            print(f"\nvLLM figures ({name}): {json.dumps(engine.figures)}")
            known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
            FIGURES.write_text(json.dumps({**known, name: engine.figures}, indent=2) + "\n")
