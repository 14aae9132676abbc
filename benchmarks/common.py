"""What every benchmark shares: interleaved timing, statistics, result rows, a loopback guard.

Another engineer may be running tests on the same 2 cores, so no figure is an absolute
time: each is a ratio against a baseline measured in the same run, the two sides
alternating in blocks so that machine noise hits both alike.
"""

from __future__ import annotations

import ipaddress
import json
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

#: Calls per block when two sides alternate; the first side swaps every block.
BLOCK = 10


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def p99(samples: list[float]) -> float:
    """The 99th percentile (nearest rank): with 500 samples, the 5th largest."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def summary_us(samples_ns: list[int]) -> dict[str, float]:
    """Median and p99 in microseconds."""
    return {
        "median_us": round(median(samples_ns) / 1000, 1),
        "p99_us": round(p99(samples_ns) / 1000, 1),
        "n": len(samples_ns),
    }


@dataclass
class Samples:
    """Wall-clock ns of each call, and this process's CPU ns per call of each block."""

    wall: list[int] = field(default_factory=list)
    cpu_per_call: list[float] = field(default_factory=list)


def interleaved(
    ours: Callable[[], object], base: Callable[[], object], n: int, warmup: int = 30
) -> tuple[Samples, Samples]:
    """Time ``n`` calls of each side, alternating blocks of ``BLOCK`` calls."""
    for _ in range(warmup):
        ours()
        base()
    ours_s, base_s = Samples(), Samples()
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    for index in range(math.ceil(n / BLOCK)):
        sides = [(ours, ours_s), (base, base_s)]
        for function, out in sides if index % 2 == 0 else reversed(sides):
            cpu_started = cpu()
            for _ in range(BLOCK):
                started = clock()
                function()
                out.wall.append(clock() - started)
            out.cpu_per_call.append((cpu() - cpu_started) / BLOCK)
    return ours_s, base_s


async def ainterleaved(
    ours: Callable[[], Awaitable[object]],
    base: Callable[[], Awaitable[object]],
    n: int,
    warmup: int = 30,
) -> tuple[Samples, Samples]:
    """``interleaved`` for coroutine functions, awaited one at a time on the running loop."""
    for _ in range(warmup):
        await ours()
        await base()
    ours_s, base_s = Samples(), Samples()
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    for index in range(math.ceil(n / BLOCK)):
        sides = [(ours, ours_s), (base, base_s)]
        for function, out in sides if index % 2 == 0 else reversed(sides):
            cpu_started = cpu()
            for _ in range(BLOCK):
                started = clock()
                await function()
                out.wall.append(clock() - started)
            out.cpu_per_call.append((cpu() - cpu_started) / BLOCK)
    return ours_s, base_s


def paired_ratio(ours: list[int], base: list[int]) -> float:
    """The median over adjacent block pairs of (ours' block median / base's block median).

    Both sides ran in alternating blocks of ``BLOCK`` calls; the speed of this shared
    machine drifts over seconds, so only blocks run back to back are compared. Against
    the ratio of the two overall medians, this halved the spread of an A/A control
    (raw SDK against itself): 0.98 to 1.01 instead of 0.97 to 1.04 (benchmarks/README.md).
    """
    ratios = [
        median(ours[i : i + BLOCK]) / median(base[i : i + BLOCK])
        for i in range(0, min(len(ours), len(base)), BLOCK)
    ]
    return median(ratios)


def latency_row(
    figure: str, ours_s: Samples, base_s: Samples, target: float, base_name: str
) -> Row:
    """A row comparing two latency distributions (lower is better): ``paired_ratio``.

    The columns show each side's overall median and p99. The detail adds each side's
    CPU time per call in this (the client) process: the server runs elsewhere, so
    the difference is what the wrapper itself costs.
    """
    ours, base = summary_us(ours_s.wall), summary_us(base_s.wall)
    ours["cpu_us"] = round(median(ours_s.cpu_per_call) / 1000, 1)
    base["cpu_us"] = round(median(base_s.cpu_per_call) / 1000, 1)
    ratio = round(paired_ratio(ours_s.wall, base_s.wall), 3)
    return Row(
        figure=figure,
        ours=f"{ours['median_us']:.0f} µs (p99 {ours['p99_us']:.0f})",
        baseline=f"{base['median_us']:.0f} µs (p99 {base['p99_us']:.0f}) {base_name}",
        ratio=ratio,
        target=f"≤ {target:g}",
        met=ratio <= target,
        detail={
            "ours": ours,
            "baseline": base,
            "ratio_of_medians": round(ours["median_us"] / base["median_us"], 3),
            "overhead_us": round(ours["median_us"] - base["median_us"], 1),
            "cpu_overhead_us": round(ours["cpu_us"] - base["cpu_us"], 1),
        },
    )


def emit(rows: list[Row], as_json: bool) -> None:
    """Print rows as JSON (for run_all.py) or as a Markdown table (for a person)."""
    if as_json:
        print(json.dumps({"rows": [row.to_dict() for row in rows]}, ensure_ascii=False))
        return
    print(markdown(rows))


def markdown(rows: list[Row | dict[str, Any]]) -> str:
    lines = ["| figure | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        data = row.to_dict() if isinstance(row, Row) else row
        ratio = "" if data["ratio"] is None else f"{data['ratio']:.3f}"
        met = {True: "yes", False: "**no**", None: "—"}[data["met"]]
        lines.append(
            f"| {data['figure']} | {data['ours']} | {data['baseline']} | {ratio}"
            f" | {data['target']} | {met} |"
        )
    return "\n".join(lines)


def loopback_only() -> None:
    """Refuse, in this process, any connection or name lookup that is not the loopback.

    The benchmarks talk to 127.0.0.1 only; a library phoning home (LiteLLM fetches a
    price list at import unless told not to) fails loudly instead of leaving the machine.
    """

    def is_local(host: object) -> bool:
        if host in (None, "localhost", b"localhost"):
            return True
        try:
            return ipaddress.ip_address(host if isinstance(host, str) else str(host)).is_loopback
        except ValueError:
            return False

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and not is_local(address[0]):
                raise ConnectionRefusedError(f"benchmark: refusing to connect to {address!r}")
        elif event == "socket.getaddrinfo" and not is_local(args[0]):
            raise OSError(f"benchmark: refusing to look up {args[0]!r}")

    sys.addaudithook(hook)
