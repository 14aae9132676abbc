"""Throughput under concurrency: 256 concurrent ``acall``s versus 256 raw async SDK calls.

One round is ``asyncio.gather`` of 256 calls on one event loop, on a client of its own
(built and warmed by one untimed call before the clock starts, closed after). After 3
untimed warm-up rounds of each side, rounds of the wrapper and of the raw SDK
alternate; the figure is the median, over pairs of adjacent rounds, of the ratio of
their throughputs (calls per second), target ≥ 0.95. The detail also gives an A/A
control: the same statistic between the raw side's even and odd rounds, i.e. what
the figure reads when both sides are the same code.
The fake server runs in its own process, on one asyncio loop (``fakeservice.py --asyncio``).

    .venv/bin/python benchmarks/bench_concurrency.py [--rounds 24] [--concurrency 256] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import bench_overhead as bo
import fakeservice as fs
from common import Row, emit, loopback_only

TARGET = 0.95
#: Cases cheap enough to run 256-wide in the time budget, by provider.
CASES = {
    "openai chat": "openai",
    "dashscope chat": "dashscope",
    "ollama chat": "ollama",
    "post_api": "postapi",
}


async def round_rate(
    call: Callable[[], Awaitable[object]], concurrency: int
) -> tuple[float, float]:
    """Calls per second of one round of ``concurrency`` simultaneous calls: per second of
    wall time, and per second of this (the client) process's CPU time."""
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(call() for _ in range(concurrency)))
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return concurrency / wall, concurrency / max(used, 1e-9)


async def fresh_round(side: str, case: bo.Case, concurrency: int) -> tuple[float, float]:
    """One round on a client of its own: built, warmed by one untimed call, timed, closed.

    Under 256 callers an httpx pool (every SDK here runs on httpcore) is bistable: its
    ``_assign_requests_to_connections`` pass is quadratic in connections and queued
    requests (encode/httpcore#1035), and once a pool falls into the slow regime it
    stays there for many rounds. A pool that lives through the whole run makes the
    ratio depend on which side's pool fell; a fresh pool per round makes the rounds
    independent draws, for both sides alike.
    """
    if side == "ours":
        call, close = case.ours_async, case.wrapper.aclose
    else:
        call, close = case.raw_async()
    await call()
    rate = await round_rate(call, concurrency)
    await close()
    return rate


async def compare(
    case: bo.Case, rounds: int, concurrency: int, warmup: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Rates of alternating rounds, after ``warmup`` untimed rounds of each side."""
    ours_rates: list[tuple[float, float]] = []
    raw_rates: list[tuple[float, float]] = []
    for _ in range(warmup):
        await fresh_round("ours", case, concurrency)
        await fresh_round("raw", case, concurrency)
    for index in range(rounds):
        sides = [("ours", ours_rates), ("raw", raw_rates)]
        for side, out in sides if index % 2 == 0 else reversed(sides):
            out.append(await fresh_round(side, case, concurrency))
    return ours_rates, raw_rates


def paired(ours: list[float], raw: list[float]) -> float:
    return round(statistics.median(o / r for o, r in zip(ours, raw, strict=True)), 3)


def row(
    name: str, ours: list[tuple[float, float]], raw: list[tuple[float, float]], concurrency: int
) -> Row:
    """The ratio is the median over rounds run back to back of ours / raw: load drifts
    over seconds, so only adjacent rounds are comparable. ``raw_vs_raw`` is the A/A
    control: how far from 1 the same statistic lands between identical sides.

    The detail adds the same ratio in calls per second of client CPU time: equal to the
    wall-clock one when the client is the bottleneck, as it is here.
    """
    ours_wall, ours_cpu = [r[0] for r in ours], [r[1] for r in ours]
    raw_wall, raw_cpu = [r[0] for r in raw], [r[1] for r in raw]
    ratio, cpu_ratio = paired(ours_wall, raw_wall), paired(ours_cpu, raw_cpu)
    return Row(
        figure=f"concurrency: {concurrency} x acall, {name}",
        ours=f"{statistics.median(ours_wall):.0f} calls/s",
        baseline=f"{statistics.median(raw_wall):.0f} calls/s raw async SDK",
        ratio=ratio,
        target=f"≥ {TARGET:g}",
        met=ratio >= TARGET,
        detail={
            "cpu_ratio": cpu_ratio,
            "raw_vs_raw": paired(raw_wall[0::2], raw_wall[1::2]) if len(raw_wall) > 1 else None,
            "ours_rates": [round(r) for r in ours_wall],
            "raw_rates": [round(r) for r in raw_wall],
            "ours_cpu_rates": [round(r) for r in ours_cpu],
            "raw_cpu_rates": [round(r) for r in raw_cpu],
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=24, help="timed rounds per side")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per side")
    parser.add_argument("--only", default="", help="cases to run, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    loopback_only()
    chosen = [c for c in args.only.split(",") if c] or list(CASES)
    rows = []
    with fs.Service(use_asyncio=True) as service:
        for name in chosen:
            cases = {c.name: c for c in bo.PROVIDERS[CASES[name]](service.url)}
            ours, raw = asyncio.run(
                compare(cases[name], args.rounds, args.concurrency, args.warmup)
            )
            rows.append(row(name, ours, raw, args.concurrency))
            cases[name].close()
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
