"""Start-up cost: import modelwire + discover every plugin + load a 50-config file.

Measured against a bare interpreter (``python -c pass``) in the same run; the
figure that matters is the difference (target: under 100 ms) and the modules
that the start-up imports. The difference is taken between the fastest run of
each side, as ``timeit`` advises: the same work never runs faster than the code
allows, while a shared machine slows whole processes at random (here some runs
of either side take ~1.35x as long). The medians are reported beside it.

    .venv/bin/python benchmarks/bench_startup.py [--runs 30] [--json]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED_CONFIGS = ROOT / "examples" / "model_configs.json"

STARTUP = """
import sys
import modelwire
from modelwire.plugins import plugin_manager
plugin_manager()
modelwire.init(model_configs=sys.argv[1])
"""

# Both listings print with print(): importing json to print would hide json (and re,
# enum...) from the difference.
LIST_MODULES = STARTUP + "\nprint(sorted(sys.modules))\n"
BARE_MODULES = "import sys; print(sorted(sys.modules))"


def fifty_configs(directory: Path) -> Path:
    """The seed's example configs, repeated under new names up to 50 configs."""
    seed = json.loads(SEED_CONFIGS.read_text())
    configs = []
    while len(configs) < 50:
        for config in seed:
            if len(configs) == 50:
                break
            configs.append({**config, "config_name": f"{config['config_name']}-{len(configs)}"})
    path = directory / "configs50.json"
    path.write_text(json.dumps(configs))
    return path


# Users run with compiled bytecode (pip writes it; the first import writes it for editable
# installs): measure that, even where the shell sets PYTHONDONTWRITEBYTECODE.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=ENV)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _listed(argv: list[str]) -> list[str]:
    """The module names a listing script prints (a Python list of strings)."""
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=ENV).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        configs = fifty_configs(Path(tmp))
        baseline_argv = [sys.executable, "-c", "pass"]
        startup_argv = [sys.executable, "-c", STARTUP, str(configs)]
        for _ in range(2):  # write bytecode, warm the file cache, fail loudly if broken
            subprocess.run(startup_argv, check=True, env=ENV)
        baseline, startup = [], []
        for _ in range(args.runs):  # interleaved, so machine noise hits both alike
            baseline += timed(baseline_argv, 1)
            startup += timed(startup_argv, 1)
        modules = _listed([sys.executable, "-c", LIST_MODULES, str(configs)])
        bare = set(_listed([sys.executable, "-c", BARE_MODULES]))
    added = [m for m in modules if m not in bare]
    heavy = [
        m
        for m in added
        if m.split(".")[0]
        in {"openai", "dashscope", "google", "ollama", "httpx", "torch", "transformers"}
    ]
    result = {
        "runs": args.runs,
        "baseline_ms": round(min(baseline), 1),
        "startup_ms": round(min(startup), 1),
        "overhead_ms": round(min(startup) - min(baseline), 1),
        "ratio": round(min(startup) / min(baseline), 2),
        "baseline_ms_median": round(statistics.median(baseline), 1),
        "startup_ms_median": round(statistics.median(startup), 1),
        "overhead_ms_median": round(statistics.median(startup) - statistics.median(baseline), 1),
        "modules_added": len(added),
        "modules": added,
        "sdk_or_torch_modules": heavy,
        "target_ms": 50,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        base, total = result["baseline_ms"], result["startup_ms"]
        print(f"python -c pass                  : {base:7.1f} ms (fastest of {args.runs} runs)")
        print(f"import + discovery + 50 configs : {total:7.1f} ms")
        print(f"overhead                        : {total - base:7.1f} ms (target < 100 ms)")
        print(f"overhead of the medians         : {result['overhead_ms_median']:7.1f} ms")
        print(f"modules added: {len(added)}; SDK/torch modules: {heavy or 'none'}")
        top = sorted({m.split(".")[0] for m in added})
        print("top-level packages imported:", ", ".join(top))
    return 0 if result["overhead_ms"] < 100 and not heavy else 1


if __name__ == "__main__":
    raise SystemExit(main())
