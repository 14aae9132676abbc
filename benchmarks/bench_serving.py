"""Throughput of modelwire-serve's batching worker against a seed-style service.

Both services run in this process, on the same loaded model, behind the same
WSGI server (waitress), and get the same prompts from the same 8 concurrent
clients with the same settings (greedy, fixed `max_new_tokens`):

  baseline  the seed's Flask script: one `model.generate` per request, under a
            lock (concurrent generate calls on one CPU model only thrash)
  serving   modelwire-serve's app: one worker batching concurrent requests

Run:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_serving.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
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


@dataclass
class Result:
    """One service's run."""

    name: str
    requests: int
    seconds: float
    completion_tokens: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds


def seed_style_app(model: Any, tokenizer: Any, eos_ids: frozenset[int]) -> Any:
    """The seed's setup_hf_service.py route: tokenize, generate, decode; one at a time."""
    import torch
    from flask import Flask, request

    app = Flask("seed_baseline")
    lock = threading.Lock()

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
        return {"response": text, "usage": {"completion_tokens": len(new)}}

    return app


def start(app: Any, threads: int) -> tuple[str, Callable[[], None]]:
    """Serve `app` with waitress on a free port in a background thread."""
    from waitress import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.effective_port}", server.close


def drive(
    name: str,
    url: str,
    prompts: list[str],
    clients: int,
    per_client: int,
    settings: dict[str, Any],
) -> Result:
    """`clients` threads, each sending `per_client` requests back to back."""
    # Clients are created before the clock starts: creating one is not free (SSL context).
    sessions = [httpx.Client(base_url=url, timeout=600) for _ in range(clients)]

    def client(index: int) -> int:
        tokens = 0
        for step in range(per_client):
            prompt = prompts[(index + step * clients) % len(prompts)]
            reply = sessions[index].post("/llm/", json={"inputs": prompt, **settings})
            reply.raise_for_status()
            tokens += int(reply.json()["usage"]["completion_tokens"])
        return tokens

    try:
        with ThreadPoolExecutor(clients) as pool:
            started = time.perf_counter()
            tokens = sum(pool.map(client, range(clients)))
            seconds = time.perf_counter() - started
    finally:
        for session in sessions:
            session.close()
    return Result(name, clients * per_client, seconds, tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name_or_path", default="bundled:smollm2")
    parser.add_argument("--gguf_file", default=None)
    parser.add_argument("--dtype", default="auto", help="auto (float32 on cpu) or bfloat16")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-window-ms", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from modelwire_serving.app import create_app
    from modelwire_serving.loading import dtype_argument, load_text_model, resolve_location
    from modelwire_serving.prompts import Prompter
    from modelwire_serving.service import Limits, Service
    from modelwire_serving.worker import BatchWorker

    location = resolve_location(args.model_name_or_path, args.gguf_file)
    text = load_text_model(location, "cpu", dtype_argument(args.dtype))
    prompter = Prompter(text.tokenizer)
    # The same chat-formatted strings go to both services ("inputs" used as they are).
    prompts = [prompter.render_messages([{"role": "user", "content": p}]) for p in PROMPTS]
    settings = {"max_new_tokens": args.max_new_tokens, "do_sample": False}

    worker = BatchWorker(
        text.model,
        prompter,
        eos_token_ids=text.eos_token_ids,
        pad_token_id=text.pad_token_id,
        device="cpu",
        max_batch_size=args.max_batch_size,
        batch_window=args.batch_window_ms / 1000,
    )
    worker.start()
    service = Service(
        model_name=location.served_name,
        prompter=prompter,
        worker=worker,
        limits=Limits(max_new_tokens=max(512, args.max_new_tokens)),
        context_length=text.context_length,
        default_do_sample=False,
        device="cpu",
    )
    threads = max(16, 2 * args.clients)
    baseline_url, stop_baseline = start(
        seed_style_app(text.model, text.tokenizer, text.eos_token_ids), threads
    )
    serving_url, stop_serving = start(create_app(service), threads)
    try:
        for url in (baseline_url, serving_url):  # warm-up, not timed
            drive("warm-up", url, prompts[:1], 1, 1, settings)
        results = []
        for name, url in (("baseline", baseline_url), ("serving", serving_url)):
            print(
                f"running {name}: {args.clients} clients x {args.requests} requests...",
                file=sys.stderr,
                flush=True,
            )
            results.append(drive(name, url, prompts, args.clients, args.requests, settings))
    finally:
        stop_baseline()
        stop_serving()
        worker.stop()
    baseline, serving = results
    time.sleep(0.2)  # the last batch's bookkeeping ends just after its replies
    ratio = serving.tokens_per_second / baseline.tokens_per_second
    request_ratio = serving.requests_per_second / baseline.requests_per_second
    if args.json:
        report = {
            "results": [
                {
                    **asdict(r),
                    "requests_per_second": r.requests_per_second,
                    "tokens_per_second": r.tokens_per_second,
                }
                for r in results
            ],
            "tokens_per_second_ratio": ratio,
            "requests_per_second_ratio": request_ratio,
            "batch_sizes": worker.stats.batch_sizes,
            "settings": {**settings, "clients": args.clients, "requests": args.requests},
        }
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"model {location.served_name}, {args.clients} clients x {args.requests} requests, "
        f"max_new_tokens={args.max_new_tokens}, greedy, cpu, {text.dtype}"
    )
    print(f"{'service':<10}{'requests':>9}{'seconds':>9}{'req/s':>8}{'tokens':>8}{'tok/s':>8}")
    for r in results:
        print(
            f"{r.name:<10}{r.requests:>9}{r.seconds:>9.1f}{r.requests_per_second:>8.2f}"
            f"{r.completion_tokens:>8}{r.tokens_per_second:>8.1f}"
        )
    print(
        f"throughput ratio (serving / baseline): {ratio:.2f}x tokens/s, "
        f"{request_ratio:.2f}x requests/s"
    )
    sizes = ", ".join(f"{n}x{size}" for size, n in sorted(worker.stats.batch_sizes.items()))
    print(f"serving batches (count x size, incl. one warm-up): {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
