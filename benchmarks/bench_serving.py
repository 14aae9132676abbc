"""Serving throughput and latency: modelwire-serve vs a seed-style service vs its peers.

One model, the same 8 chat prompts, greedy, the same `max_new_tokens` (32), at
1, 4, 8, 16 and 32 concurrent clients, then one row of answers of mixed lengths
(`max_new_tokens` from 8 to 128, at 16 clients), every service in one run:

  baseline               the seed's Flask script: one `model.generate` per request
                         under a lock (concurrent generate calls on one CPU model only
                         thrash), behind waitress, in a process of its own (this script
                         with `--serve-baseline`)
  serving                `python -m modelwire_serving` (= `modelwire-serve`) on its
                         default scheduler (continuous batching on transformers' engine;
                         `--scheduler static` for the static batches), in its own process
                         as a user starts it, same model flags and dtype
  serving-static         `--with-static`: the same on `--scheduler static`
  serving-NAME           `--variant NAME=FLAGS`: the same with extra flags (A/B runs)
  transformers-serve-cb  the peer: `transformers serve --continuous-batching` in its own
                         process (`--peer-modes sequential,continuous` adds its default,
                         one-at-a-time mode as `transformers-serve`)
  vllm                   `--with-vllm`: `modelwire-serve vllm` (vLLM's CPU build,
                         `--enforce-eager`, same dtype) from the engines venv
                         (`make test-engines` builds `.venv-engines`); skipped with a
                         message when that venv is absent

The baseline and ours get the same chat-formatted strings on POST /llm/ (`"raw":
true`, so the string is used as it is); the peers get the same user messages on
POST /v1/chat/completions and apply the same chat template (same tokenizer).
Every service runs in its own process, started, awaited (GET /health or
/v1/models), logged and stopped the same way (`PeerProcess`), so none shares
this process's interpreter lock with the client threads.

`transformers serve` cannot load the bundled GGUF file itself (for a GGUF config
it looks up `config.architectures`, which the GGUF reader leaves empty, and fails);
and a GGUF-loaded model refuses `save_pretrained`. So the model this process loads
(the GGUF dequantized to float32 by transformers) is copied into a plain model of
the same class and saved with `save_pretrained` to a temporary folder under /tmp,
next to the GGUF's own tokenizer; the peer loads that folder with
`--dtype float32 --device cpu`. Same weights, same tokenizer and chat template;
the folder is deleted at the end. A checkpoint that is not GGUF (a folder, or a
hub id in the local cache) is given to the peer as it is. vLLM gets the model spec
itself (`modelwire-serve vllm` converts a GGUF the same way, once, in its cache).

Per request: client-side wall time and the completion tokens the service
reports in `usage.completion_tokens` (the peers count the end-of-sequence token
of an answer that ends before the limit; that token is subtracted so that all
count alike; the raw count is kept in the JSON). Per (service, clients):
tokens/s and requests/s over the run's wall time, p50 and p95 latency (nearest
rank); per service its start-up time and resident memory at the end. Every
service is warmed up untimed; the order of the services rotates from one client
count to the next, so drift on the shared machine hits all.
Targets (issue 22): tokens/s >= 1.0x the peer at every client count, >= 5x the
seed-style service at 16 clients, p95 latency at 16 clients no worse than the
peer's; vLLM >= 0.8x is the goal past that.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_serving.py [--clients 1,4,8,16,32] [--json]
      (--requests 4 --clients 1,16 --mixed-clients 0 for a short check)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROMPTS = [
    "Tell me about cats.",
    "What is Python used for?",
    "Describe the sea in two sentences.",
    "Name three colors and one fruit.",
    "Why is the sky blue?",
    "What is seven times eight?",
    "Write a haiku about rain.",
    "Explain gravity to a child.",
]

BASELINE, SERVING, SERVING_STATIC, PEER, PEER_CB, VLLM = (
    "baseline",
    "serving",
    "serving-static",
    "transformers-serve",
    "transformers-serve-cb",
    "vllm",
)
PEER_MODES = {"sequential": PEER, "continuous": PEER_CB}
#: The seed-style target: ours / baseline tokens/s at this many clients.
TARGET_CLIENTS, TARGET_RATIO = 16, 5.0
#: max_new_tokens of the mixed-length row, cycled over its requests (8..128).
MIXED_LENGTHS = [8, 128, 16, 96, 32, 64, 24, 112, 48, 80, 40, 120, 56, 72, 88, 104]
ENGINES_VENV = Path(__file__).resolve().parent.parent / ".venv-engines"


# -- measurements ----------------------------------------------------------------------------
@dataclass
class Reply:
    """One request as the client saw it."""

    prompt: int
    latency: float
    completion_tokens: int
    prompt_tokens: int | None
    text: str
    reported_tokens: int


@dataclass
class Run:
    """One service at one client count."""

    service: str
    clients: int
    seconds: float
    replies: list[Reply] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return sum(reply.completion_tokens for reply in self.replies)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds

    @property
    def requests_per_second(self) -> float:
        return len(self.replies) / self.seconds

    def latency(self, quantile: float) -> float:
        """Nearest-rank percentile of the request latencies, in seconds."""
        ordered = sorted(reply.latency for reply in self.replies)
        return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "clients": self.clients,
            "requests": len(self.replies),
            "seconds": round(self.seconds, 3),
            "completion_tokens": self.completion_tokens,
            "reported_completion_tokens": sum(r.reported_tokens for r in self.replies),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "requests_per_second": round(self.requests_per_second, 3),
            "p50_s": round(self.latency(0.50), 3),
            "p95_s": round(self.latency(0.95), 3),
            "latencies_s": [round(reply.latency, 3) for reply in self.replies],
        }


# -- the services ----------------------------------------------------------------------------
#: Send request number `number` (its prompt is PROMPTS[number % 8]) with this token budget.
Send = Callable[[httpx.Client, int, int], Reply]


@dataclass
class Target:
    """A running service and how to send it prompt number `i`."""

    name: str
    url: str
    send: Send
    description: str


def seed_style_app(model: Any, tokenizer: Any, eos_ids: frozenset[int]) -> Any:
    """The seed's setup_hf_service.py route: tokenize, generate, decode; one at a time."""
    import torch
    from flask import Flask, request

    app = Flask("seed_baseline")
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict[str, Any]:  # for the benchmark's ready wait only
        return {"status": "ok"}

    @app.post("/llm/")
    def llm() -> dict[str, Any]:
        body = request.get_json()
        prompt = body.pop("inputs")
        encoded = tokenizer(prompt, return_tensors="pt")
        with lock, torch.inference_mode():
            output = model.generate(
                encoded.input_ids, attention_mask=encoded.attention_mask, **body
            )
        new = output[0][encoded.input_ids.shape[1] :].tolist()
        while new and new[-1] in eos_ids:
            new.pop()
        text = tokenizer.decode(new, skip_special_tokens=True)
        usage = {"prompt_tokens": encoded.input_ids.shape[1], "completion_tokens": len(new)}
        return {"response": text, "usage": usage}

    return app


