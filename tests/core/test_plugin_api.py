"""The plugin API is what ``modelwire`` exports, and the core stays out of the plugins'
business: no plugin imports a core module, the core imports no plugin or SDK, and
the core's modules import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import modelwire

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(
    [*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("examples/thirdparty-plugin/src/**/*.py")]
)
CORE = ROOT / "core" / "src" / "modelwire"
SDKS = ("openai", "dashscope", "google", "ollama")
PLUGIN_PACKAGES = (
    "modelwire_openai",
    "modelwire_dashscope",
    "modelwire_gemini",
    "modelwire_ollama",
    "modelwire_postapi",
    "modelwire_serving",
)


def _imports(path: Path, *, top_level_only: bool = False) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_top_level_package(path: Path) -> None:
    core = [name for name in _imports(path) if name == "modelwire" or name.startswith("modelwire.")]
    assert all(name == "modelwire" for name in core), core


def test_every_exported_name_resolves() -> None:
    for name in modelwire.__all__:
        assert getattr(modelwire, name) is not None, name


def test_the_core_names_no_plugin_and_no_sdk() -> None:
    for path in CORE.rglob("*.py"):
        if "testing" in path.parts:
            continue
        for name in _imports(path):
            assert name.split(".")[0] not in SDKS + PLUGIN_PACKAGES, (path, name)
            # the HTTP library every SDK is built on: only the transport module uses it
            if name.split(".")[0] in ("httpx", "httpcore"):
                assert path.name == "transport.py", (path, name)


def test_the_core_has_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        module = ".".join(("modelwire", *path.relative_to(CORE).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        graph[module] = {
            name for name in _imports(path, top_level_only=True) if name.startswith("modelwire.")
        }
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join((*trail, module))
        visiting.add(module)
        for target in graph.get(module, ()):
            visit(target, (*trail, module))
        visiting.discard(module)
        done.add(module)

    for module in graph:
        visit(module, ())
