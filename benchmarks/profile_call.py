"""Call one benchmark case in a loop, for a profiler to look at where a wrapper's time goes.

Run it under py-spy or pyinstrument from the benchmark-only venv (they are not
installed into the project's .venv)::

    benchmarks/.env-peers/bin/py-spy record -r 1000 -f raw -o /tmp/ours.txt -- \\
        .venv/bin/python benchmarks/profile_call.py "ollama embedding" --side ours
    .venv/bin/python benchmarks/profile_call.py "ollama embedding" --pyinstrument

``--pyinstrument`` imports pyinstrument from ``benchmarks/.env-peers`` (same Python).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import sys
from pathlib import Path

import bench_overhead as bo
import fakeservice as fs
from common import loopback_only

HERE = Path(__file__).resolve().parent


def find(name: str, url: str) -> bo.Case:
    for cases in bo.PROVIDERS.values():
        for case in cases(url):
            if case.name == name:
                return case
    raise SystemExit(f"no case {name!r}")


def loop(case: bo.Case, side: str, calls: int, use_async: bool) -> None:
    if use_async:

        async def run() -> None:
            function = case.ours_async if side == "ours" else case.raw_async()
            for _ in range(calls):
                await function()

        asyncio.run(run())
        return
    function = case.ours_sync if side == "ours" else case.raw_sync
    for _ in range(calls):
        function()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help='e.g. "openai chat", "ollama embedding", "post_api"')
    parser.add_argument("--side", choices=("ours", "raw"), default="ours")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--async", dest="use_async", action="store_true")
    parser.add_argument("--pyinstrument", action="store_true", help="print a pyinstrument tree")
    args = parser.parse_args()
    loopback_only()
    with fs.Service() as service:
        case = find(args.case, service.url)
        loop(case, args.side, 50, args.use_async)  # warm up: clients, caches
        if not args.pyinstrument:
            loop(case, args.side, args.calls, args.use_async)
            return 0
        sys.path += glob.glob(str(HERE / ".env-peers/lib/python3*/site-packages"))
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        with profiler:
            loop(case, args.side, args.calls, args.use_async)
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