def serve_baseline(args: argparse.Namespace) -> int:
    """`--serve-baseline`: the seed-style service alone in this process, until SIGTERM."""
    from waitress import serve

    from modelwire_serving.loading import dtype_argument, load_text_model, resolve_location

    location = resolve_location(args.model_name_or_path, args.gguf_file)
    text = load_text_model(location, "cpu", dtype_argument(args.dtype))
    app = seed_style_app(text.model, text.tokenizer, text.eos_token_ids)
    serve(app, host="127.0.0.1", port=args.port, threads=args.threads)
    return 0


def llm_sender(rendered: list[str], settings: dict[str, Any]) -> Send:
    """POST /llm/ with a chat-formatted string (the baseline's and our route)."""

    def send(session: httpx.Client, number: int, max_new_tokens: int) -> Reply:
        index = number % len(PROMPTS)
        body = {"inputs": rendered[index], **settings, "max_new_tokens": max_new_tokens}
        started = time.perf_counter()
        reply = session.post("/llm/", json=body)
        latency = time.perf_counter() - started
        reply.raise_for_status()
        body = reply.json()
        tokens = int(body["usage"]["completion_tokens"])
        prompt_tokens = body["usage"].get("prompt_tokens")
        return Reply(index, latency, tokens, prompt_tokens, body["response"], tokens)

    return send


def chat_sender(counts_eos: bool, model: str | None = None) -> Send:
    """POST /v1/chat/completions with the user message, greedy (temperature 0)."""

    def send(session: httpx.Client, number: int, max_new_tokens: int) -> Reply:
        index = number % len(PROMPTS)
        payload: dict[str, Any] = {
            "messages": [{"role": "user", "content": PROMPTS[index]}],
            "max_tokens": max_new_tokens,
            "temperature": 0,
        }
        if model:
            payload["model"] = model
        started = time.perf_counter()
        reply = session.post("/v1/chat/completions", json=payload)
        latency = time.perf_counter() - started
        reply.raise_for_status()
        body = reply.json()
        choice = body["choices"][0]
        reported = int(body["usage"]["completion_tokens"])
        # transformers serve and vLLM count the end-of-sequence token of an answer that
        # stops early; ours and the baseline count the answer's tokens only.
        tokens = reported - 1 if counts_eos and choice["finish_reason"] == "stop" else reported
        text = choice["message"]["content"] or ""
        return Reply(index, latency, tokens, body["usage"].get("prompt_tokens"), text, reported)

    return send


