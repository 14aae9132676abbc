"""Hostile config files and calls get one clear error, never a crash, a hang or a lost record."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelwire import BadRequestError, ConfigError, ModelRegistry, Msg
from modelwire import records as records_module
from modelwire.testing import FakeServer, Reply


def reverse(**params: Any) -> dict[str, Any]:
    return {
        "config_name": "rev",
        "model_type": "reverse_echo",
        "model_name": "reverse-1",
        "base_url": "http://127.0.0.1:9",
        **params,
    }


def one_line_error(source: Any) -> str:
    with pytest.raises(ConfigError) as info:
        ModelRegistry(source)
    message = str(info.value)
    assert "\n" not in message.strip() or message.count("\n") <= 2, message
    return message


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "configs.json"
    path.write_bytes(b'[{"config_name": "x\xff\xfe"}]')
    assert "not UTF-8 text (byte 0xff at offset 19)" in one_line_error(str(path))


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_file_nested_too_deep(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"configs{suffix}"
    path.write_text("[" * 50_000 + "]" * 50_000)
    assert "nests deeper than a config can" in one_line_error(str(path))


def test_a_config_nested_deep_but_parseable_is_refused(tmp_path: Path) -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    message = one_line_error([reverse(pricing={"prompt": deep})])
    assert "nests deeper than 32 levels" in message


def test_an_integer_of_5000_digits(tmp_path: Path) -> None:
    path = tmp_path / "configs.json"
    path.write_text(
        '[{"config_name": "x", "model_type": "reverse_echo", "timeout": ' + "9" * 5000 + "}]"
    )
    assert "a value cannot be read: Exceeds the limit" in one_line_error(str(path))


def test_a_lone_surrogate(tmp_path: Path) -> None:
    path = tmp_path / "configs.json"
    path.write_text('[{"config_name": "x", "model_type": "reverse_echo", "model_name": "\\ud800"}]')
    message = one_line_error(str(path))
    assert "lone surrogate" in message
    message.encode("utf-8")  # the error itself is printable


def test_a_directory_as_config_file(tmp_path: Path) -> None:
    assert "is a directory" in one_line_error(str(tmp_path))


def test_a_yaml_syntax_error_does_not_quote_the_line(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "configs.yaml"
    path.write_text(
        "- config_name: x\n  model_type: reverse_echo\n  api_key: sk-live-0123456789abcdef: [\n"
    )
    message = one_line_error(str(path))
    assert "invalid YAML at line 3" in message
    assert "sk-live-0123456789abcdef" not in message


def test_billion_laughs_yaml_is_refused_quickly(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    path = tmp_path / "configs.yaml"
    header = "- config_name: x\n  model_type: reverse_echo\n  extra:\n"
    path.write_text(header + "\n".join("    " + line for line in lines) + "\n")
    started = time.perf_counter()
    message = one_line_error(str(path))
    assert "more than 100000 values once YAML aliases are followed" in message
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("how", ["init", "environment"])
def test_records_pointed_at_a_directory(tmp_path: Path, how: str, monkeypatch: Any) -> None:
    import modelwire

    if how == "init":
        with pytest.raises(ConfigError, match=r"records=.* cannot be written to") as info:
            modelwire.init(model_configs=[], records=tmp_path)
    else:
        monkeypatch.setenv("MODELWIRE_RECORDS", str(tmp_path))
        with pytest.raises(ConfigError, match=r"MODELWIRE_RECORDS=.* cannot be written to") as info:
            records_module.RecordsPlugin()
    assert "\n" not in str(info.value)


def test_records_keep_calls_with_lone_surrogates_and_deep_arguments(
    server: FakeServer, tmp_path: Path
) -> None:
    server.route(
        "POST",
        "/v1/reverse",
        Reply.json({"output": "ok", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )
    path = tmp_path / "records.jsonl"
    records_module.configure(path)
    try:
        model = ModelRegistry([reverse(base_url=server.url)]).load_model("rev")
        with pytest.raises(BadRequestError, match="lone surrogate"):
            model("bad \ud800 text")
        deep: Any = "x"
        for _ in range(40):
            deep = {"k": deep}
        with pytest.raises(BadRequestError):  # the example plugin takes no keyword arguments
            model("fine", options=deep)
    finally:
        records_module.configure(None)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["status"] for line in lines] == ["error", "error"]
    assert lines[0]["request"]["args"] == ["bad \ud800 text"]
    assert "nested deeper than 20 levels" in json.dumps(lines[1]["request"]["kwargs"])


def test_input_nested_too_deep_is_refused_before_sending(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.json({"output": "x"}))
    model = ModelRegistry([reverse(base_url=server.url)]).load_model("rev")
    deep: Any = "x"
    for _ in range(50_000):
        deep = [deep]
    with pytest.raises(BadRequestError, match="nests deeper than 64 levels; nothing was sent"):
        model(deep)
    assert server.requests == []


def test_input_that_holds_itself_is_refused_before_sending(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.json({"output": "x"}))
    model = ModelRegistry([reverse(base_url=server.url)]).load_model("rev")
    loop: list[Any] = ["x"]
    loop.append(loop)
    message: dict[str, Any] = {"role": "user"}
    message["content"] = [message]
    doubling: list[Any] = []
    doubling += [doubling, doubling]
    for value in (loop, [message], doubling):
        with pytest.raises(BadRequestError, match=r"holds itself.*nothing was sent"):
            model(value)
    assert server.requests == []


def test_input_sharing_one_object_many_times_is_checked_quickly(server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.json({"output": "x"}))
    model = ModelRegistry([reverse(base_url=server.url)]).load_model("rev")
    shared: Any = ["x"]
    for _ in range(40):  # 2**40 paths to the innermost list, 41 lists
        shared = [shared, shared]
    started = time.perf_counter()
    with pytest.raises(BadRequestError, match="nothing was sent"):  # the example takes text
        model(shared)
    assert time.perf_counter() - started < 1.0
    bad = ["fine", "bad \ud800"]
    with pytest.raises(BadRequestError, match="lone surrogate"):
        model([bad, bad])  # shared, not holding itself: still checked


def test_records_and_reprs_show_inline_images_by_size(server: FakeServer, tmp_path: Path) -> None:
    server.route(
        "POST", "/v1/chat/completions", Reply.json({"choices": [{"message": {"content": "a cat"}}]})
    )
    data = d = base64.b64encode(b"\x89PNG" + b"0" * 1_999_996).decode()  # 2 MB of image
    message = Msg(
        "user",
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": d}},
        ],
        role="user",
        url="data:image/jpeg;base64," + data,
    )
    path = tmp_path / "records.jsonl"
    records_module.configure(path)
    try:
        config = {"config_name": "chat", "model_type": "post_api_chat"}
        model = ModelRegistry([{**config, "api_url": server.url + "/v1/chat/completions"}])
        chat = model.load_model("chat")
        assert chat(chat.format(message)).text == "a cat"
        assert data in server.requests[0].body.decode()  # the image itself was sent
    finally:
        records_module.configure(None)
    line = path.read_text(encoding="utf-8")
    assert len(line) < 5_000
    assert "<image/png, 2000000 bytes>" in line or "<image/jpeg, 2000000 bytes>" in line
    assert data[:64] not in line
    shown = repr(message)
    assert len(shown) < 1_000
    assert "<image/png, 2000000 bytes>" in shown and "<image/jpeg, 2000000 bytes>" in shown
