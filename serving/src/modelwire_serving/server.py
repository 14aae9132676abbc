"""Start the service: load models, start the worker, serve with waitress.

The order is chosen so that mistakes fail fast: flags, model location and
port are checked before torch is imported and before a model is loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

from modelwire_serving.errors import ServeError
from modelwire_serving.loading import log, resolve_location


def check_port_free(host: str, port: int) -> None:
    """Fail before loading a model if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another --port (0 picks a free one)"
            ) from exc


def _check_limits(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--max-new-tokens", args.max_new_tokens),
        ("--max-input-tokens", args.max_input_tokens),
        ("--max-body-bytes", args.max_body_bytes),
        ("--max-batch-size", args.max_batch_size),
        ("--max-queue", args.max_queue),
        ("--threads", args.threads or 1),
        ("--connection-limit", args.connection_limit),
    ):
        if value < 1:
            raise ServeError(f"{flag} must be at least 1, got {value}")
    if args.batch_window_ms < 0 or args.request_timeout <= 0:
        raise ServeError("--batch-window-ms must be >= 0 and --request-timeout > 0")
    if args.idle_timeout <= 0 or args.read_timeout <= 0:
        raise ServeError("--idle-timeout and --read-timeout must be > 0 seconds")


#: What the printed configs carry in place of the key, so it never shows in the log.
API_KEY_PLACEHOLDER = "<fill in: the --api-key / $MODELWIRE_SERVE_API_KEY value>"


def example_configs(
    base_url: str,
    model: str,
    embedding_model: str | None,
    max_new_tokens: int = 128,
    *,
    api_key_required: bool = False,
) -> list[dict[str, Any]]:
    """modelwire configs that call this server (printed at startup, used by the demo).

    With an API key the configs carry a placeholder to fill in, never the key
    itself, and "not-needed" only when no key is needed.
    """
    api_key = API_KEY_PLACEHOLDER if api_key_required else "not-needed"
    bearer = (
        {"headers": {"Authorization": f"Bearer {API_KEY_PLACEHOLDER}"}} if api_key_required else {}
    )
    configs: list[dict[str, Any]] = [
        {
            "config_name": "flask_llm",
            "model_type": "post_api",
            "api_url": f"{base_url}/llm/",
            **bearer,
            "json_args": {"max_length": 256, "temperature": 0.0},
        },
        {
            "config_name": "flask_llm_chat",
            "model_type": "post_api_chat",
            "api_url": f"{base_url}/llm/",
            **bearer,
            "json_args": {"max_new_tokens": min(128, max_new_tokens), "temperature": 0.0},
        },
        {
            "config_name": "local_openai",
            "model_type": "openai_chat",
            "model_name": model,
            "api_key": api_key,
            "client_args": {"base_url": f"{base_url}/v1"},
        },
        {
            "config_name": "local_ollama",
            "model_type": "ollama_chat",
            "model": model,
            "host": base_url,
            **bearer,
            "options": {"temperature": 0, "num_predict": min(128, max_new_tokens)},
        },
    ]
    if embedding_model:
        configs.append(
            {
                "config_name": "local_embedding",
                "model_type": "openai_embedding",
                "model_name": embedding_model,
                "api_key": api_key,
                "client_args": {"base_url": f"{base_url}/v1"},
            }
        )
    return configs


def run_server(args: argparse.Namespace) -> int:
    """Load everything and serve until SIGINT/SIGTERM."""
    source = "modelscope" if args.engine == "modelscope" else args.source
    _check_limits(args)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    location = resolve_location(args.model_name_or_path, args.gguf_file, source)
    embed_location = (
        resolve_location(args.embedding_model, None, source) if args.embedding_model else None
    )
    if args.port:
        check_port_free(args.host, args.port)

    from modelwire_serving.loading import (
        load_embedding_model,
        load_text_model,
        resolve_device,
    )

    device = resolve_device(args.device)
    text = load_text_model(location, device, args.dtype, args.trust_remote_code)
    embedder = None
    embedding_model = None
    if embed_location is not None:
        from modelwire_serving.embeddings import Embedder

        embedding_model = load_embedding_model(embed_location, device, args.dtype)
        embedder = Embedder(embedding_model)
        if args.embedding_model_name:
            embedder.name = args.embedding_model_name

    from modelwire_serving.continuous import build_worker
    from modelwire_serving.prompts import Prompter
    from modelwire_serving.service import Limits, Service

    prompter = Prompter(text.tokenizer)
    if not prompter.has_chat_template:
        log("note: the tokenizer has no chat template; messages use a plain 'role: text' layout")
    worker = build_worker(args, text, prompter)
    worker.start()
    try:
        _warm_up(worker, prompter)
        service = Service(
            model_name=args.served_model_name or location.served_name,
            prompter=prompter,
            worker=worker,
            limits=Limits(
                max_new_tokens=args.max_new_tokens,
                max_input_tokens=min(args.max_input_tokens, text.context_length - 1),
                max_body_bytes=args.max_body_bytes,
                request_timeout=args.request_timeout,
            ),
            context_length=text.context_length,
            default_do_sample=text.default_do_sample,
            device=device,
            embedder=embedder,
            api_key=args.api_key or None,
        )
        from modelwire_serving.app import create_app

        threads = args.threads or max(16, 2 * args.max_batch_size)
        if prompter.has_chat_template:
            mode = (
                "as they are (--raw-prompts)" if args.raw_prompts else "through the chat template"
            )
            log(f'POST /llm/: string prompts go {mode}; a request\'s "raw": true/false overrides')
        serve(
            create_app(
                service,
                raw_prompts=args.raw_prompts,
                cards=_model_cards(service, text, embedding_model),
            ),
            args.host,
            args.port,
            threads,
            service,
            args.max_body_bytes,
            connection_limit=args.connection_limit,
            idle_timeout=args.idle_timeout,
            read_timeout=args.read_timeout,
        )
    finally:
        worker.stop()
    return 0


