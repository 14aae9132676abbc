"""The conformance suite fails plugins that break its rules.

Each mutant is the example ``reverse_echo`` plugin (for the chat rules, the openai
plugin's chat type) with one bug a plugin author really made, installed as a
throwaway distribution with a real entry point; the suite runs against it in a fresh
pytest and the check named for that rule must fail. The unmutated control must pass
the same checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelwire.testing.distributions import make_distribution

SUITE = """
from typing import Any

from modelwire import Usage
from modelwire.testing import FakeServer
from modelwire.testing.conformance import ConformanceSuite
from test_conformance import reverse_service  # the example plugin's own responder


class TestMutantConformance(ConformanceSuite):
    model_type = "mutant_echo"
    distribution = "mutant-echo"
    output = "text"
    streams = True
    expected_text = "olleH"
    expected_usage = Usage(5, 5, 10)
    routes = [("POST", "/v1/reverse")]
    env_secret_var = "REVERSE_ECHO_API_KEY"

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {"config_name": "mutant", "model_type": "mutant_echo", "model_name": "reverse-1",
                "base_url": server.url, "api_key": self.secret}

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/v1/reverse", reverse_service)
"""

HEADER = """
import json
import os
import urllib.request
from modelwire import ModelWrapper
from modelwire_reverse_echo.reverse import ReverseEchoWrapper


class Mutant(ReverseEchoWrapper):
    model_type = "mutant_echo"
"""

#: httpx clients of its own, without modelwire's transport (and following redirects).
UNGUARDED = """
    def _build_client(self):
        import httpx
        return httpx.Client(follow_redirects=True, **self._client_options())

    def _build_async_client(self):
        import httpx
        return httpx.AsyncClient(follow_redirects=True, **self._client_options())
"""

MUTANTS = {
    "control": ("", "test_secret_from_the_environment_never_leaks"),
    "env-key-not-registered": (
        """
    def __init__(self, config_name, *, model_name: str, base_url: str = "http://x",
                 api_key: str | None = None, **kwargs):
        ModelWrapper.__init__(self, config_name, **kwargs)
        self.model_name = model_name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or os.environ.get("REVERSE_ECHO_API_KEY")
""",
        "test_secret_from_the_environment_never_leaks",
    ),
    "input-never-sent": (
        """
    def _request(self, text):
        return {"model": self.model_name, "text": "a fixed prompt"}
""",
        "test_input_and_generation_arguments_reach_the_server",
    ),
    "unguarded-client-ignores-the-deadline": (
        UNGUARDED,
        "test_timeout_is_the_deadline_of_an_attempt",
    ),
    "unguarded-client-reads-any-size": (
        UNGUARDED,
        "test_reply_larger_than_max_response_bytes_is_refused",
    ),
    "unguarded-client-follows-redirects-elsewhere": (
        UNGUARDED,
        "test_redirect_to_another_origin_is_not_followed",
    ),
    "reads-time-out-at-timeout-not-stream-idle-timeout": (
        """
    def _client_options(self):
        return {**super()._client_options(), "timeout": self.timeout}
""",
        "test_stream_idle_timeout_longer_than_timeout_is_kept",
    ),
    "stream-ignores-status": (
        """
    def _send_stream(self, request):
        import httpx
        try:
            yield from super()._send_stream(request)
        except httpx.HTTPStatusError:
            yield {"delta": "", "usage": {"input_tokens": 0, "output_tokens": 0}}
""",
        "test_stream_errors_retries_and_timeout",
    ),
    "stream-without-terminator-accepted": (
        """
    def _parse_chunk(self, event, stream):
        chunk = super()._parse_chunk(event, stream)
        chunk.finish_reason = "stop"
        return chunk