def drive(target: Target, clients: int, per_client: int, budget: Callable[[int], int]) -> Run:
    """`clients` threads, each sending `per_client` requests back to back.

    Request number `index + step * clients` gets `budget(number)` new tokens.
    """
    # Clients are created before the clock starts: creating one is not free (SSL context).
    sessions = [httpx.Client(base_url=target.url, timeout=600) for _ in range(clients)]
    replies: list[list[Reply]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    stopping = threading.Event()

    def client(index: int) -> None:
        try:
            for step in range(per_client):
                if stopping.is_set():  # the run was interrupted
                    return
                number = index + step * clients
                replies[index].append(target.send(sessions[index], number, budget(number)))
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    # Daemon threads: on Ctrl-C the process exits without waiting for requests in flight.
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    try:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        stopping.set()
        for session in sessions:
            session.close()
    if errors:
        raise RuntimeError(f"{target.name}: a request failed: {errors[0]!r}") from errors[0]
    return Run(
        target.name, clients, seconds, [r for client_replies in replies for r in client_replies]
    )


# -- the peer: `transformers serve` in a subprocess ----------------------------------------
def export_plain_copy(text: Any, folder: str, source: str, gguf_file: str) -> None:
    """Save the loaded (GGUF-dequantized) model and the GGUF's tokenizer as a plain folder.

    A GGUF-loaded model refuses `save_pretrained` (its quantizer is marked not
    serializable), so its tensors are moved into a plain model of the same class,
    built on the meta device, and that one is saved.
    """
    import copy

    import torch
    from transformers import AutoTokenizer

    model = text.model
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), assign=True)
    plain.generation_config = copy.deepcopy(model.generation_config)
    plain.save_pretrained(folder)
    # The tokenizer as the GGUF defines it (ours was set up for left padding).
    AutoTokenizer.from_pretrained(source, gguf_file=gguf_file).save_pretrained(folder)


WORKDIR_PREFIX = "bench-serving-"


def remove_stale_workdirs() -> None:
    """Remove the temporary folders of earlier runs whose process is gone (killed outright)."""
    for path in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name.removeprefix(WORKDIR_PREFIX).partition("-")[0]
        if not pid.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            continue


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this process dies, if possible."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


class PeerProcess:
    """One peer server process; `stop()` always ends its whole process group."""

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        ready_path: str,
        log_dir: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.command = command
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir, f"{name}-{self.port}.log")
        self.started = time.perf_counter()
        self.ready_seconds: float | None = None
        full_env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
            **(env or {}),
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,  # its own group: stop() ends it and any child
                preexec_fn=_die_with_parent(),
            )

    @classmethod
    def transformers_serve(
        cls, folder: str, dtype: str, continuous: bool, log_dir: str, num_blocks: int = 0
    ) -> PeerProcess:
        port = free_port()
        cli = Path(sys.executable).with_name("transformers")
        command = [
            str(cli) if cli.exists() else shutil.which("transformers") or "transformers",
            "serve",
            folder,
            "--device",
            "cpu",
            "--dtype",
            dtype,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if continuous:
            command.append("--continuous-batching")
            if num_blocks:
                command += ["--cb-num-blocks", str(num_blocks)]
        name = PEER_CB if continuous else PEER
        return cls(name, command, port, "/health", log_dir)

    @classmethod
    def modelwire_serve(
        cls, name: str, args: argparse.Namespace, dtype: str, flags: list[str], log_dir: str
    ) -> PeerProcess:
        """`python -m modelwire_serving ...` (= `modelwire-serve`), as a user starts it."""
        port = free_port()
        command = [sys.executable, "-m", "modelwire_serving", *model_flags(args)]
        command += ["--device", "cpu", "--dtype", dtype, "--host", "127.0.0.1"]
        command += ["--port", str(port), *flags]
        # No key: the benchmark sends none (an inherited $MODELWIRE_SERVE_API_KEY would 401).
        env = {"PYTHONUNBUFFERED": "1", "MODELWIRE_SERVE_API_KEY": ""}
        return cls(name, command, port, "/health", log_dir, env)

    @classmethod
    def seed_baseline(
        cls, args: argparse.Namespace, dtype: str, threads: int, log_dir: str
    ) -> PeerProcess:
        """This script with `--serve-baseline`: the seed-style service in a process of its own."""
        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline"]
        command += [*model_flags(args), "--dtype", dtype]
        command += ["--port", str(port), "--threads", str(threads)]
        return cls(BASELINE, command, port, "/health", log_dir, {"PYTHONUNBUFFERED": "1"})

    @classmethod
    def vllm(cls, spec: str, dtype: str, log_dir: str) -> PeerProcess:
        """`modelwire-serve vllm` from the engines venv, as its README starts it."""
        port = free_port()
        command = [
            str(ENGINES_VENV / "bin" / "modelwire-serve"),
            "vllm",
            "--model_name_or_path",
            spec,
            "--port",
            str(port),
            "--enforce-eager",
            "--dtype",
            dtype,
        ]
        env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
        return cls(VLLM, command, port, "/v1/models", log_dir, env)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200:
                    self.ready_seconds = time.perf_counter() - self.started
                    return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so that the cleanup in `finally` runs."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def model_flags(args: argparse.Namespace) -> list[str]:
    """`--model_name_or_path` (and `--gguf_file`) as the benchmark was given them."""
    flags = ["--model_name_or_path", args.model_name_or_path]
    return flags + (["--gguf_file", args.gguf_file] if args.gguf_file else [])


def health(url: str) -> dict[str, Any]:
    """GET /health of one of our services."""
    reply = httpx.get(f"{url}/health", timeout=30)
    reply.raise_for_status()
    return dict(reply.json())


def rss_mib(group: int) -> float | None:
    """Resident memory of a process group (a service and any children), in MiB; Linux only."""
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) != group:  # fields[2] is the process group id
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                found = True
    return round(total / 1024, 1) if found else None


