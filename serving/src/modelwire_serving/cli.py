"""Command line of `modelwire-serve` (and of `modelwire serve`, through the plugin).

Only argparse here: the heavy modules are imported by `run` once the flags are
known, so `--help` and flag errors are instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from modelwire_serving.errors import ServeError
from modelwire_serving.loading import SOURCES, device_argument, dtype_argument

ENGINES = ("transformers", "modelscope", "vllm", "fastchat")

EPILOG = """\
engines:
  transformers (default)  load the model here and serve /llm/, /v1 and /api (continuous batching)
  modelscope              the same, loading hub ids through ModelScope (same as --source modelscope)
  vllm, fastchat          print and run that engine's OpenAI-compatible server instead

examples:
  modelwire-serve --model_name_or_path bundled:smollm2 --embedding-model bundled:minilm
  modelwire-serve --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct --device auto --port 8000
  modelwire-serve --model_name_or_path ./models --gguf_file model.Q4_K_M.gguf --device cpu
  modelwire-serve modelscope --model_name_or_path qwen/Qwen2.5-0.5B-Instruct
  modelwire-serve vllm --model_name_or_path Qwen/Qwen2.5-7B-Instruct --dry-run
"""


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 = any free port), got {port}")
    return port


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the serve flags; the seed's spellings (`--model_name_or_path`) are kept."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "engine",
        nargs="?",
        choices=ENGINES,
        default="transformers",
        help="how to serve (default: transformers)",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model_name_or_path",
        "--model-name-or-path",
        dest="model_name_or_path",
        required=True,
        help="hub id, local folder, path to a .gguf file, or bundled:smollm2",
    )
    model.add_argument(
        "--gguf_file",
        "--gguf-file",
        dest="gguf_file",
        default=None,
        help="GGUF file inside the model folder or hub repo",
    )
    model.add_argument(
        "--source",
        choices=SOURCES,
        default="huggingface",
        help="where hub ids are downloaded from (default: huggingface)",
    )
    model.add_argument(
        "--device",
        type=device_argument,
        default="auto",
        help="cpu, cuda, cuda:N, mps or auto (default: auto = cuda:0 if available, else cpu)",
    )
    model.add_argument(
        "--dtype",
        type=dtype_argument,
        default="auto",
        help="auto, float32, float16 or bfloat16 (default: auto = float32 on cpu)",
    )
    model.add_argument(
        "--embedding-model",
        "--embedding_model",
        dest="embedding_model",
        default=None,
        help="encoder served at POST /v1/embeddings (hub id, folder or bundled:minilm)",
    )
    model.add_argument("--served-model-name", default=None, help="model name in replies")
    model.add_argument("--embedding-model-name", default=None, help="embedding model name")
    model.add_argument(
        "--trust-remote-code", action="store_true", help="allow model code from the hub"
    )

    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    server.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 = free)")
    server.add_argument(
        "--api-key",
        "--api_key",
        dest="api_key",
        default=os.environ.get("MODELWIRE_SERVE_API_KEY"),
        help="require 'Authorization: Bearer KEY' (default: $MODELWIRE_SERVE_API_KEY)",
    )
    server.add_argument(
        "--threads", type=int, default=0, help="HTTP threads (default: max(16, 2*batch))"
    )
    server.add_argument(
        "--connection-limit",
        type=int,
        default=1000,
        help="open connections accepted at once (default 1000, within ulimit -n)",
    )
    server.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        help="seconds an idle connection stays open (default 30)",
    )
    server.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        help="seconds a client has to send a whole request, headers and body; then 408"
        " (default 30)",
    )

    server.add_argument(
        "--raw-prompts",
        action="store_true",
        help="POST /llm/: send a string prompt as it is (the seed's behaviour) instead of"
        " as one user turn through the chat template",
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-new-tokens",
        type=int,
        default=512,
        help="cap on generated tokens per request; larger requests get a 400 (default 512)",
    )
    limits.add_argument(
        "--max-input-tokens", type=int, default=4096, help="cap on prompt tokens (default 4096)"
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="cap on request body size; larger bodies get a 413 (default 1 MiB)",
    )
    limits.add_argument(
        "--request-timeout", type=float, default=600.0, help="seconds per request (default 600)"
    )

    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--scheduler",
        choices=("continuous", "static"),
        default="continuous",
        help="continuous: transformers' continuous-batching engine, requests join and leave the"
        " running batch at every step (default); static: batches of requests that start and end"
        " together (also serves what the engine cannot: repetition_penalty, seed)",
    )
    batching.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="requests generating at once: in flight (continuous, default 32) or per generate"
        " call (static, default 8)",
    )
    batching.add_argument(
        "--batch-window-ms",
        type=float,
        default=30.0,
        help="how long to wait for the next companion before starting a batch, four"
        " windows at most (default 30 ms)",
    )
    batching.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="continuous: tokens per engine step, prompt tokens past it are prefilled over"
        " several steps (default 2048)",
    )
    batching.add_argument(
        "--kv-page-size",
        type=int,
        default=None,
        help="continuous: tokens per KV-cache page, at least 4 (default 32)",
    )
    batching.add_argument(
        "--max-queue", type=int, default=256, help="waiting requests before 503 (default 256)"
    )

    launch = parser.add_argument_group("vllm / fastchat")
    launch.add_argument(
        "--engine-args", default="", help="extra arguments for the engine, as one string"
    )
    launch.add_argument(
        "--dry-run", action="store_true", help="print the engine command and config, do not run"
    )
    launch.add_argument(
        "--enforce-eager",
        action="store_true",
        help="vllm: skip graph compilation (starts in ~30 s instead of ~120 s on CPU)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; user errors print one line and return 2."""
    try:
        if args.engine in ("vllm", "fastchat"):
            from modelwire_serving.launchers import launch

            return launch(args)
        from modelwire_serving.server import run_server

        for flag, value, least in (
            ("--max-batch-tokens", getattr(args, "max_batch_tokens", None), 1),
            ("--kv-page-size", getattr(args, "kv_page_size", None), 4),
        ):
            if value is not None and value < least:
                raise ServeError(f"{flag} must be at least {least}, got {value}")
        if args.max_batch_size is None:
            args.max_batch_size = 32 if args.scheduler == "continuous" else 8
        return run_server(args)
    except ServeError as error:
        print(f"modelwire-serve: error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelwire-serve",
        description="Serve a Hugging Face model over HTTP for modelwire.",
    )
    configure_parser(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    sys.exit(run(args))