""",
        "test_stream_ended_without_its_terminator_is_an_error",
    ),
    "empty-pricing-table": (
        "    pricing_table = {}\n",
        "test_budget_is_never_overspent_under_concurrency",
    ),
    "reserves-nothing": (
        "    def _token_bounds(self, request):\n        return 0, 0\n",
        "test_budget_below_one_calls_worst_case_sends_nothing",
    ),
    "underestimates-its-worst-case": (
        "    def _token_bounds(self, request):\n        return 1, 1\n",
        "test_budget_is_never_overspent_under_concurrency",
    ),
    "accepts-tools-it-ignores": (
        """
    agent_arguments = frozenset({"tools", "tool_choice", "structured_model"})

    def _request(self, text, **kwargs):
        return super()._request(text)
""",
        "test_tools_reach_the_server_or_are_refused",
    ),
    "close-forgets-the-pool": (
        """
    def __init__(self, config_name, **kwargs):
        super().__init__(config_name, **kwargs)
        import http.client
        from urllib.parse import urlsplit
        from modelwire import SDKClients
        host = urlsplit(self.base_url)
        self.clients = SDKClients(
            lambda: http.client.HTTPConnection(host.hostname, host.port, timeout=self.timeout),
            close_sync=lambda connection: None,
            close_async=lambda connection: None,
        )
        self._keep = []

    def _send(self, request):
        connection = self.clients.sync
        connection.request("POST", "/v1/reverse", json.dumps({**request, "stream": False}),
                           {"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())
""",
        "test_closes_what_it_opens",
    ),
}


#: A chat suite: the openai plugin's own, run against a mutant of its chat type.
CHAT_SUITE = """
from typing import Any

from test_openai_conformance import TestOpenAIChatConformance as _OpenAIChat


class TestMutantConformance(_OpenAIChat):
    model_type = "mutant_chat"
    distribution = "mutant-echo"
"""

CHAT_HEADER = """
import json
from modelwire import ModelResponse, ResponseParseError, blocks_of, iter_msgs, text_of
from modelwire_openai.chat import OpenAIChatWrapper


class Mutant(OpenAIChatWrapper):
    model_type = "mutant_chat"
"""

#: Bugs of a chat plugin that takes tools and structured output, each with the check
#: that must catch it.
CHAT_MUTANTS = {
    "chat-control": ("", "test_a_tool_call_is_a_tool_use_block"),
    "tools-never-sent": (
        """
    def _request(self, messages, **kwargs):
        kwargs.pop("tools", None)
        kwargs.pop("tool_choice", None)
        return super()._request(messages, **kwargs)
""",
        "test_tools_reach_the_server_or_are_refused",
    ),
    "tool-calls-dropped": (
        """
    def _parse(self, reply, request):
        response = super()._parse(reply, request)
        response.content = [b for b in response.content if b["type"] != "tool_use"]
        response.tool_calls = None
        return response
""",
        "test_a_tool_call_is_a_tool_use_block",
    ),
    "tool-results-not-sent-back": (
        """
    def format(self, *args):
        return [m for m in super().format(*args) if m["role"] != "tool"]
""",
        "test_tool_results_are_sent_back",
    ),
    "structured-reply-not-validated": (
        """
    def _parse(self, reply, request):
        schema = request.pop("structured_model", None)
        response = super()._parse(reply, request)
        if schema is not None:
            response.parsed = json.loads(response.text)
        return response
""",
        "test_structured_output_is_validated",
    ),
    "duplicate-tools-keep-the-last": (
        """
    def _request(self, messages, **kwargs):
        if kwargs.get("tools"):  # one tool per name, the last one winning, never refused
            named = {getattr(tool, "__name__", repr(tool)): tool for tool in kwargs["tools"]}
            kwargs["tools"] = list(named.values())
        return super()._request(messages, **kwargs)
""",
        "test_a_tool_that_cannot_be_sent_is_refused_before_sending",
    ),
    "image-blocks-dropped": (
        """
    def _content(self, msg):
        return text_of(msg.content)  # the text blocks only
""",
        "test_image_blocks_reach_the_server",
    ),
    "images-inlined-in-the-text": (
        """
    def _content(self, msg):
        # as for a text-only API: each image a markdown data URL inside the prompt
        return "\\n".join(
            block.get("text", "") if block["type"] == "text"
            else f"![image](data:{block['source']['media_type']};base64,{block['source']['data']})"
            for block in blocks_of(msg.content)
        ) or text_of(msg.content)
""",
        "test_image_blocks_reach_the_server",
    ),
    "thinking-read-only-in-calls": (
        """
    def _parse_chunk(self, event, stream):
        chunk = super()._parse_chunk(event, stream)
        chunk.thinking = ""  # a delta read for its content only
        return chunk
""",
        "test_thinking_is_read",
    ),
    "tool-results-without-their-call-id": (
        """
    def format(self, *args):
        # a tool message formatted like any other: its role and text
        return [
            {"role": "tool", "content": message["content"]} if message["role"] == "tool"
            else message
            for message in super().format(*args)
        ]
""",
        "test_tool_results_are_sent_back",
    ),
    "tool-calls-dropped-results-named-by-function": (
        """
    def format(self, *args):
        # OpenAI's deprecated function messages: each result named by its function, and
        # the assistant's tool_use blocks lost with everything but its text
        messages = []
        for msg in iter_msgs(*args):
            results = [b for b in blocks_of(msg.content) if b["type"] == "tool_result"]
            messages += [
                {"role": "function", "name": r["name"], "content": text_of(r["output"])}
                for r in results
            ] or [{"role": msg.role, "content": text_of(msg.content)}]
        return messages
""",
        "test_tool_results_are_sent_back",
    ),
}


#: Bugs on one call path only (the others are right), each with the check that must
#: catch it and the path its failure must name; the check fails, and no other agent
#: check of the suite does.
ONE_PATH_MUTANTS = {
    "astream-ignores-structured-model": (
        """
    def astream(self, *args, structured_model=None, **kwargs):
        return super().astream(*args, **kwargs)  # the schema never reaches the request
""",
        "test_structured_output_is_validated",
        "astream",
    ),
    "acall-takes-replies-off-the-schema": (
        """
    async def acall(self, *args, **kwargs):
        try:
            return await super().acall(*args, **kwargs)
        except ResponseParseError as exc:  # a "lenient" async path: whatever the JSON says
            if exc.text is None or kwargs.get("structured_model") is None:
                raise
            return ModelResponse(text=exc.text, parsed=json.loads(exc.text))
""",
        "test_structured_output_is_validated",
        "acall",
    ),
    "acall-drops-thinking": (
        """
    async def acall(self, *args, **kwargs):
        response = await super().acall(*args, **kwargs)
        # rebuilt from the fields the async path was written for, before reasoning
        return ModelResponse(text=response.text, raw=response.raw, usage=response.usage,
                             tool_calls=response.tool_calls, parsed=response.parsed)
""",
        "test_thinking_is_read",
        "acall",
    ),
    "astream-drops-thinking": (
        """
    def astream(self, *args, **kwargs):
        chunks = super().astream(*args, **kwargs)

        async def text_only():
            async for chunk in chunks:
                chunk.thinking = ""
                yield chunk

        return text_only()
""",
        "test_thinking_is_read",
        "astream",
    ),
    "stream-ignores-tool-choice": (
        """
    def _send_stream(self, request):
        request = {k: v for k, v in request.items() if k != "tool_choice"}
        return super()._send_stream(request)
""",
        "test_tool_choice_forces_the_named_tool",
        "stream",
    ),
    "acall-ignores-tool-choice": (
        """
    async def _asend(self, request):
        request = {k: v for k, v in request.items() if k != "tool_choice"}
        return await super()._asend(request)
""",
        "test_tool_choice_forces_the_named_tool",
        "acall",
    ),
}

#: Every agent check of the suite: what the chat control must pass.
AGENT_CHECKS = sorted(
    {check for _, check in CHAT_MUTANTS.values()}
    | {check for _, check, _ in ONE_PATH_MUTANTS.values()}
    | {"test_tool_choice_forces_the_named_tool"}
)


@pytest.mark.parametrize("mutant", sorted(CHAT_MUTANTS))
def test_suite_fails_the_chat_mutant_on_the_rule_it_breaks(
    mutant: str, tmp_path: Path, openai_tests: Path
) -> None:
    body, check = CHAT_MUTANTS[mutant]
    control = mutant == "chat-control"
    if control:  # the unmutated type passes every agent check
        check = " or ".join(AGENT_CHECKS)
    _install_mutant(tmp_path, "mutant_chat", CHAT_HEADER + body)
    (tmp_path / "test_mutant.py").write_text(textwrap.dedent(CHAT_SUITE))
    (tmp_path / "conftest.py").write_text((openai_tests / "conftest.py").read_text())
    _expect_failure_of(check, control, tmp_path, openai_tests)


@pytest.mark.parametrize("mutant", sorted(ONE_PATH_MUTANTS))
def test_suite_fails_the_chat_mutant_on_the_path_it_breaks(
    mutant: str, tmp_path: Path, openai_tests: Path
) -> None:
    """All the agent checks run against the mutant: only the named one fails, and its
    failure names the broken path."""
    body, check, operation = ONE_PATH_MUTANTS[mutant]
    _install_mutant(tmp_path, "mutant_chat", CHAT_HEADER + body)
    (tmp_path / "test_mutant.py").write_text(textwrap.dedent(CHAT_SUITE))
    (tmp_path / "conftest.py").write_text((openai_tests / "conftest.py").read_text())
    returncode, output = _run_suite(" or ".join(AGENT_CHECKS), tmp_path, openai_tests)
    assert returncode == 1, output
    failed = re.findall(r"^FAILED test_mutant\.py::TestMutantConformance::(\w+)", output, re.M)
    assert failed == [check], output
    assert f"1 failed, {len(AGENT_CHECKS) - 1} passed" in output, output
    reasons = [line for line in output.splitlines() if line.startswith("E ")]
    assert any(re.search(rf"\ba {operation}\b", line) for line in reasons), output


@pytest.fixture(scope="module")
def openai_tests() -> Path:
    return Path(__file__).resolve().parents[1] / "plugins" / "openai"


@pytest.fixture(scope="module")
def example_path() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "thirdparty-plugin"


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_suite_fails_the_mutant_on_the_rule_it_breaks(
    mutant: str, tmp_path: Path, example_path: Path
) -> None:
    body, check = MUTANTS[mutant]
    _install_mutant(tmp_path, "mutant_echo", HEADER + body)
    (tmp_path / "test_mutant.py").write_text(textwrap.dedent(SUITE))
    _expect_failure_of(
        check, mutant == "control", tmp_path, example_path / "src", example_path / "tests"
    )


def _install_mutant(tmp_path: Path, model_type: str, source: str) -> None:
    """The mutant as a throwaway distribution ``mutant-echo`` registering ``model_type``."""
    make_distribution(
        tmp_path,
        "mutant-echo",
        {
            "mutant_echo.plugin": f"""
                from modelwire import hookimpl

                @hookimpl
                def register_model_types(register):
                    register("{model_type}", "mutant_echo.wrapper:Mutant")
            """,
            "mutant_echo.wrapper": source,
        },
        "[modelwire]\nmutant = mutant_echo.plugin\n",
    )


def _expect_failure_of(check: str, control: bool, tmp_path: Path, *paths: Path) -> None:
    """Run ``check`` of the suite in ``tmp_path``: it must pass for the control and fail,
    by that check's name, for a mutant."""
    returncode, output = _run_suite(check, tmp_path, *paths)
    if control:
        assert returncode == 0, output
        assert " passed" in output and " skipped" not in output, output
    else:
        assert returncode == 1, output
        assert f"FAILED test_mutant.py::TestMutantConformance::{check}" in output, output


def _run_suite(checks: str, tmp_path: Path, *paths: Path) -> tuple[int, str]:
    """The return code and output of the suite in ``tmp_path`` run for ``checks`` (a
    ``-k`` expression)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # plugins no suite uses, which cost seconds of start-up in every subprocess
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:anyio",
            "-p",
            "no:asyncio",
            "--import-mode=importlib",
            "-k",
            checks,
            str(tmp_path / "test_mutant.py"),
            "-W",
            "ignore::DeprecationWarning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**_env(), "PYTHONPATH": ":".join(map(str, [tmp_path, *paths]))},
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
