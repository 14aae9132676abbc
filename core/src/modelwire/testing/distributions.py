"""Throwaway distributions with real entry points, and fresh interpreters to find them.

For testing plugin discovery the way users meet it: a broken plugin, two plugins
registering one type, a wrong class path. Nothing is installed: the distribution is
written to a folder that ``run_python`` puts on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

__all__ = ["last_json", "make_distribution", "run_python"]


def make_distribution(root: Path, name: str, modules: dict[str, str], entry_points: str) -> None:
    """Write an importable distribution (modules + dist-info) under ``root``."""
    for module, source in modules.items():
        path = root / Path(*module.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent / "__init__.py").touch()
        path.with_suffix(".py").write_text(textwrap.dedent(source))
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def run_python(code: str, path: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter with ``path`` prepended to ``sys.path``."""
    environment = {**os.environ, **env}
    if path is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(path), environment.get("PYTHONPATH", "")) if p
        )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def last_json(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
