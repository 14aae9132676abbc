"""The ``modelwire`` command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from modelwire.testing import FakeServer, Reply, Request
from modelwire.testing.distributions import last_json, make_distribution, run_python


def modelwire(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "modelwire", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def write_config(tmp_path: Path, server: FakeServer, **extra: object) -> Path:
    path = tmp_path / "configs.json"
    path.write_text(
        json.dumps(
            [
                {
                    "config_name": "rev",
                    "model_type": "reverse_echo",
                    "model_name": "reverse-1",
                    "base_url": server.url,
                    "api_key": "cli-secret-key-987654",
                    **extra,
                }
            ]
        )
    )
    return path


def service(request: Request) -> Reply:
    body = request.json()
    usage = {"input_tokens": 1, "output_tokens": 1}
    if body.get("stream"):
        out = body["text"][::-1]
        return Reply.ndjson([{"delta": out[:2]}, {"delta": out[2:]}, {"delta": "", "usage": usage}])
    return Reply.json({"output": body["text"][::-1], "usage": usage})


def test_types_json_lists_installed_types() -> None:
    result = modelwire("types", "--json")
    rows = json.loads(result.stdout)
    reverse = next(r for r in rows if r["model_type"] == "reverse_echo")
    assert reverse["distribution"] == "modelwire-reverse-echo"
    assert reverse["aliases"] == []
    assert {"model_type", "distribution", "aliases"} <= set(rows[0])


def test_types_table() -> None:
    result = modelwire("types")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].split() == [
        "MODEL_TYPE",
        "DISTRIBUTION",
        "ALIASES",
        "TARGET",
    ]
    assert any(line.startswith("reverse_echo") for line in result.stdout.splitlines())


def test_plugins_shows_broken_plugin_reason(tmp_path: Path) -> None:
    make_distribution(
        tmp_path,
        "broken-dist",
        {"brk.plugin": "raise ImportError('no sdk')\n"},
        "[modelwire]\nb = brk.plugin\n",
    )
    code = "from modelwire.cli import main; raise SystemExit(main(['plugins', '--json']))"
    result = run_python(code, tmp_path)
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    assert plugins["broken-dist"]["status"] == "broken"
    assert plugins["broken-dist"]["error"] == "ImportError: no sdk"
    assert plugins["modelwire-reverse-echo"]["status"] == "ok"
    table = run_python(
        "from modelwire.cli import main; raise SystemExit(main(['plugins']))", tmp_path
    )
    assert "broken-dist (b) failed: ImportError: no sdk" in table.stdout


def test_check_ok_and_redacted(tmp_path: Path, server: FakeServer) -> None:
    path = write_config(tmp_path, server)
    result = modelwire("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "1 config(s) OK" in result.stdout
    assert "cli-secret-key-987654" not in result.stdout
    assert json.loads(modelwire("check", str(path), "--json").stdout)["ok"] is True
    assert server.requests == []


def test_check_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            [
                {"config_name": "a", "model_type": "reverse_echo", "model": "x"},
                {"config_name": "b", "model_type": "nope_type"},
            ]
        )
    )
    result = modelwire("check", str(path))
    assert result.returncode == 1
    assert "did you mean 'model_name'" in result.stderr
    assert "unknown model_type 'nope_type'" in result.stderr
    report = json.loads(modelwire("check", str(path), "--json").stdout)
    assert report["ok"] is False
    assert {(i["config_name"], i["key"]) for i in report["issues"]} >= {
        ("a", "model"),
        ("b", "model_type"),
    }


def test_chat_streams_and_reads_stdin(tmp_path: Path, server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", service)
    path = write_config(tmp_path, server)
    result = modelwire("chat", "rev", "hello", "-c", str(path))
    assert result.stdout == "olleh\n", result.stderr
    assert server.requests[-1].json()["stream"] is True
    result = modelwire("chat", "rev", "--no-stream", stdin="abc", MODELWIRE_CONFIG=str(path))
    assert result.stdout == "cba\n"
    assert server.requests[-1].json()["stream"] is False


def test_chat_error_is_one_clean_line(tmp_path: Path, server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", Reply.error(401))
    path = write_config(tmp_path, server)
    result = modelwire("chat", "rev", "x", "-c", str(path), "--no-stream")
    assert result.returncode == 1
    assert result.stderr.startswith("error: [rev (reverse_echo)] HTTP 401")
    assert "Traceback" not in result.stderr
    assert "cli-secret-key-987654" not in result.stderr


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def tool_call_reply(request: Request) -> Reply:
    """An OpenAI chat completion calling ``get_weather``, once the tools arrived."""
    assert request.json()["tools"] == TOOLS
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    message = {"role": "assistant", "content": "Checking.", "tool_calls": [call]}
    return Reply.json(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        }
    )


def chat_files(tmp_path: Path, server: FakeServer) -> tuple[Path, Path]:
    """A config file with one openai config pointing at ``server``, and a tools file."""
    configs = tmp_path / "configs.json"
    configs.write_text(
        json.dumps(
            {
                "config_name": "gpt",
                "model_type": "openai",
                "model_name": "gpt-4o",
                "api_key": "cli-secret-key-987654",
                "client_args": {"base_url": server.url + "/v1"},
            }
        )
    )
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    return configs, tools


def test_chat_passes_tools_and_prints_the_calls(tmp_path: Path, server: FakeServer) -> None:
    server.route("POST", "/v1/chat/completions", tool_call_reply)
    configs, tools = chat_files(tmp_path, server)
    result = modelwire("chat", "gpt", "Weather?", "-c", str(configs), "--tools", str(tools),
                       "--no-stream")  # fmt: skip
    assert result.stdout == 'Checking.\ntool call get_weather {"city": "Paris"}\n', result.stderr


def streamed_tool_calls_reply(request: Request) -> Reply:
    """An OpenAI chat completion stream: text, then two calls of ``get_weather`` whose
    arguments arrive in pieces, interleaved, then the usage."""
    body = request.json()
    assert body["stream"] is True and body["tools"] == TOOLS

    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o", "choices": [choice]}  # fmt: skip

    def call(index: int, arguments: str, **head: str) -> dict[str, object]:
        function = {"arguments": arguments, **({"name": head["name"]} if "name" in head else {})}
        start = {"id": head["id"], "type": "function"} if "id" in head else {}
        return {"tool_calls": [{"index": index, **start, "function": function}]}

    events = [
        chunk({"role": "assistant", "content": "Check"}),
        chunk({"content": "ing."}),
        chunk(call(0, '{"ci', id="call_1", name="get_weather")),
        chunk(call(1, '{"city": "Ro', id="call_2", name="get_weather")),
        chunk(call(0, 'ty": "Par')),
        chunk(call(1, 'me"}')),
        chunk(call(0, 'is"}')),
        chunk({}, "tool_calls"),
        {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
         "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9,
                                  "total_tokens": 14}},
    ]  # fmt: skip
    return Reply.sse(events, done="[DONE]")


def test_chat_streams_and_prints_the_tool_calls(tmp_path: Path, server: FakeServer) -> None:
    """``chat --tools`` on the streaming path (the default): the text as it streams,
    then one line per call, assembled from the fragments the stream brought."""
    server.route("POST", "/v1/chat/completions", streamed_tool_calls_reply)
    configs, tools = chat_files(tmp_path, server)
    result = modelwire("chat", "gpt", "Weather?", "-c", str(configs), "--tools", str(tools))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Checking.\n"
        'tool call get_weather {"city": "Paris"}\n'
        'tool call get_weather {"city": "Rome"}\n'
    ), result.stderr
    (request,) = server.requests
    assert request.json()["stream"] is True


def test_chat_tools_refused_by_a_type_without_them(tmp_path: Path, server: FakeServer) -> None:
    server.route("POST", "/v1/reverse", service)
    path = write_config(tmp_path, server)
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    result = modelwire("chat", "rev", "x", "-c", str(path), "--tools", str(tools))
    assert result.returncode == 1
    assert "takes no `tools`" in result.stderr and "Traceback" not in result.stderr
    assert not server.requests
    (tmp_path / "bad.json").write_text("{not json")
    result = modelwire("chat", "rev", "x", "-c", str(path), "--tools", str(tmp_path / "bad.json"))
    assert result.returncode == 1 and result.stderr.startswith("error: --tools"), result.stderr


def test_missing_config_option(server: FakeServer) -> None:
    result = modelwire("chat", "rev", "x")
    assert result.returncode != 0 and "pass --config FILE or set MODELWIRE_CONFIG" in result.stderr


def test_plugin_commands_are_added(tmp_path: Path) -> None:
    source = """
