"""Resident memory: modelwire with one wrapper of each first-party type, versus LiteLLM.

Each figure is the growth of VmRSS (``/proc/self/status``) over a bare interpreter of
the same venv, measured in fresh processes (median of a few):

* ours: ``import modelwire``, discovery, and one wrapper of every first-party model type
  built from the seed's example configs (no calls: SDKs load on the first call);
* ours + SDKs: the same, plus importing every SDK those first calls would load;
* peer: ``import litellm`` in ``benchmarks/.env-peers`` (LiteLLM loads its SDKs at import).

    .venv/bin/python benchmarks/bench_memory.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import peers
from common import Row, emit

ROOT = Path(__file__).resolve().parent.parent
SEED_CONFIGS = ROOT / "examples" / "model_configs.json"

RSS = """
def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
"""

BARE = RSS + "print(rss_kib())"

WRAPPERS = (
    RSS
    + """
import json, sys
import modelwire
configs = json.load(open(sys.argv[1]))
registry = modelwire.ModelRegistry(configs)
seen = {}
for config in configs:
    if config["model_type"] not in seen:
        seen[config["model_type"]] = registry.load_model(config["config_name"])
assert len(seen) == 13, sorted(seen)
if sys.argv[2] == "sdks":
    import dashscope, httpx, ollama, openai
    from google import genai
print(rss_kib())
"""
)

LITELLM = RSS + "import litellm\nprint(rss_kib())"


def rss(argv: list[str], runs: int) -> float:
    """Median VmRSS in MiB printed by ``runs`` fresh processes."""
    values = []
    for _ in range(runs):
        out = subprocess.run(argv, check=True, capture_output=True, text=True, env=peers.PEER_ENV)
        values.append(int(out.stdout.split()[-1]) / 1024)
    return statistics.median(values)


def measure(runs: int) -> dict[str, float]:
    ours_python, peer_python = sys.executable, str(peers.ensure_venv())
    seed = str(SEED_CONFIGS)
    return {
        "ours_bare": rss([ours_python, "-c", BARE], runs),
        "ours_wrappers": rss([ours_python, "-c", WRAPPERS, seed, "none"], runs),
        "ours_sdks": rss([ours_python, "-c", WRAPPERS, seed, "sdks"], runs),
        "peer_bare": rss([peer_python, "-c", BARE], runs),
        "litellm": rss([peer_python, "-c", LITELLM], runs),
    }


def rows(mib: dict[str, float]) -> list[Row]:
    litellm = mib["litellm"] - mib["peer_bare"]
    result = []
    for key, what in (
        ("ours_wrappers", "memory: modelwire + one wrapper of each of the 13 types"),
        ("ours_sdks", "memory: the same + every SDK imported (openai, dashscope, genai, ollama)"),
    ):
        ours = mib[key] - mib["ours_bare"]
        ratio = round(ours / litellm, 3)
        result.append(
            Row(
                figure=what,
                ours=f"+{ours:.1f} MiB (RSS {mib[key]:.1f})",
                baseline=f"import litellm: +{litellm:.1f} MiB (RSS {mib['litellm']:.1f})",
                ratio=ratio,
                target="< 1 (less than LiteLLM)",
                met=ratio < 1,
                detail={"mib": mib},
            )
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    mib = measure(args.runs)
    emit(rows(mib), args.json)
    if not args.json:
        print(json.dumps({k: round(v, 1) for k, v in mib.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
