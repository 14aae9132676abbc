"""The pure parts of modelwire-serving: validation, locations, reply shapes, launch plans.

No model and no server here; these run in milliseconds.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import struct
import sys

import pytest

from modelwire_serving import bundled
from modelwire_serving.cli import build_parser
from modelwire_serving.errors import RequestError, ServeError
from modelwire_serving.jobs import Completion
from modelwire_serving.launchers import describe, fastchat_plan, vllm_plan
from modelwire_serving.loading import materialize, resolve_location
from modelwire_serving.params import (
    GenerationOptions,
    SamplingParams,
    parse_chat_body,
    parse_embedding_body,
    parse_llm_body,
    resolve_max_new_tokens,
)
from modelwire_serving.responses import encode_base64, llm_reply
from modelwire_serving.server import API_KEY_PLACEHOLDER

MODELSCOPE_INSTALLED = importlib.util.find_spec("modelscope") is not None


# -- /llm/ bodies --------------------------------------------------------------------


def test_llm_body_keeps_a_string_prompt_as_it_is() -> None:
    parsed = parse_llm_body({"inputs": "  Hello\n", "max_new_tokens": 5, "temperature": 0.0})
    assert parsed.inputs == "  Hello\n"
    assert parsed.options.max_new_tokens == 5
    assert parsed.options.sampling.temperature == 0.0


def test_llm_body_accepts_messages_under_inputs_or_messages() -> None:
    messages = [{"role": "user", "content": "Hi", "name": "bob"}]
    assert parse_llm_body({"inputs": messages}).inputs == [{"role": "user", "content": "Hi"}]
    assert parse_llm_body({"messages": messages}).inputs == [{"role": "user", "content": "Hi"}]


def test_llm_body_joins_text_parts() -> None:
    body = {
        "inputs": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]
    }
    assert parse_llm_body(body).inputs == [{"role": "user", "content": "ab"}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "missing 'inputs'"),
        ({"inputs": 3}, "must be a string or a list of messages"),
        ({"inputs": ""}, "must not be empty"),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [{"content": "x"}]}, "role"),
        ({"inputs": [{"role": "user", "content": 5}]}, "content"),
        ({"inputs": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text parts"),
        ({"inputs": "x", "foo": 1}, "unknown generation parameter(s) 'foo'"),
        ({"inputs": "x", "num_beams": 2}, "not supported"),
        ({"inputs": "x", "max_new_tokens": "10"}, "must be an integer"),
        ({"inputs": "x", "max_new_tokens": True}, "must be an integer"),
        ({"inputs": "x", "max_new_tokens": 0}, ">= 1"),
        ({"inputs": "x", "temperature": -0.5}, "'temperature' must be >= 0.0"),
        ({"inputs": "x", "top_p": 0}, "'top_p' must be > 0.0"),
        ({"inputs": "x", "do_sample": "yes"}, "true or false"),
        ({"inputs": "x", "stop": 5}, "'stop' must be a string or a list"),
        ({"inputs": "x", "stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"inputs": "x", "messages": []}, "either 'inputs' or 'messages'"),
    ],
)
def test_llm_body_errors_name_the_problem(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_llm_body(body)
    assert caught.value.status == 400
    assert fragment in caught.value.message


# -- OpenAI bodies -------------------------------------------------------------------


def test_chat_body_reads_openai_fields() -> None:
    parsed = parse_chat_body(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 7,
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": "\n",
            "n": 1,
            "presence_penalty": 0,
        }
    )
    assert parsed.stream and parsed.include_usage
    assert parsed.options.max_new_tokens == 7
    assert parsed.options.max_tokens_param == "max_tokens"
    assert parsed.options.stop == ("\n",)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n=1"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "tool"),
        ({"messages": [{"role": "user", "content": "x"}], "presence_penalty": 1}, "repetition"),
        ({"messages": [{"role": "user", "content": "x"}], "bogus": 1}, "'bogus'"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "true or false"),
        ({"model": "m"}, "missing 'messages'"),
    ],
)
def test_chat_body_errors(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(RequestError, match=re.escape(fragment)):
        parse_chat_body(body)


def test_embedding_body() -> None:
    assert parse_embedding_body({"input": "a"}).inputs == ["a"]
    parsed = parse_embedding_body({"input": ["a", "b"], "encoding_format": "base64"})
    assert parsed.inputs == ["a", "b"] and parsed.encoding_format == "base64"
    for bad in ({"input": [1, 2]}, {"input": []}, {"input": "a", "encoding_format": "hex"}, {}):
        with pytest.raises(RequestError):
            parse_embedding_body(bad)


# -- token budget ---------------------------------------------------------------------


def test_max_new_tokens_over_the_cap_is_a_400_not_a_clamp() -> None:
    options = GenerationOptions(max_new_tokens=100)
    with pytest.raises(RequestError, match="cap of 64"):
        resolve_max_new_tokens(options, prompt_tokens=10, cap=64, context_length=2048)
    assert resolve_max_new_tokens(options, 10, cap=100, context_length=2048) == 100


def test_seed_max_length_counts_the_prompt_and_is_clamped_to_the_cap() -> None:
    assert resolve_max_new_tokens(GenerationOptions(max_length=30), 10, 64, 2048) == 20
    assert resolve_max_new_tokens(GenerationOptions(max_length=4096), 10, 64, 2048) == 64
    with pytest.raises(RequestError, match="no room"):
        resolve_max_new_tokens(GenerationOptions(max_length=10), 10, 64, 2048)


def test_default_budget_is_the_cap_within_the_context() -> None:
    assert resolve_max_new_tokens(GenerationOptions(), 10, 64, 2048) == 64
    assert resolve_max_new_tokens(GenerationOptions(), 2040, 64, 2048) == 8
    with pytest.raises(RequestError, match="context"):
        resolve_max_new_tokens(GenerationOptions(max_new_tokens=20), 2040, 64, 2048)


# -- batching keys ----------------------------------------------------------------------


def test_greedy_requests_share_a_batch_whatever_their_sampling_knobs() -> None:
    a = SamplingParams(temperature=0.0).resolve(default_do_sample=False)
    b = SamplingParams(top_p=0.5).resolve(default_do_sample=False)
    assert a.do_sample is False and b.do_sample is False
    assert a.batch_key() == b.batch_key()


def test_sampling_requests_group_by_settings_and_seeded_ones_run_alone() -> None:
    warm = SamplingParams(temperature=0.7).resolve(False)
    assert warm.do_sample is True
    assert warm.batch_key() == SamplingParams(temperature=0.7).resolve(False).batch_key()
    assert warm.batch_key() != SamplingParams(temperature=0.9).resolve(False).batch_key()
    seeded = SamplingParams(temperature=0.7, seed=1).resolve(False)
    assert seeded.batch_key() != seeded.batch_key()


def test_do_sample_with_zero_temperature_is_rejected() -> None:
    with pytest.raises(RequestError, match="temperature must be > 0"):
        SamplingParams(do_sample=True, temperature=0.0).resolve(False)


# -- replies ----------------------------------------------------------------------------


def test_llm_reply_has_the_seed_fields_and_the_chat_shape() -> None:
    reply = llm_reply(Completion("Paris.", 5, 2, "stop"), "smollm2")
    assert reply["response"] == "Paris."
    assert reply["data"]["response"]["choices"][0]["message"]["content"] == "Paris."
    assert reply["n_token_prompt"] == 5 and reply["n_token_response"] == 2
    assert reply["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", reply["timestamp"])


def test_base64_embeddings_are_little_endian_float32() -> None:
    vector = [0.5, -1.25, 3.0]
    decoded = struct.unpack("<3f", base64.b64decode(encode_base64(vector)))
    assert list(decoded) == vector


# -- model locations ----------------------------------------------------------------------


def test_bundled_models_resolve_to_the_installed_packages() -> None:
    folder, gguf = bundled.bundled_path("bundled:smollm2")
    assert gguf and os.path.isfile(os.path.join(folder, gguf))
    folder, gguf = bundled.bundled_path("bundled:minilm")
    assert gguf is None and os.path.isfile(os.path.join(folder, "config.json"))
    with pytest.raises(ServeError, match="known: bundled:smollm2"):
        bundled.bundled_path("bundled:nope")


def test_a_gguf_path_is_split_into_folder_and_file() -> None:
    folder, gguf = bundled.bundled_path("bundled:smollm2")
    assert gguf is not None
    location = resolve_location(os.path.join(folder, gguf))
    assert (location.path, location.gguf_file, location.local) == (folder, gguf, True)
    assert location.served_name == gguf.removesuffix(".gguf")


def test_missing_folder_and_missing_gguf_file_are_clear_errors(tmp_path: object) -> None:
    with pytest.raises(ServeError, match="model not found"):
        resolve_location("/no/such/model/folder")
    folder, _ = bundled.bundled_path("bundled:smollm2")
    with pytest.raises(ServeError, match=r"not found in .*SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        resolve_location(folder, gguf_file="other.gguf")


def test_modelscope_with_a_local_folder_needs_no_modelscope_package() -> None:
    folder, _ = bundled.bundled_path("bundled:minilm")
    location = resolve_location(folder, source="modelscope")
    assert location.local and location.source == "modelscope"
    assert materialize(location) == folder  # loaded by transformers directly


@pytest.mark.skipif(MODELSCOPE_INSTALLED, reason="modelscope is installed here")
def test_modelscope_hub_id_without_the_extra_says_how_to_install_it() -> None:
    with pytest.raises(ServeError, match=re.escape("pip install 'modelwire-serving[modelscope]'")):
        resolve_location("qwen/Qwen2.5-0.5B-Instruct", source="modelscope")


def test_hub_ids_are_left_to_the_hub() -> None:
    location = resolve_location("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not location.local and location.served_name == "SmolLM2-135M-Instruct"


# -- launchers ------------------------------------------------------------------------------


def _args(*argv: str) -> object:
    return build_parser().parse_args(list(argv))


def test_vllm_plan_builds_the_openai_server_command_and_config() -> None:
    args = _args(
        "vllm",
        "--model_name_or_path",
        "org/model",
        "--port",
        "8123",
        "--api-key",
        "k",
        "--dtype",
        "bf16",
        "--device",
        "cuda:1",
        "--engine-args",
        "--tensor-parallel-size 2",
    )
    plan = vllm_plan(args)  # type: ignore[arg-type]
    (command,) = plan.commands
    assert command[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(command)
    for part in (
        "--model org/model",
        "--port 8123",
        "--host 127.0.0.1",
        "--api-key k",
        "--dtype bfloat16",
        "--served-model-name model",
        "--tensor-parallel-size 2",
    ):
        assert part in joined
    assert plan.env == {"CUDA_VISIBLE_DEVICES": "1"}
    assert plan.config == {
        "config_name": "vllm_model",
        "model_type": "openai_chat",
        "model_name": "model",
        "api_key": API_KEY_PLACEHOLDER,  # not the key itself: the config is logged
        "client_args": {"base_url": "http://127.0.0.1:8123/v1"},
    }
    assert "CUDA_VISIBLE_DEVICES=1 " in describe(plan)


def test_vllm_plan_points_at_the_gguf_file() -> None:
    folder, gguf = bundled.bundled_path("bundled:smollm2")
    plan = vllm_plan(_args("vllm", "--model_name_or_path", "bundled:smollm2"))  # type: ignore[arg-type]
    assert os.path.join(folder, gguf or "") in plan.commands[0]


def test_fastchat_plan_runs_controller_worker_and_api_server() -> None:
    plan = fastchat_plan(_args("fastchat", "--model_name_or_path", "org/model", "--device", "cpu"))  # type: ignore[arg-type]
    modules = [command[2] for command in plan.commands]
    assert modules == [
        "fastchat.serve.controller",
        "fastchat.serve.model_worker",
        "fastchat.serve.openai_api_server",
    ]
    worker = plan.commands[1]
    assert worker[worker.index("--model-path") + 1] == "org/model"
    assert worker[worker.index("--device") + 1] == "cpu"
    assert plan.config["client_args"] == {"base_url": "http://127.0.0.1:8000/v1"}


def test_scheduler_flag_defaults_to_continuous_and_rejects_others() -> None:
    args = build_parser().parse_args(["--model_name_or_path", "bundled:smollm2"])
    assert args.scheduler == "continuous"
    assert args.max_batch_size is None  # resolved per scheduler: 32 in flight / 8 per batch
    static = build_parser().parse_args(["--model_name_or_path", "m", "--scheduler", "static"])
    assert static.scheduler == "static"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model_name_or_path", "m", "--scheduler", "dynamic"])
