"""The command line as a user meets it: real processes, clear one-line errors.

Each startup error must exit non-zero with a message that says what to do,
and never print a traceback. None of these load a model.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modelwire_serving import plugin

SCRIPT = Path(sys.executable).with_name("modelwire-serve")


def serve(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MODELWIRE_SERVE_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "modelwire_serving", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in output, output


def test_console_script_and_seed_script_name_both_work() -> None:
    assert SCRIPT.exists()
    for command in (
        [str(SCRIPT), "--help"],
        [sys.executable, "-m", "modelwire_serving.setup_hf_service", "--help"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "--model_name_or_path" in result.stdout and "--embedding-model" in result.stdout


def test_bad_device_is_rejected_before_anything_loads() -> None:
    result = serve("--model_name_or_path", "bundled:smollm2", "--device", "gpu")
    assert_clean_failure(result, "invalid device 'gpu'", "cpu, cuda, cuda:N, mps or auto")


def test_cuda_without_a_gpu_says_so() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = serve("--model_name_or_path", "bundled:smollm2", "--device", "cuda:0", "--port", "0")
    assert_clean_failure(result, "CUDA is not available", "--device cpu")
    assert result.returncode == 2


def test_missing_model_folder() -> None:
    result = serve("--model_name_or_path", "/no/such/model", "--port", "0")
    assert_clean_failure(result, "model not found", "/no/such/model")


def test_unknown_hub_model_offline_is_one_clear_line() -> None:
    result = serve("--model_name_or_path", "nobody-here/not-a-model-xyz", "--port", "0")
    assert_clean_failure(result, "could not load model 'nobody-here/not-a-model-xyz'")


def test_wrong_gguf_file_lists_the_ones_present() -> None:
    result = serve("--model_name_or_path", "bundled:smollm2", "--gguf_file", "x.gguf")
    assert_clean_failure(result, "'x.gguf' not found", "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_modelscope_hub_id_without_modelscope_says_how_to_install() -> None:
    if importlib.util.find_spec("modelscope") is not None:
        pytest.skip("modelscope is installed here")
    for argv in (
        ("modelscope", "--model_name_or_path", "qwen/Qwen2.5-0.5B-Instruct"),
        ("--source", "modelscope", "--model_name_or_path", "qwen/Qwen2.5-0.5B-Instruct"),
    ):
        result = serve(*argv)
        assert_clean_failure(result, "pip install 'modelwire-serving[modelscope]'")


def test_port_in_use_fails_before_loading_the_model() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = serve("--model_name_or_path", "bundled:smollm2", "--port", str(port))
    assert_clean_failure(result, f"127.0.0.1:{port}", "--port")
    assert "Loading model" not in result.stdout


def test_limits_must_be_positive() -> None:
    result = serve("--model_name_or_path", "bundled:smollm2", "--max-new-tokens", "0")
    assert_clean_failure(result, "--max-new-tokens must be at least 1")


@pytest.mark.parametrize(
    ("engine", "module", "install"),
    [
        ("vllm", "vllm.entrypoints.openai.api_server", "pip install vllm"),
        ("fastchat", "fastchat.serve.openai_api_server", "pip install 'fschat[model_worker]'"),
    ],
)
def test_engine_launchers(engine: str, module: str, install: str) -> None:
    argv = (engine, "--model_name_or_path", "org/some-model", "--port", "8123")
    dry = serve(*argv, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert module in dry.stdout
    config_line = next(line for line in dry.stdout.splitlines() if '"model_type"' in line)
    config = json.loads(config_line)
    assert config["model_type"] == "openai_chat"
    assert config["client_args"]["base_url"] == "http://127.0.0.1:8123/v1"
    if importlib.util.find_spec(engine) is None:
        assert install in dry.stdout
        real = serve(*argv)
        assert_clean_failure(real, f"{engine} is not installed", install)
        assert module in real.stdout  # the command is printed before the error


def test_plugin_module_is_cheap_to_import() -> None:
    code = (
        "import sys, modelwire_serving.plugin; "
        "print([m for m in ('torch', 'transformers', 'flask', 'waitress') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_plugin_is_registered_and_adds_the_serve_command() -> None:
    entry_points = importlib.metadata.entry_points(group="modelwire")
    assert any(
        ep.name == "serving" and ep.value == "modelwire_serving.plugin" for ep in entry_points
    )

    added: dict[str, object] = {}

    class Commands:
        def add(self, name: str, *, help: str, configure: object, run: object) -> None:
            added.update(name=name, help=help, configure=configure, run=run)

    plugin.register_commands(cli=Commands())
    assert added["name"] == "serve" and callable(added["run"])
    parser = argparse.ArgumentParser()
    added["configure"](parser)  # type: ignore[operator]
    args = parser.parse_args(["--model_name_or_path", "m", "--port", "0", "--device", "cuda:1"])
    assert (args.engine, args.model_name_or_path, args.port, args.device) == (
        "transformers",
        "m",
        0,
        "cuda:1",
    )


def test_plugin_module_imports_no_cli_flask_or_torch() -> None:
    """Discovery imports the plugin module for every modelwire user: it must stay bare."""
    code = (
        "import json, sys\n"
        "import modelwire_serving.plugin\n"
        "heavy = ('modelwire_serving.cli', 'flask', 'waitress', 'torch', 'transformers')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_modelwire_serve_through_the_core_cli() -> None:
    pytest.importorskip("modelwire")
    result = subprocess.run(
        [sys.executable, "-m", "modelwire", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--model_name_or_path" in result.stdout
