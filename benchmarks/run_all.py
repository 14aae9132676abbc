"""Run every benchmark, print one Markdown table, and write benchmarks/results.json.

Each benchmark is its own script (and process), run with ``--json``; this collects
their rows. ``bench_serving.py``, which loads a real model, runs last and short.
Budget: about 5 minutes on 2 cores without serving (``--quick`` for a smoke run).

    .venv/bin/python benchmarks/run_all.py [--quick] [--skip serving,peers]   # = make bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Row, markdown

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def run_json(script: str, *args: str, python: str = sys.executable) -> Any:
    """Run one benchmark script with ``--json``; its last stdout line is the JSON."""
    command = [python, str(HERE / script), *args, "--json"]
    print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent)
    print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if out.returncode not in (0, 1) or not out.stdout.strip():  # bench_startup exits 1 on a miss
        sys.stderr.write(out.stderr[-4000:])
        raise RuntimeError(f"{script} failed with exit code {out.returncode}")
    lines = out.stdout.strip().splitlines()
    for start in range(len(lines)):  # pretty-printed or one line: the JSON is at the end
        try:
            return json.loads("\n".join(lines[start:]))
        except ValueError:
            continue
    raise RuntimeError(f"{script} printed no JSON")


# -- each benchmark as rows ----------------------------------------------------------------
def startup(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    result = run_json("bench_startup.py", "--runs", "10" if quick else "30")
    overhead = result["overhead_ms"]
    row = Row(
        figure="start-up: import modelwire + discover all plugins + load 50 seed configs",
        ours=f"{result['startup_ms']:.1f} ms (+{overhead:.1f} ms; medians"
        f" +{result['overhead_ms_median']:.1f} ms; {result['modules_added']} modules,"
        f" SDKs: {result['sdk_or_torch_modules'] or 'none'})",
        baseline=f"{result['baseline_ms']:.1f} ms python -c pass",
        ratio=result["ratio"],
        target="< 100 ms overhead, no SDK",
        met=overhead < result["target_ms"] and not result["sdk_or_torch_modules"],
        detail=result,
    )
    return [row], result


def peer_rows(ours_startup: dict[str, Any] | None, quick: bool) -> list[Row]:
    result = run_json("peers.py", "--runs", "3" if quick else "5", "--n", "100" if quick else "500")
    start = result["startup"]
    rows = []
    for name in ("litellm", "llm"):
        peer = start[name]
        ours = ours_startup["overhead_ms"] if ours_startup else None
        rows.append(
            Row(
                figure=f"start-up vs peer: modelwire overhead vs `import {name}` overhead",
                ours="—" if ours is None else f"+{ours:.1f} ms",
                baseline=f"+{peer['overhead_ms']:.1f} ms (`import {name}`,"
                f" {peer['modules_added']} modules; bare {start['bare_ms']:.1f} ms)",
                ratio=None if ours is None else round(ours / peer["overhead_ms"], 3),
                target="—",
                met=None,
                detail={"peer": peer, "bare_ms": start["bare_ms"]},
            )
        )
    for data in result["calls"]["rows"]:
        data.update(target="— (peer)", met=None)
        data["detail"]["versions"] = result["calls"]["versions"]
        rows.append(Row(**data))
    return rows


def rows_of(script: str, *args: str) -> list[Row]:
    return [Row(**data) for data in run_json(script, *args)["rows"]]


def serving(quick: bool) -> list[Row]:
    """The serving sweep: per client count, ours vs the seed's Flask script, then vs the peer."""
    if not (HERE / "bench_serving.py").exists():
        return []
    args = ["--clients", "1,16", "--requests", "4"] if quick else ["--clients", "1,4,8,16,32"]
    result = run_json("bench_serving.py", *args)
    settings = result["settings"]
    shared = {key: result[key] for key in ("model", "dtype", "settings", "target", "seconds")}

    def cell(run: dict[str, Any]) -> str:
        return f"{run['tokens_per_second']:.1f} tokens/s ({run['p50_s']:.1f}/{run['p95_s']:.1f} s)"

    def rows_vs(other: str, label: str, peer: bool) -> list[Row]:
        rows = []
        for level in result["levels"]:
            clients, runs = level["clients"], level["runs"]
            if other not in runs:
                continue
            value = level["ratios"][f"serving/{other}"]
            at_target = clients == 16 or peer
            rows.append(
                Row(
                    figure=f"serving: {clients} client{'' if clients == 1 else 's'},"
                    " tokens/s (p50/p95 latency)" + (f", vs peer {label}" if peer else ""),
                    ours=cell(runs["serving"]),
                    baseline=f"{cell(runs[other])} {label}",
                    ratio=value,
                    target=("≥ 1.0x" if peer else "≥ 5x" if clients == 16 else "—"),
                    met=None if not at_target or value is None else value >= (1.0 if peer else 5.0),
                    detail={
                        **level,
                        "max_new_tokens": settings["max_new_tokens"],
                        "services": {n: result["services"][n] for n in ("serving", other)},
                    },
                )
            )
        return rows

    rows = rows_vs("baseline", "seed Flask", peer=False)
    rows += rows_vs("transformers-serve", "`transformers serve`", peer=True)
    rows += rows_vs(
        "transformers-serve-cb", "`transformers serve --continuous-batching`", peer=True
    )
    if rows:  # the run's shared facts, once
        rows[0].detail["run"] = {
            **shared,
            **{k: result[k] for k in ("peer_commands", "peer_model", "load_seconds")},
            **{k: result[k] for k in ("batch_sizes", "chat_route", "agreement", "token_counting")},
        }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke run")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: startup, peers, overhead, concurrency, streaming, memory, serving",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    quick = args.quick
    n = "500" if quick else "1000"
    started = time.perf_counter()
    rows: list[Row] = []
    ours_startup: dict[str, Any] | None = None
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("overhead", lambda: rows_of("bench_overhead.py", "--n", n)),
        ("streaming", lambda: rows_of("bench_streaming.py", "--n", "200" if quick else "400")),
        (
            "concurrency",
            lambda: rows_of("bench_concurrency.py", "--rounds", "6" if quick else "16"),
        ),
        ("memory", lambda: rows_of("bench_memory.py", "--runs", "3" if quick else "5")),
        ("serving", lambda: serving(quick)),
    ]
    if "startup" not in skip:
        startup_rows, ours_startup = startup(quick)
        rows += startup_rows
    if "peers" not in skip:
        rows += peer_rows(ours_startup, quick)
    for name, step in steps:
        if name not in skip:
            rows += step()
    elapsed = time.perf_counter() - started
    command = "make bench  (.venv/bin/python benchmarks/run_all.py" + (
        f" {' '.join(sys.argv[1:])})" if sys.argv[1:] else ")"
    )
    args.results.write_text(
        json.dumps(
            {
                "command": command,
                "seconds": round(elapsed),
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "rows": [row.to_dict() for row in rows],
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(markdown(rows))
    missed = [row.figure for row in rows if row.met is False]
    print(f"\n{len(rows)} figures in {elapsed:.0f} s; {len(missed)} targets missed.")
    print(f"Results: {args.results}; command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
