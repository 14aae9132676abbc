"""`modelwire-serve vllm ...` / `fastchat ...`: run another engine's OpenAI server.

When one machine's transformers process is not enough (several GPUs, many
concurrent users, long contexts), vLLM or FastChat serve the same model with
paged attention and continuous batching. These launchers translate the
`modelwire-serve` flags into the engine's own command, print it together with
the modelwire config that calls it, and run it. They never install anything:
if the engine is missing they say how to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from modelwire_serving.errors import ServeError
from modelwire_serving.loading import log, resolve_location

FASTCHAT_CONTROLLER_PORT = 21001
FASTCHAT_WORKER_PORT = 21002


@dataclass
class LaunchPlan:
    """The commands to run, in order, and the modelwire config that calls them."""

    engine: str
    module: str
    install: str
    commands: list[list[str]]
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wait_for_ports: list[int] = field(default_factory=list)


def _model_and_name(args: argparse.Namespace) -> tuple[str, str, list[str]]:
    """The model argument for the engine, the served name, and notes."""
    source = "modelscope" if getattr(args, "source", "") == "modelscope" else "huggingface"
    location = resolve_location(args.model_name_or_path, args.gguf_file, source)
    notes: list[str] = []
    model = location.path
    if location.gguf_file:
        model = os.path.join(location.path, location.gguf_file)
        notes.append(
            "GGUF: pass the original model's tokenizer with --engine-args '--tokenizer ORG/NAME' "
            "if the engine cannot read it from the file"
        )
    name = args.served_model_name or location.served_name
    return model, name, notes


def _config(engine: str, name: str, host: str, port: int, api_key: str | None) -> dict[str, Any]:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return {
        "config_name": f"{engine}_{name}",
        "model_type": "openai_chat",
        "model_name": name,
        "api_key": api_key or "not-needed",
        "client_args": {"base_url": f"http://{shown_host}:{port}/v1"},
    }


def _device_env(device: str) -> dict[str, str]:
    if device.startswith("cuda:"):
        return {"CUDA_VISIBLE_DEVICES": device.partition(":")[2]}
    return {}


def vllm_plan(args: argparse.Namespace) -> LaunchPlan:
    """`python -m vllm.entrypoints.openai.api_server` with the equivalent flags."""
    model, name, notes = _model_and_name(args)
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--served-model-name",
        name,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    if args.dtype != "auto":
        command += ["--dtype", args.dtype]
    if args.api_key:
        command += ["--api-key", args.api_key]
    if args.trust_remote_code:
        command.append("--trust-remote-code")
    command += shlex.split(args.engine_args or "")
    env = _device_env(args.device)
    if getattr(args, "source", "") == "modelscope":
        env["VLLM_USE_MODELSCOPE"] = "True"
    if args.embedding_model:
        notes.append(
            "vLLM serves one model per process: start a second one with "
            "--engine-args '--task embed' for embeddings"
        )
    return LaunchPlan(
        engine="vllm",
        module="vllm",
        install="pip install vllm",
        commands=[command],
        config=_config("vllm", name, args.host, args.port, args.api_key),
        env=env,
        notes=notes,
    )


def fastchat_plan(args: argparse.Namespace) -> LaunchPlan:
    """FastChat's three processes: controller, model worker, OpenAI API server."""
    model, name, notes = _model_and_name(args)
    host = args.host
    controller = f"http://{host}:{FASTCHAT_CONTROLLER_PORT}"
    device = "cpu" if args.device == "cpu" else "mps" if args.device == "mps" else "cuda"
    worker = [
        sys.executable,
        "-m",
        "fastchat.serve.model_worker",
        "--model-path",
        model,
        "--model-names",
        name,
        "--controller-address",
        controller,
        "--worker-address",
        f"http://{host}:{FASTCHAT_WORKER_PORT}",
        "--host",
        host,
        "--port",
        str(FASTCHAT_WORKER_PORT),
        "--device",
        device,
    ]
    worker += shlex.split(args.engine_args or "")
    api = [
        sys.executable,
        "-m",
        "fastchat.serve.openai_api_server",
        "--host",
        host,
        "--port",
        str(args.port),
        "--controller-address",
        controller,
    ]
    if args.api_key:
        api += ["--api-keys", args.api_key]
    commands = [
        [
            sys.executable,
            "-m",
            "fastchat.serve.controller",
            "--host",
            host,
            "--port",
            str(FASTCHAT_CONTROLLER_PORT),
        ],
        worker,
        api,
    ]
    return LaunchPlan(
        engine="fastchat",
        module="fastchat",
        install="pip install 'fschat[model_worker]'",
        commands=commands,
        config=_config("fastchat", name, host, args.port, args.api_key),
        env=_device_env(args.device),
        notes=notes,
        wait_for_ports=[FASTCHAT_CONTROLLER_PORT, FASTCHAT_WORKER_PORT],
    )


PLANS = {"vllm": vllm_plan, "fastchat": fastchat_plan}


def describe(plan: LaunchPlan) -> str:
    """The commands and the config, as printed before running."""
    prefix = " ".join(f"{key}={value}" for key, value in plan.env.items())
    lines = [f"{plan.engine} command(s):"]
    for command in plan.commands:
        lines.append("  " + (prefix + " " if prefix else "") + shlex.join(command))
    lines.append("modelwire config:")
    lines.append("  " + json.dumps(plan.config))
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)


def launch(args: argparse.Namespace) -> int:
    """Print the plan; unless --dry-run, run it (after checking the engine is installed)."""
    plan = PLANS[args.engine](args)
    log(describe(plan))
    installed = importlib.util.find_spec(plan.module) is not None
    if args.dry_run:
        if not installed:
            log(f"note: {plan.engine} is not installed here; install it with: {plan.install}")
        return 0
    if not installed:
        raise ServeError(
            f"{plan.engine} is not installed in this environment ({sys.executable}); "
            f"install it with: {plan.install}"
        )
    if args.port == 0:
        raise ServeError(f"{plan.engine} needs an explicit --port")
    return _run(plan)


def _wait_for_port(host: str, port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise ServeError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def _run(plan: LaunchPlan) -> int:
    """Start the processes in order; stop all of them when one exits or on Ctrl+C."""
    env = {**os.environ, **plan.env}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index, command in enumerate(plan.commands):
            processes.append(subprocess.Popen(command, env=env))
            if index < len(plan.wait_for_ports):
                host = command[command.index("--host") + 1]
                _wait_for_port(host, plan.wait_for_ports[index])
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        return next(process.returncode for process in processes if process.poll() is not None)
    except KeyboardInterrupt:
        return 130
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
