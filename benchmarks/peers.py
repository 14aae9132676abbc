"""The peers: LiteLLM and llm, measured in their own venv against the same kind of fake server.

They never enter the project's .venv: ``benchmarks/.env-peers/`` (gitignored) is created
on first use with the pinned versions below, from PyPI. Everything peer-side runs on
that venv's interpreter (the same Python as .venv), each figure against its own
baseline in the same venv:

* start-up: ``import litellm`` and ``import llm`` versus ``python -c pass``;
* per call: ``litellm.completion("openai/gpt-4o-mini", api_base=<fake>/v1)`` (and
  ``acompletion``) versus the raw openai SDK in that venv, against ``fakeservice.py``.

LiteLLM fetches a price list from the internet at import unless told otherwise: the
environment below keeps it offline, and an audit hook refuses any non-loopback address.

    .venv/bin/python benchmarks/peers.py [--runs 8] [--n 500] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".env-peers"
PYTHON = VENV / "bin" / "python"
#: Versions these benchmarks were last run with (Python 3.11).
PINS = ("litellm==1.110.2", "llm==0.36")
MARKER = VENV / ".pins"

#: No fetching of LiteLLM's remote price list, no telemetry; bytecode as users run.
PEER_ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_TELEMETRY": "False",
}
IMPORTS = {"litellm": "import litellm", "llm": "import llm"}


def ensure_venv() -> Path:
    """The peer venv's interpreter, creating the venv and installing the pins if needed."""
    wanted = "\n".join(PINS)
    if PYTHON.exists() and MARKER.exists() and MARKER.read_text() == wanted:
        return PYTHON
    if not PYTHON.exists():
        print(f"creating {VENV} ...", file=sys.stderr, flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    print(f"installing {' '.join(PINS)} into {VENV} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
        check=True,
    )
    MARKER.write_text(wanted)
    return PYTHON


# -- start-up ----------------------------------------------------------------------------------
def _run_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=PEER_ENV)
    return (time.perf_counter() - started) * 1000


def _module_count(python: Path, code: str) -> int:
    script = f"{code}\nimport sys\nprint(len(sys.modules))"
    out = subprocess.run(
        [str(python), "-c", script], check=True, capture_output=True, text=True, env=PEER_ENV
    )
    return int(out.stdout.split()[-1])


def startup(python: Path, runs: int) -> dict[str, Any]:
    """Wall time of each import and of a bare interpreter, runs interleaved: the fastest
    run of each, as for modelwire's own start-up (bench_startup.py), medians beside."""
    argv = {name: [str(python), "-c", code] for name, code in IMPORTS.items()}
    bare = [str(python), "-c", "pass"]
    for command in (*argv.values(), bare):  # write bytecode, warm the file cache
        _run_ms(command)
    samples: dict[str, list[float]] = {name: [] for name in (*argv, "bare")}
    for _ in range(runs):
        samples["bare"].append(_run_ms(bare))
        for name, command in argv.items():
            samples[name].append(_run_ms(command))
    base = min(samples["bare"])
    base_median = statistics.median(samples["bare"])
    bare_modules = _module_count(python, "pass")
    result: dict[str, Any] = {"runs": runs, "bare_ms": round(base, 1)}
    for name, code in IMPORTS.items():
        total = min(samples[name])
        result[name] = {
            "total_ms": round(total, 1),
            "overhead_ms": round(total - base, 1),
            "overhead_ms_median": round(statistics.median(samples[name]) - base_median, 1),
            "modules_added": _module_count(python, code) - bare_modules,
        }
    return result


# -- per call (runs inside the peer venv) -----------------------------------------------------
def inside_calls(n: int) -> dict[str, Any]:
    """LiteLLM's completion/acompletion versus the raw openai SDK, in this (peer) interpreter."""
    sys.path.insert(0, str(HERE))
    import fakeservice as fs
    from common import ainterleaved, interleaved, latency_row, loopback_only

    loopback_only()
    import litellm
    import openai

    litellm.suppress_debug_info = True
    key, model = "sk-bench-not-a-secret", "openai/" + fs.OPENAI_MODEL
    with fs.Service(sys.executable) as service:
        base_url = service.url + "/v1"
        options = {"api_key": key, "base_url": base_url, "max_retries": 0, "timeout": 120.0}
        client = openai.OpenAI(**options)
        lite_args = {"model": model, "messages": fs.CHAT_MESSAGES, "api_base": base_url}

        def lite() -> object:
            reply = litellm.completion(**lite_args, api_key=key, timeout=120.0)
            return reply.choices[0].message.content

        def raw() -> object:
            reply = client.chat.completions.create(model=fs.OPENAI_MODEL, messages=fs.CHAT_MESSAGES)
            return reply.choices[0].message.content

        if lite() != raw():
            raise AssertionError("LiteLLM and the openai SDK disagree on the reply")
        sync = latency_row(
            "per-call LiteLLM completion (peer), sync", *interleaved(lite, raw, n), 1.05, "raw SDK"
        )

        async def both() -> Any:
            aclient = openai.AsyncOpenAI(**options)

            async def alite() -> object:
                reply = await litellm.acompletion(**lite_args, api_key=key, timeout=120.0)
                return reply.choices[0].message.content

            async def araw() -> object:
                reply = await aclient.chat.completions.create(
                    model=fs.OPENAI_MODEL, messages=fs.CHAT_MESSAGES
                )
                return reply.choices[0].message.content

            return await ainterleaved(alite, araw, n)

        asynchronous = latency_row(
            "per-call LiteLLM acompletion (peer), async",
            *asyncio.run(both()),
            1.05,
            "raw SDK",
        )
    versions = {"litellm": _version("litellm"), "openai": openai.__version__}
    return {"rows": [sync.to_dict(), asynchronous.to_dict()], "versions": versions}


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def calls(python: Path, n: int) -> dict[str, Any]:
    """Run ``inside_calls`` in the peer interpreter (its server too, from core/src)."""
    env = {**PEER_ENV, "PYTHONPATH": str(HERE.parent / "core" / "src")}
    out = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--inside-calls", str(n)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="start-up runs per import")
    parser.add_argument("--n", type=int, default=500, help="calls per side for per-call rows")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside-calls", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside_calls:
        print(json.dumps(inside_calls(args.inside_calls), ensure_ascii=False))
        return 0
    python = ensure_venv()
    result = {"startup": startup(python, args.runs), "calls": calls(python, args.n)}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    start = result["startup"]
    print(f"peer python -c pass: {start['bare_ms']} ms (fastest of {args.runs})")
    for name in IMPORTS:
        figures = start[name]
        print(
            f"import {name}: {figures['total_ms']} ms, overhead {figures['overhead_ms']} ms,"
            f" {figures['modules_added']} modules"
        )
    for row in result["calls"]["rows"]:
        print(f"{row['figure']}: {row['ours']} vs {row['baseline']}: ratio {row['ratio']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