import pluggy
hookimpl = pluggy.HookimplMarker("modelwire")

def configure(parser):
    parser.add_argument("--name", default="world")

def run(args):
    print(f"hello {args.name}")
    return 3

@hookimpl
def register_commands(cli):
    cli.add("hello", help="say hello", configure=configure, run=run)
"""
    make_distribution(
        tmp_path, "hello-cmd", {"hello_cmd.plugin": source}, "[modelwire]\nh = hello_cmd.plugin\n"
    )
    code = "from modelwire.cli import main; raise SystemExit(main(['hello', '--name', 'x']))"
    result = run_python(code, tmp_path)
    assert result.returncode == 3 and result.stdout == "hello x\n"


def test_import_modelwire_loads_no_plugin_pluggy_or_sdk() -> None:
    code = """
import json, sys
import modelwire
heavy = ("pluggy", "importlib_metadata", "modelwire_", "openai", "dashscope", "google",
         "ollama", "httpx", "torch", "transformers", "yaml", "modelwire.plugins",
         "modelwire.wrapper")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
"""
    assert last_json(run_python(code)) == []


def test_the_environment_adds_no_imports_to_interpreter_start() -> None:
    """A ``.pth`` that imports modules slows every Python process of the environment.

    An editable install of the workspace root made setuptools add a path finder that
    imported ``pathlib``, ``re`` and ``urllib`` at every start-up (+15-20 ms per
    process, and the start-up benchmark's baseline with it); ``make install`` installs
    the root non-editable now.
    """
    code = """
import sys
print(sorted(m for m in ("pathlib", "re", "urllib.parse", "importlib.util") if m in sys.modules))
"""
    result = run_python(code)  # no json here: json imports re
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