def _model_cards(service: Any, text: Any, embedding_model: Any) -> list[Any]:
    """What the Ollama routes (/api/tags, /api/show) say about the loaded models."""
    from modelwire_serving.ollama_routes import model_card

    cards = [
        model_card(
            service.model_name,
            text.model,
            text.location,
            dtype=text.dtype,
            context_length=text.context_length,
            capabilities=("completion",),
            template=str(getattr(text.tokenizer, "chat_template", None) or ""),
        )
    ]
    if service.embedder is not None and embedding_model is not None:
        cards.append(
            model_card(
                service.embedder.name,
                embedding_model.model,
                embedding_model.location,
                dtype=text.dtype,
                context_length=embedding_model.max_seq_length,
                capabilities=("embedding",),
                embedding_length=embedding_model.dimension,
            )
        )
    return cards


def _warm_up(worker: Any, prompter: Any) -> None:
    """One tiny generation, so the first client does not pay for lazy initialisation."""
    from modelwire_serving.jobs import Job
    from modelwire_serving.params import SamplingParams

    started = time.perf_counter()
    job = Job(prompter.encode_prompt("Hello"), 2, SamplingParams(do_sample=False))
    worker.submit(job)
    job.result(timeout=300)
    log(f"Warm-up generation took {time.perf_counter() - started:.1f}s")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(
    app: Any,
    host: str,
    port: int,
    threads: int,
    service: Any,
    max_body: int,
    *,
    connection_limit: int = 1000,
    idle_timeout: float = 30.0,
    read_timeout: float = 30.0,
) -> None:
    """Serve `app` with waitress (a production WSGI server) until interrupted.

    Connections are bounded in number and in time (see `connections`), so idle or
    slow clients cannot take the service offline for everyone.
    """
    from waitress import create_server

    from modelwire_serving.connections import fd_headroom, install, waitress_options

    limit = min(connection_limit, fd_headroom())
    if limit < connection_limit:
        log(f"note: --connection-limit lowered to {limit} by the open-file limit (ulimit -n)")
    socket_map: dict[int, Any] = {}
    try:
        server = create_server(
            app,
            map=socket_map,
            host=host,
            port=port,
            threads=threads,
            ident="modelwire-serve",
            **waitress_options(max_body, limit, idle_timeout),
        )
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    install(socket_map, max_body, read_timeout)
    bound_host = getattr(server, "effective_host", host)
    bound_port = getattr(server, "effective_port", port)
    display_host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    base_url = f"http://{display_host}:{bound_port}"
    embedding_name = service.embedder.name if service.embedder else None
    routes = (
        "POST /llm/, POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health"
        "; Ollama: POST /api/chat, /api/generate, /api/show, GET /api/tags, /api/ps, /api/version"
    )
    if embedding_name:
        routes = routes.replace("GET /v1/models", "POST /v1/embeddings, GET /v1/models")
        routes = routes.replace("/api/show", "/api/show, /api/embed, /api/embeddings")
    log(f"Routes: {routes}")
    log("modelwire configs for this server:")
    configs = example_configs(
        base_url,
        service.model_name,
        embedding_name,
        service.limits.max_new_tokens,
        api_key_required=bool(service.api_key),
    )
    for config in configs:
        log("  " + json.dumps(config))
    if service.api_key:
        log(
            "  (an API key is required: put it where the configs say "
            f"{API_KEY_PLACEHOLDER!r}, or send 'Authorization: Bearer <key>')"
        )
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    log(f"modelwire-serve: listening on {base_url} (press Ctrl+C to stop)")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        log("modelwire-serve: stopped")
        sys.stdout.flush()