# -- the sweep -------------------------------------------------------------------------------
def per_client(clients: int, min_requests: int) -> int:
    """At least `min_requests` per run and at least 2 per client."""
    return max(2, math.ceil(min_requests / clients))


def ratio(ours: Run, other: Run | None) -> float | None:
    if other is None or other.tokens_per_second == 0:
        return None
    return round(ours.tokens_per_second / other.tokens_per_second, 3)


def agreement(runs: list[Run]) -> dict[str, Any]:
    """Per service: answers and token counts per prompt, and whether they match the baseline's."""
    answers: dict[str, dict[int, Reply]] = {}
    for run in runs:
        for reply in run.replies:
            answers.setdefault(run.service, {}).setdefault(reply.prompt, reply)
    base = answers.get(BASELINE, {})
    out: dict[str, Any] = {}
    for service, replies in answers.items():
        same = [i for i, r in replies.items() if i in base and r.text == base[i].text]
        out[service] = {
            "same_text_as_baseline": f"{len(same)}/{len(replies)}",
            "completion_tokens_per_prompt": {
                PROMPTS[i]: r.completion_tokens for i, r in sorted(replies.items())
            },
            "prompt_tokens_per_prompt": {
                PROMPTS[i]: r.prompt_tokens for i, r in sorted(replies.items())
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name_or_path", default="bundled:smollm2")
    parser.add_argument("--gguf_file", default=None)
    parser.add_argument("--dtype", default="auto", help="auto (float32 on cpu) or bfloat16")
    parser.add_argument(
        "--clients",
        default="1,4,8,16,32",
        help="comma-separated client counts (default 1,4,8,16,32)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=8,
        help="requests per service and client count: at least this many (default 8), "
        "and at least 2 per client",
    )
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument(
        "--mixed-clients",
        type=int,
        default=16,
        help="clients of the mixed-length row, max_new_tokens 8..128 (default 16; 0 = no row)",
    )
    parser.add_argument(
        "--scheduler",
        choices=("continuous", "static"),
        default="continuous",
        help="modelwire-serve's scheduler (default continuous, its default)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="modelwire-serve's --max-batch-size (default: its own, 32 continuous / 8 static)",
    )
    parser.add_argument(
        "--batch-window-ms", type=float, default=30.0, help="modelwire-serve's default"
    )
    parser.add_argument(
        "--with-static",
        action="store_true",
        help="also run modelwire-serve's app on --scheduler static (row serving-static)",
    )
    parser.add_argument(
        "--peer-modes",
        default="continuous",
        help="transformers serve modes to run: continuous (--continuous-batching, the "
        "default), sequential (its default mode), both comma-separated, or none",
    )
    parser.add_argument(
        "--peer-kv-blocks",
        type=int,
        default=None,
        help="transformers serve --continuous-batching's --cb-num-blocks (default: the KV "
        "cache modelwire-serve holds per engine, in 256-token blocks; 0 = the peer's own "
        "default, sized from the machine's RAM, which can exhaust a shared machine's memory)",
    )
    parser.add_argument(
        "--with-vllm",
        action="store_true",
        help="add vLLM (modelwire-serve vllm from .venv-engines, --enforce-eager) as a peer",
    )
    parser.add_argument(
        "--serve-args",
        default="",
        help="extra modelwire-serve flags for the serving row, as one string",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="also run modelwire-serve with these extra flags as row serving-NAME, e.g. "
        "'mbt8192=--max-batch-tokens 8192' (repeatable; for A/B runs)",
    )
    parser.add_argument(
        "--without-baseline",
        action="store_true",
        help="skip the seed-style service (for short A/B runs between our rows and the peers)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    # Internal: the seed-style service in a process of its own (started by the sweep).
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline:
        return serve_baseline(args)
    levels = [int(value) for value in args.clients.split(",") if value.strip()]
    modes = [m.strip() for m in args.peer_modes.split(",") if m.strip() and m.strip() != "none"]
    unknown = [m for m in modes if m not in PEER_MODES]
    if not levels or min(levels) < 1 or unknown or args.mixed_clients < 0:
        parser.error(f"bad --clients or --peer-modes ({', '.join(unknown) or args.clients})")
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        if not name.strip() or not flags.strip() or f"{SERVING}-{name}" in (SERVING_STATIC,):
            parser.error(
                f"bad --variant {variant!r}: NAME=FLAGS, e.g. 'mbt8192=--max-batch-tokens 8192'"
            )
    os.environ["HF_HUB_OFFLINE"] = "1"
    began = time.perf_counter()
    try:
        with terminate_as_exit():
            report = sweep(args, levels, modes)
    except BaseException as exc:  # the servers and the peer are stopped by now
        if isinstance(exc, KeyboardInterrupt):
            print("bench_serving: interrupted; servers stopped", file=sys.stderr)
            code = 130
        elif isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        # No interpreter teardown: a request thread may still be inside `generate`,
        # and tearing torch down under it aborts the process.
        os._exit(code)
    report["seconds"] = round(time.perf_counter() - began, 1)
    report["command"] = "benchmarks/bench_serving.py " + " ".join(argv or sys.argv[1:])
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_table(report)
    sys.stdout.flush()
    # A client thread may still be closing its connection; skip teardown as on errors.
    os._exit(0)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ours_flags(args: argparse.Namespace, scheduler: str, threads: int) -> list[str]:
    """modelwire-serve's flags for one of our rows (the model and port flags come on top)."""
    flags = ["--scheduler", scheduler, "--batch-window-ms", f"{args.batch_window_ms:g}"]
    if args.max_batch_size:
        flags += ["--max-batch-size", str(args.max_batch_size)]
    cap = max(512, args.max_new_tokens, max(MIXED_LENGTHS))
    return [*flags, "--threads", str(threads), "--max-new-tokens", str(cap)]


def sweep(args: argparse.Namespace, levels: list[int], modes: list[str]) -> dict[str, Any]:
    from modelwire_serving.continuous import DEFAULT_MAX_BATCH_SIZE, KV_TOKENS_PER_SLOT
    from modelwire_serving.loading import (
        dtype_argument,
        load_text_model,
        materialize,
        resolve_location,
    )
    from modelwire_serving.prompts import Prompter

    location = resolve_location(args.model_name_or_path, args.gguf_file)
    started = time.perf_counter()
    # Loaded here for the prompts' chat template and the peer's plain copy; every service
    # loads the model again in its own process. Its log lines go to stderr: stdout is the report.
    with contextlib.redirect_stdout(sys.stderr):
        text = load_text_model(location, "cpu", dtype_argument(args.dtype))
    load_seconds = time.perf_counter() - started
    prompter = Prompter(text.tokenizer)
    # The same chat-formatted strings go to the baseline and to ours ("inputs" used as they are).
    rendered = [prompter.render_messages([{"role": "user", "content": p}]) for p in PROMPTS]
    settings = {"do_sample": False}
    ours_settings = {**settings, "raw": True}  # the string is already chat-formatted

    vllm_note = None
    if args.with_vllm and not (ENGINES_VENV / "bin" / "modelwire-serve").exists():
        vllm_note = f"no vLLM row: {ENGINES_VENV} is absent (make test-engines builds it)"
        say(vllm_note)

    remove_stale_workdirs()
    workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
    peers: dict[str, PeerProcess] = {}
    services: dict[str, PeerProcess] = {}  # the baseline and ours
    export_seconds = 0.0
    threads = max(16, 2 * max([*levels, args.mixed_clients]))
    ours_rows: dict[str, list[str]] = {
        SERVING: ours_flags(args, args.scheduler, threads) + shlex.split(args.serve_args)
    }
    if args.with_static and args.scheduler != "static":
        ours_rows[SERVING_STATIC] = ours_flags(args, "static", threads)
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        ours_rows[f"{SERVING}-{name.strip()}"] = ours_flags(
            args, args.scheduler, threads
        ) + shlex.split(flags)
    # The peer sizes its KV cache from the machine's total RAM by default (~0.8-0.9 of it,
    # touched as blocks are used: 12.5 GB resident after a few hundred requests here, killed
    # by the OOM killer beside our services); it gets the KV capacity ours holds instead.
    peer_blocks = args.peer_kv_blocks
    if peer_blocks is None:
        slots = args.max_batch_size or DEFAULT_MAX_BATCH_SIZE["continuous"]
        peer_blocks = math.ceil(slots * KV_TOKENS_PER_SLOT / 256) + 1
    try:
        # Every service in a process of its own, started the same way: ready wait, log,
        # stop() ends its process group, and it gets SIGTERM when this process dies.
        if not args.without_baseline:
            services[BASELINE] = PeerProcess.seed_baseline(args, text.dtype, threads, workdir)
        for name, flags in ours_rows.items():
            services[name] = PeerProcess.modelwire_serve(name, args, text.dtype, flags, workdir)
        if modes:
            folder = materialize(location)  # a folder, or a hub id from the local cache
            if location.gguf_file:
                source, folder = folder, os.path.join(workdir, "model")
                say(f"saving a plain copy of the model for transformers serve in {folder}...")
                started = time.perf_counter()
                export_plain_copy(text, folder, source, location.gguf_file)
                export_seconds = time.perf_counter() - started
            for mode in modes:
                peer = PeerProcess.transformers_serve(
                    folder, text.dtype, mode == "continuous", workdir, peer_blocks
                )
                peers[peer.name] = peer
        if args.with_vllm and vllm_note is None:
            peers[VLLM] = PeerProcess.vllm(args.model_name_or_path, text.dtype, workdir)
        targets: list[Target] = []
        for name, service in services.items():
            service.wait_ready(timeout=300)
            say(f"{name} ready {service.ready_seconds:.1f} s after its start")
        if BASELINE in services:
            targets.append(
                Target(
                    BASELINE,
                    services[BASELINE].url,
                    llm_sender(rendered, settings),
                    "seed Flask script: one generate per request, under a lock (waitress, "
                    "own process)",
                )
            )
        infos = {name: health(services[name].url) for name in ours_rows}
        for name, flags in ours_rows.items():
            info = infos[name]
            scheduler = info.get("scheduler", "static")
            shape = (
                f"continuous batching, up to {info['max_batch_size']} requests in flight"
                if scheduler == "continuous"
                else f"static batches of up to {info['max_batch_size']}, "
                f"{args.batch_window_ms:g} ms window"
            )
            shown = " ".join(shlex.quote(flag) for flag in flags)
            targets.append(
                Target(
                    name,
                    services[name].url,
                    llm_sender(rendered, ours_settings),
                    f"modelwire-serve {shown}, POST /llm/ (own process; {shape})",
                )
            )
        # Warm-up, untimed: two concurrent requests per service. Our chat route is checked
        # once too.
        fixed = lambda number: args.max_new_tokens  # noqa: E731 - the budget of the sweep
        for target in targets:
            drive(target, 2, 1, fixed)
        with httpx.Client(base_url=services[SERVING].url, timeout=600) as session:
            chat = chat_sender(counts_eos=False)(session, 0, args.max_new_tokens)
            llm = llm_sender(rendered, ours_settings)(session, 0, args.max_new_tokens)
        chat_route = {
            "same_text_as_llm_route": chat.text == llm.text,
            "completion_tokens": [chat.completion_tokens, llm.completion_tokens],
            "prompt_tokens": [chat.prompt_tokens, llm.prompt_tokens],
        }
        descriptions = {
            PEER: "transformers serve (default mode, sequential), POST /v1/chat/completions "
            "(own process)",
            PEER_CB: "transformers serve --continuous-batching, POST /v1/chat/completions "
            "(own process)",
            VLLM: f"vLLM CPU build via modelwire-serve vllm --enforce-eager --dtype {text.dtype}"
            f", POST /v1/chat/completions (own processes, from {ENGINES_VENV.name})",
        }
        for name, peer in peers.items():
            peer.wait_ready(timeout=900 if name == VLLM else 300)
            say(f"{name} ready {peer.ready_seconds:.1f} s after its start")
            model = location.served_name if name == VLLM else None
            targets.append(
                Target(
                    name, peer.url, chat_sender(counts_eos=True, model=model), descriptions[name]
                )
            )
            drive(
                targets[-1], 2, 1, fixed
            )  # warm-up (continuous batching starts on a first request)
        stats_before = {name: health(services[name].url)["batch_sizes"] for name in ours_rows}

        runs: list[Run] = []
        for position, clients in enumerate(levels):
            runs += run_level(targets, position, clients, per_client(clients, args.requests), fixed)
        mixed_runs: list[Run] = []
        if args.mixed_clients:
            clients = args.mixed_clients
            mixed_runs = run_level(
                targets,
                len(levels),
                clients,
                per_client(clients, max(args.requests, 2 * clients)),
                lambda number: MIXED_LENGTHS[number % len(MIXED_LENGTHS)],
            )
        time.sleep(0.2)  # the last batch's bookkeeping ends just after its replies
        infos = {name: health(services[name].url) for name in ours_rows}
        batch_sizes = {
            name: {
                int(size): n - stats_before[name].get(size, 0)
                for size, n in sorted(info["batch_sizes"].items(), key=lambda item: int(item[0]))
                if n - stats_before[name].get(size, 0)
            }
            for name, info in infos.items()
        }
        scheduler_keys = ("scheduler", "running", "fallback_requests", "fallback_reasons")
        schedulers_seen = {
            name: {
                key: info[key] for key in (*scheduler_keys, "cancelled", "engine") if key in info
            }
            for name, info in infos.items()
        }
        memory = {
            name: rss_mib(process.process.pid) for name, process in {**services, **peers}.items()
        }
    finally:
        for process in [*peers.values(), *services.values()]:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    by_key = {(run.service, run.clients): run for run in runs}
    names = [t.name for t in targets]
    level_reports = [level_report(by_key, names, clients, args.requests) for clients in levels]
    mixed_report = None
    if mixed_runs:
        mixed_key = {(run.service, run.clients): run for run in mixed_runs}
        mixed_report = {
            **level_report(mixed_key, names, args.mixed_clients, 2 * args.mixed_clients),
            "max_new_tokens": f"{min(MIXED_LENGTHS)}..{max(MIXED_LENGTHS)}, cycled",
        }
    report_targets = targets_met(by_key, levels, mixed_runs, args.mixed_clients)
    seed_target = next(
        (t for t in report_targets if t["figure"].startswith(f"{SERVING}/{BASELINE}")), None
    )
    return {
        "model": location.served_name,
        "dtype": text.dtype,
        "settings": {
            **settings,
            "max_new_tokens": args.max_new_tokens,
            "clients": levels,
            "mixed_clients": args.mixed_clients,
            "min_requests": args.requests,
            "prompts": len(PROMPTS),
            "scheduler": args.scheduler,
            "max_batch_size": {name: info["max_batch_size"] for name, info in infos.items()},
            "batch_window_ms": args.batch_window_ms,
            "peer_modes": modes,
            "peer_kv_blocks": peer_blocks or "its default (from RAM)",
            "with_vllm": args.with_vllm,
        },
        "services": {t.name: t.description for t in targets},
        "peer_commands": {name: peer.command for name, peer in peers.items()},
        "service_commands": {name: service.command for name, service in services.items()},
        "rss_mib": memory,
        "peer_model": (
            f"the GGUF as dequantized by transformers in this process, saved with "
            f"save_pretrained ({text.dtype} safetensors + the GGUF's tokenizer) to a temporary "
            f"folder"
            if location.gguf_file
            else "the same checkpoint"
        ),
        "notes": [note for note in (vllm_note,) if note],
        "load_seconds": {
            "benchmark_process": round(load_seconds, 1),
            "export_for_peer": round(export_seconds, 1),
            **{
                f"{n} (ready by)": round(p.ready_seconds or 0, 1)
                for n, p in {**services, **peers}.items()
            },
        },
        "levels": level_reports,
        "mixed": mixed_report,
        "target": seed_target or {"figure": "", "ratio": TARGET_RATIO, "value": None, "met": None},
        "targets": report_targets,
        "batch_sizes": batch_sizes,
        "schedulers": schedulers_seen,
        "chat_route": chat_route,
        "agreement": agreement(runs),
        "token_counting": "usage.completion_tokens as each service reports it; for transformers "
        "serve and vLLM minus 1 when finish_reason is 'stop' (they count the end-of-sequence "
        "token)",
    }


def run_level(
    targets: list[Target],
    position: int,
    clients: int,
    count: int,
    budget: Callable[[int], int],
) -> list[Run]:
    """Every service at one client count, in an order that rotates with `position`."""
    runs = []
    shift = position % len(targets)
    for target in targets[shift:] + targets[:shift]:
        say(f"{target.name}: {clients} clients x {count} requests...")
        run = drive(target, clients, count, budget)
        say(
            f"  {run.seconds:.1f} s, {run.tokens_per_second:.1f} tokens/s, "
            f"p50 {run.latency(0.5):.2f} s, p95 {run.latency(0.95):.2f} s"
        )
        runs.append(run)
    return runs


def level_report(
    by_key: dict[tuple[str, int], Run], names: list[str], clients: int, requests: int
) -> dict[str, Any]:
    ours = by_key[(SERVING, clients)]
    return {
        "clients": clients,
        "requests_per_client": per_client(clients, requests),
        "runs": {name: by_key[(name, clients)].to_dict() for name in names},
        "ratios": {
            f"{SERVING}/{name}": ratio(ours, by_key[(name, clients)])
            for name in names
            if name != SERVING
        },
    }


def targets_met(
    by_key: dict[tuple[str, int], Run], levels: list[int], mixed: list[Run], mixed_clients: int
) -> list[dict[str, Any]]:
    """The issue's targets that this run can judge (a missing service or level is skipped)."""
    out: list[dict[str, Any]] = []

    def add(figure: str, value: float | None, threshold: float) -> None:
        if value is not None:
            out.append(
                {"figure": figure, "ratio": threshold, "value": value, "met": value >= threshold}
            )

    for clients in levels:
        ours = by_key[(SERVING, clients)]
        add(
            f"{SERVING}/{PEER_CB} tokens/s at {clients} clients",
            ratio(ours, by_key.get((PEER_CB, clients))),
            1.0,
        )
        if clients == TARGET_CLIENTS:
            add(
                f"{SERVING}/{BASELINE} tokens/s at {clients} clients",
                ratio(ours, by_key.get((BASELINE, clients))),
                TARGET_RATIO,
            )
            peer = by_key.get((PEER_CB, clients))
            if peer is not None:
                add(
                    f"{PEER_CB} p95 / {SERVING} p95 latency at {clients} clients",
                    round(peer.latency(0.95) / ours.latency(0.95), 3),
                    1.0,
                )
        if clients in (8, 16):
            add(
                f"{SERVING}/{VLLM} tokens/s at {clients} clients (goal)",
                ratio(ours, by_key.get((VLLM, clients))),
                0.8,
            )
    if mixed:
        mixed_key = {run.service: run for run in mixed}
        add(
            f"{SERVING}/{PEER_CB} tokens/s, mixed lengths at {mixed_clients} clients",
            ratio(mixed_key[SERVING], mixed_key.get(PEER_CB)),
            1.0,
        )
    return out


def print_table(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print(
        f"model {report['model']} ({report['dtype']}, cpu), max_new_tokens="
        f"{settings['max_new_tokens']}, greedy, {settings['prompts']} prompts; "
        f"{report['seconds']:.0f} s in all"
    )
    print(f"command: {report['command']}")
    for name, description in report["services"].items():
        print(f"  {name}: {description}")
    for note in report["notes"]:
        print(f"  note: {note}")
    header = (
        f"\n{'clients':>7}  {'service':<22}{'requests':>9}{'seconds':>9}{'req/s':>8}"
        f"{'tokens':>8}{'tok/s':>8}{'p50 s':>8}{'p95 s':>8}"
    )
    print(header)
    levels = list(report["levels"])
    if report["mixed"]:
        levels.append(report["mixed"])
    for level in levels:
        if level is report["mixed"]:
            print(f"mixed lengths (max_new_tokens {level['max_new_tokens']}):")
        for run in level["runs"].values():
            print(
                f"{run['clients']:>7}  {run['service']:<22}{run['requests']:>9}"
                f"{run['seconds']:>9.1f}{run['requests_per_second']:>8.2f}"
                f"{run['completion_tokens']:>8}{run['tokens_per_second']:>8.1f}"
                f"{run['p50_s']:>8.2f}{run['p95_s']:>8.2f}"
            )
        ratios = ", ".join(
            f"{name} {value:.2f}x" for name, value in level["ratios"].items() if value is not None
        )
        print(f"{'':>9}tokens/s ratios: {ratios}")
    print("\ntargets:")
    for target in report["targets"]:
        met = "yes" if target["met"] else "NO"
        print(f"  {target['figure']} >= {target['ratio']:g}: {target['value']:.2f}, met: {met}")
    for name, sizes in report["batch_sizes"].items():
        shown = ", ".join(f"{n}x{size}" for size, n in sizes.items())
        print(f"{name} batches in the sweep (count x size): {shown}")
    print(f"schedulers: {report['schedulers']}")
    same = ", ".join(
        f"{name} {a['same_text_as_baseline']}" for name, a in report["agreement"].items()
    )
    print(f"answers identical to the baseline's (per prompt): {same}")
    print(f"load seconds: {report['load_seconds']}")


if __name__ == "__main__":
    sys.exit(main())
