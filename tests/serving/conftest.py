"""One real `modelwire-serve` per test session, on the bundled SmolLM2 + MiniLM.

The server runs as a subprocess (`python -m modelwire_serving`), exactly as a
user starts it, with `--port 0`; the fixture reads the bound address from its
output, waits for /health and stops it with SIGTERM at the end. The API key is
given through `MODELWIRE_SERVE_API_KEY`, so every authenticated test also proves
that the variable works (and the key never shows on the command line).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

API_KEY = "test-key-123"
MAX_NEW_TOKENS_CAP = 24
MAX_INPUT_TOKENS = 256
MAX_BODY_BYTES = 32 * 1024
IDLE_TIMEOUT = 6.0
READ_TIMEOUT = 3.0
STARTUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class Server:
    """A running service and what the tests need to call it."""

    base_url: str
    api_key: str
    log_path: str
    pid: int
    max_new_tokens: int = MAX_NEW_TOKENS_CAP
    max_input_tokens: int = MAX_INPUT_TOKENS
    max_body_bytes: int = MAX_BODY_BYTES
    idle_timeout: float = IDLE_TIMEOUT
    read_timeout: float = READ_TIMEOUT

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


def serve_env() -> dict[str, str]:
    """The environment for subprocesses: offline, unbuffered."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        "w+", prefix="modelwire-serve-", suffix=".log", delete=False
    )
    command = [
        sys.executable,
        "-m",
        "modelwire_serving",
        "--model_name_or_path",
        "bundled:smollm2",
        "--embedding-model",
        "bundled:minilm",
        "--device",
        "cpu",
        "--port",
        "0",
        "--max-new-tokens",
        str(MAX_NEW_TOKENS_CAP),
        "--max-input-tokens",
        str(MAX_INPUT_TOKENS),
        "--max-body-bytes",
        str(MAX_BODY_BYTES),
        "--max-batch-size",
        "8",
        "--batch-window-ms",
        "50",
        "--idle-timeout",
        str(IDLE_TIMEOUT),
        "--read-timeout",
        str(READ_TIMEOUT),
    ]
    env = {**serve_env(), "MODELWIRE_SERVE_API_KEY": API_KEY}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base_url = _wait_until_listening(process, log.name)
        _wait_until_healthy(base_url)
        yield Server(base_url=base_url, api_key=API_KEY, log_path=log.name, pid=process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        os.unlink(log.name)


def _wait_until_listening(process: subprocess.Popen[bytes], log_path: str) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pattern = re.compile(r"listening on (http://\S+)")
    while time.monotonic() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            found = pattern.search(handle.read())
        if found:
            return found.group(1)
        if process.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                pytest.fail(f"modelwire-serve exited with {process.returncode}:\n{handle.read()}")
        time.sleep(0.25)
    pytest.fail("modelwire-serve did not start listening in time")


def _wait_until_healthy(base_url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("/health did not answer 200")


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    """A raw HTTP client with the API key."""
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as client:
        yield client
