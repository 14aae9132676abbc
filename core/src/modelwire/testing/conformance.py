"""The conformance suite every modelwire plugin runs, first- or third-party.

Subclass ``ConformanceSuite`` in a test module (name the subclass ``Test...``),
set the class attributes and implement ``config`` and ``script_success``::

    class TestEchoConformance(ConformanceSuite):
        model_type = "reverse_echo"
        distribution = "modelwire-reverse-echo"
        sdk_modules = ()
        output = "text"
        streams = False
        expected_text = "olleh"
        expected_usage = Usage(1, 1, 2)
        routes = [("POST", "/reverse")]

        def config(self, server):
            return {"config_name": "echo", "model_type": "reverse_echo",
                    "base_url": server.url, "api_key": self.secret}

        def script_success(self, server):
            server.route("POST", "/reverse", Reply.json({...}))

A capability the model type lacks is declared (``streams = False``, ``reports_usage
= False``), and the suite then checks that using it fails cleanly: nothing is skipped.

A chat type declares what it takes beyond text (``supports_tools``,
``supports_structured_output``, ``supports_images``, ``supports_thinking``) and
implements ``script_reply``, which scripts a reply in the provider's wire shape; the
suite then holds it to the contract of ``docs/plugins.md`` ("Tools, structured output
and content blocks"). A type that takes no tools or ``structured_model`` must refuse
them before sending.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
    UnsupportedOperationError,
)
from modelwire.message import Msg
from modelwire.response import ModelResponse, Usage
from modelwire.testing.fakeserver import FakeServer, Reply, Request
from modelwire.testing.tools import get_time, get_weather

__all__ = ["HEAVY_MODULES", "ConformanceSuite"]

#: Modules that plugin discovery must never import, whatever the plugin.
HEAVY_MODULES = (
    "torch",
    "transformers",
    "openai",
    "dashscope",
    "google.genai",
    "ollama",
    "httpx",
    "httpx2",
    "aiohttp",
)


#: What ``structured_model`` asks for in the structured-output check.
CITY_SCHEMA = {
    "title": "City",
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
#: A 1x1 PNG, for the image check.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQG"
    "AhKmMIQAAAABJRU5ErkJggg=="
)

#: Retry settings that keep the suite fast while still exercising real retries.
FAST_RETRY = {"max_retries": 2, "initial_delay": 0.01, "max_delay": 3.0}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class ConformanceSuite:
    """Checks one model type against the plugin contract (docs/plugins.md)."""

    #: The model type under test, and the distribution whose entry point registers it.
    model_type: ClassVar[str]
    distribution: ClassVar[str]
    #: Top-level modules of the SDK the wrapper uses; discovery must not import them.
    sdk_modules: ClassVar[tuple[str, ...]] = ()
    #: What a call returns: "text", "embedding" or "image".
    output: ClassVar[str] = "text"
    #: Whether ``stream``/``astream`` work (else they must raise UnsupportedOperationError).
    streams: ClassVar[bool] = False
    #: Whether the service reports token usage.
    reports_usage: ClassVar[bool] = True
    #: What ``script_success`` makes the model answer.
    expected_text: ClassVar[str | None] = None
    expected_embedding_count: ClassVar[int | None] = None
    expected_image_urls: ClassVar[list[str] | None] = None
    expected_usage: ClassVar[Usage | None] = None
    #: (method, path) of the route a plain call uses; errors are scripted there.
    routes: ClassVar[list[tuple[str, str]]] = []
    #: (method, path) of the route a stream uses, when it is not ``routes[0]``.
    stream_route: ClassVar[tuple[str, str] | None] = None
    #: The credential the config carries; it must reach the wire and nothing else.
    secret: ClassVar[str] = "mw-conformance-secret-5f1e2d3c4b"
    #: The environment variable the type reads its credential from when the config
    #: has none (``None``: it reads none). Set to a second secret for that check.
    env_secret_var: ClassVar[str | None] = None
    env_secret: ClassVar[str] = "mw-conformance-env-secret-9a8b7c6d5e"
    #: Config keys that add one generation argument, and the ``(name, value)`` that
    #: must then appear in the request (JSON body, at any depth, or the query).
    generation_config: ClassVar[dict[str, Any]] = {}
    generation_on_wire: ClassVar[tuple[str, Any]] = ("temperature", 0.25)
    #: Whether the plugin's own ``pricing_table`` prices the config's model (budgets
    #: then work without a ``pricing`` key); ``False`` for self-hosted services.
    priced_model: ClassVar[bool] = True
    #: What a chat type takes beyond text (each needs ``script_reply``): ``tools`` and
    #: ``tool_choice``; ``structured_model``; image blocks; reasoning in replies.
    supports_tools: ClassVar[bool] = False
    #: With tools: whether ``tool_choice="<tool name>"`` forces that tool (``False``
    #: for a service that cannot, which must then refuse the choice before sending).
    forces_tool_choice: ClassVar[bool] = True
    supports_structured_output: ClassVar[bool] = False
    supports_images: ClassVar[bool] = False
    supports_thinking: ClassVar[bool] = False

    # -- what a plugin implements -----------------------------------------------------
    def config(self, server: FakeServer) -> dict[str, Any]:
        """A complete config for the model type, pointing at ``server.url``."""
        raise NotImplementedError

    def script_success(self, server: FakeServer) -> None:
        """Script ``server`` so that a call (and a stream, if any) succeeds."""
        raise NotImplementedError

    def script_reply(
        self,
        server: FakeServer,
        *,
        text: str = "",
        tool_calls: list[tuple[str, str, dict[str, Any]]] | None = None,
        thinking: str = "",
    ) -> None:
        """Script the reply of a plain call and of a stream (if the type streams) in the
        provider's wire shape: this text, these tool calls ``(id, name, arguments)`` and
        this reasoning. Needed by every ``supports_*`` capability the type declares."""
        raise NotImplementedError(
            "implement script_reply(server, text=..., tool_calls=..., thinking=...) for the"
            " capabilities this suite declares"
        )

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        """An error in the provider's own shape; the generic JSON error by default."""
        return Reply.error(status, headers=headers)

    @property
    def input_text(self) -> str:
        """Text of ``call_args``'s input that must reach the server."""
        return {"embedding": "hello", "image": "a lighthouse at dawn"}.get(self.output, "Hello")

    def call_args(self, model: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments of one call for this output kind."""
        if self.output == "embedding":
            return (["hello", "world"],), {}
        if self.output == "image":
            return ("a lighthouse at dawn",), {}
        return (model.format(Msg("user", "Hello", role="user")),), {}

    # -- fixtures ---------------------------------------------------------------------
    @pytest.fixture
    def server(self) -> Iterator[FakeServer]:
        with FakeServer() as server:
            try:
                yield server
            finally:  # a pool left open warns when it is collected, in some later check
                for model in self.__dict__.pop("_loaded", ()):
                    model.close()

    def full_config(self, server: FakeServer, **overrides: Any) -> dict[str, Any]:
        config = {"retry": dict(FAST_RETRY), "timeout": 5.0, **self.config(server)}
        config.update(overrides)
        return config

    def load(self, server: FakeServer, **overrides: Any) -> Any:
        from modelwire.registry import ModelRegistry

        config = self.full_config(server, **overrides)
        model = ModelRegistry([config]).load_model(config["config_name"])
        self.__dict__.setdefault("_loaded", []).append(model)  # closed after the check
        return model

    def call(self, model: Any) -> ModelResponse:
        args, kwargs = self.call_args(model)
        return model(*args, **kwargs)

    def _error_route(self) -> tuple[str, str]:
        assert self.routes, "set `routes` to the (method, path) a plain call uses"
        return self.routes[0]

    def check_output(self, response: ModelResponse) -> None:
        assert isinstance(response, ModelResponse)
        if self.output == "text":
            assert response.text == self.expected_text
        elif self.output == "embedding":
            assert response.embedding is not None
            assert len(response.embedding) == self.expected_embedding_count
            assert all(isinstance(x, float) for vector in response.embedding for x in vector)
        elif self.output == "image":
            assert response.image_urls == self.expected_image_urls
        else:
            raise AssertionError(f"unknown output kind {self.output!r}")
        assert response.raw is not None

    # -- registration ---------------------------------------------------------------------
    def test_registered_through_entry_point(self) -> None:
        from modelwire.plugins import PluginManager

        points = [
            ep
            for ep in metadata.entry_points(group="modelwire")
            if ep.dist is not None and _normalize(ep.dist.name) == _normalize(self.distribution)
        ]
        assert points, f"{self.distribution} declares no entry point in the 'modelwire' group"
        manager = PluginManager().discover()
        registration = manager.types.get(self.model_type)
        assert registration is not None, f"{self.model_type!r} is not registered"
        assert _normalize(registration.distribution) == _normalize(self.distribution)
        assert all(
            info.ok for info in manager.plugins if info.distribution == registration.distribution
        )

    def test_discovery_imports_no_sdk(self) -> None:
        banned = sorted(set(self.sdk_modules) | set(HEAVY_MODULES))
        code = (
            "import json, sys\n"
            "from modelwire.plugins import PluginManager\n"
            "m = PluginManager().discover()\n"
            f"assert {self.model_type!r} in m.types, sorted(m.types)\n"
            f"banned = {banned!r}\n"
            "print(json.dumps(sorted(b for b in banned if b in sys.modules)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == []

    def test_config_loading_imports_no_sdk(self, server: FakeServer) -> None:
        """Validating configs reads the wrapper's signature: its module must import lazily."""
        banned = sorted(set(self.sdk_modules) | set(HEAVY_MODULES))
        config = json.dumps(self.full_config(server))
        code = (
            "import json, sys\n"
            "from modelwire.registry import ModelRegistry\n"
            f"ModelRegistry([json.loads({config!r})])\n"
            f"banned = {banned!r}\n"
            "print(json.dumps(sorted(b for b in banned if b in sys.modules)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == [], (
            "import the SDK inside the method that builds the client, not at module level"
        )
        assert server.requests == []

    def test_every_module_of_the_plugin_imports_no_sdk(self) -> None:
        """Any module of the plugin's package may be imported without loading its SDK."""
        from modelwire.plugins import plugin_manager

        package = plugin_manager().resolve(self.model_type).target.split(":")[0].split(".")[0]
        banned = sorted(set(self.sdk_modules) | set(HEAVY_MODULES) | {"pydantic", "httpcore"})
        code = (
            "import importlib, json, pkgutil, sys\n"
            f"import {package} as package\n"
            "for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
            "    importlib.import_module(info.name)\n"
            f"banned = {banned!r}\n"
            "loaded = [m for m in sys.modules if any(m == b or m.startswith(b + '.')"
            " for b in banned)]\n"
            "print(json.dumps(sorted(loaded)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == []

    # -- config validation ----------------------------------------------------------------
    def _schema(self) -> dict[str, Any]:
        from modelwire.plugins import plugin_manager
        from modelwire.schema import wrapper_schema

        return wrapper_schema(plugin_manager().resolve(self.model_type).load_class())

    def _first_required(self) -> str:
        required = [name for name, p in self._schema().items() if p.required]
        assert required, "a model type should require at least its model name"
        return required[0]

    def test_config_missing_required_parameter(self, server: FakeServer) -> None:
        from modelwire.registry import ModelRegistry

        key = self._first_required()
        config = self.full_config(server)
        del config[key]
        with pytest.raises(ConfigError) as info:
            ModelRegistry([config])
        assert any(issue.key == key for issue in info.value.issues), str(info.value)
        assert config["config_name"] in str(info.value) and key in str(info.value)
        assert server.requests == []

    def test_config_unknown_parameter_did_you_mean(self, server: FakeServer) -> None:
        from modelwire.registry import ModelRegistry

        key = self._first_required()
        config = self.full_config(server)
        typo = key[:-1]
        config[typo] = config.pop(key)
        with pytest.raises(ConfigError) as info:
            ModelRegistry([config])
        message = str(info.value)
        assert f"did you mean {key!r}" in message, message
        assert server.requests == []

    def test_config_wrong_type(self, server: FakeServer) -> None:
        from modelwire.registry import ModelRegistry

        key = self._first_required()
        config = self.full_config(server)
        config[key] = [1, 2, 3]
        with pytest.raises(ConfigError) as info:
            ModelRegistry([config])
        assert any(issue.key == key for issue in info.value.issues), str(info.value)
        assert "expected" in str(info.value)

    def test_config_errors_reported_together(self, server: FakeServer) -> None:
        from modelwire.registry import ModelRegistry

        first = self.full_config(server, config_name="first")
        second = self.full_config(server, config_name="second", not_a_parameter=1)
        first["timeout"] = "soon"
        with pytest.raises(ConfigError) as info:
            ModelRegistry([first, second])
        names = {issue.config_name for issue in info.value.issues}
        assert {"first", "second"} <= names, str(info.value)

    def test_core_keys_accepted(self, server: FakeServer) -> None:
        model = self.load(
            server, retry={"max_retries": 1, "initial_delay": 0.01, "max_delay": 1.0}, timeout=3
        )
        assert model.timeout == 3.0
        assert model.retry_policy.max_retries == 1

    def test_model_type_is_named(self, server: FakeServer) -> None:
        """The wrapper knows its type, so errors and records name it."""
        from modelwire.plugins import plugin_manager

        registration = plugin_manager().resolve(self.model_type)
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(401, {}))
        model = self.load(server)
        assert model.model_type == registration.model_type != ""
        with pytest.raises(ProviderError) as info:
            self.call(model)
        assert f"({registration.model_type})" in str(info.value), str(info.value)

    def test_input_and_generation_arguments_reach_the_server(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        if not self.generation_config:
            generation_keys = {"generate_args", "json_args", "options", "generation_config"}
            assert not generation_keys & set(self._schema()), (
                "set generation_config (and generation_on_wire) so that the suite can check"
                " that generation arguments are sent"
            )
        model = self.load(server, **self.generation_config)
        self.call(model)
        sent = server.requests_to(path, method)
        assert sent, "the call reached no server"
        assert any(self.input_text in request.text for request in sent), (
            f"the call's input {self.input_text!r} was not sent"
        )
        if self.generation_config:
            name, value = self.generation_on_wire
            assert any(_sends(request, name, value) for request in sent), (
                f"{name}={value!r} from {self.generation_config} was not sent"
            )

    # -- calls --------------------------------------------------------------------------------
    def test_call(self, server: FakeServer) -> None:
        self.script_success(server)
        model = self.load(server)
        response = self.call(model)
        self.check_output(response)
        assert server.requests, "the call reached no server"

    def test_close_then_call_again(self, server: FakeServer) -> None:
        """``close()`` releases pooled connections; the wrapper stays usable."""
        self.script_success(server)
        model = self.load(server)
        self.check_output(self.call(model))
        model.close()
        self.check_output(self.call(model))
        model.close()
        model.close()  # idempotent
        args, kwargs = self.call_args(model)

        async def cycle() -> list[ModelResponse]:
            first = await model.acall(*args, **kwargs)
            await model.aclose()
            second = await model.acall(*args, **kwargs)
            await model.aclose()
            return [first, second]

        for response in asyncio.run(cycle()):
            self.check_output(response)

    def test_acall_agrees_with_call(self, server: FakeServer) -> None:
        self.script_success(server)
        model = self.load(server)
        args, kwargs = self.call_args(model)
        response = _in_a_loop(model, model.acall(*args, **kwargs))
        self.check_output(response)
        assert response.usage == self.call(model).usage

    def test_stream_agrees_with_call(self, server: FakeServer) -> None:
        self.script_success(server)
        model = self.load(server)
        args, kwargs = self.call_args(model)
        if not self.streams:
            with pytest.raises(UnsupportedOperationError):
                model.stream(*args, **kwargs)
            with pytest.raises(UnsupportedOperationError):
                model.astream(*args, **kwargs)
            return
        chunks = list(model.stream(*args, **kwargs))
        assert len(chunks) >= 2, "a stream should arrive in several chunks"
        assert "".join(c.text for c in chunks) == self.expected_text

        async def collect() -> list[Any]:
            return [chunk async for chunk in model.astream(*args, **kwargs)]

        achunks = _in_a_loop(model, collect())
        assert "".join(c.text for c in achunks) == self.expected_text
        if self.reports_usage:
            assert chunks[-1].usage == self.expected_usage
            assert achunks[-1].usage == self.expected_usage
        assert model.usage["calls"] == 2

    def test_usage(self, server: FakeServer) -> None:
        self.script_success(server)
        model = self.load(server)
        response = self.call(model)
        if not self.reports_usage:
            assert response.usage is None or response.usage.total_tokens == 0
            assert model.usage["calls"] == 1
            return
        assert response.usage == self.expected_usage
        booked = model.usage
        assert booked["calls"] == 1
        assert booked["prompt_tokens"] == self.expected_usage.prompt_tokens  # type: ignore[union-attr]
        assert booked["total_tokens"] == self.expected_usage.total_tokens  # type: ignore[union-attr]

    # -- tools, structured output, images, reasoning ------------------------------------------
    def _ask(self, model: Any, *extra: Msg) -> Any:
        if self.output != "text":
            return self.call_args(model)[0][0]
        return model.format(Msg("user", "What is the weather in Paris?", role="user"), *extra)

    def _operations(self) -> list[str]:
        """The call paths the type has: ``call`` and ``acall``, and the streams if it
        streams (else they are refused, which ``test_stream_agrees_with_call`` checks)."""
        return ["call", "acall", *(["stream", "astream"] if self.streams else [])]

    def _respond(self, model: Any, operation: str, *args: Any, **kwargs: Any) -> ModelResponse:
        """One ``call``, ``acall``, ``stream`` or ``astream`` as the ``ModelResponse`` it
        gives (a stream's chunks collected with ``modelwire.collect``); a stream's last
        chunk must carry the tool calls, as ``docs/plugins.md`` says."""
        from modelwire.blocks import collect

        if operation == "call":
            return model(*args, **kwargs)
        if operation == "acall":
            return _in_a_loop(model, model.acall(*args, **kwargs))
        if operation == "stream":
            chunks = list(model.stream(*args, **kwargs))
        else:

            async def gather() -> list[Any]:
                return [chunk async for chunk in model.astream(*args, **kwargs)]

            chunks = _in_a_loop(model, gather())
        response = collect(chunks)
        if response.tool_calls:
            assert chunks[-1].tool_calls == response.tool_calls, (
                f"the last chunk of a {operation} carries {chunks[-1].tool_calls!r}, not the"
                f" stream's tool calls {response.tool_calls!r}"
            )
        return response

    def test_tools_reach_the_server_or_are_refused(self, server: FakeServer) -> None:
        model = self.load(server)
        if not self.supports_tools:
            self.script_success(server)
            with pytest.raises((BadRequestError, ConfigError)):
                model(self._ask(model), tools=[get_weather])
            assert not server.requests, "a call with tools the type cannot take was sent"
            return
        self.script_reply(server, text="It is sunny.")
        assert model(self._ask(model), tools=[get_weather]).text == "It is sunny."
        assert model(self._ask(model), tools=[get_weather], tool_choice="auto").text
        sent = [request.text for request in server.requests]
        assert len(sent) == 2, "each call sends one request"
        for body in sent:
            assert "get_weather" in body and "city" in body, (
                "the tool's name and parameters were not sent"
            )

    def test_a_tool_that_cannot_be_sent_is_refused_before_sending(self, server: FakeServer) -> None:
        if not self.supports_tools:
            pytest.skip("the type takes no tools (test_tools_reach_the_server_or_are_refused)")
        self.script_reply(server, text="It is sunny.")
        model = self.load(server)
        bad = (
            {"tools": [42]},
            {"tools": [get_weather, get_weather]},
            {"tools": [get_weather], "tool_choice": "no_such_tool"},
        )
        operations = ["call", "acall", *(["stream", "astream"] if self.streams else [])]
        for kwargs in bad:
            for operation in operations:
                with pytest.raises(BadRequestError):
                    self._run_with(model, operation, (self._ask(model),), kwargs)
        assert not server.requests, "a call with tools that cannot be sent was sent"

    def test_a_tool_call_is_a_tool_use_block(self, server: FakeServer) -> None:
        if not self.supports_tools:
            pytest.skip("the type takes no tools (test_tools_reach_the_server_or_are_refused)")
        calls = [("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_time", {})]
        self.script_reply(server, tool_calls=calls)
        model = self.load(server)
        tools = [get_weather, get_time]
        for operation in self._operations():
            response = self._respond(model, operation, self._ask(model), tools=tools)
            got = [(block["name"], block["input"]) for block in response.tool_calls or ()]
            assert got == [("get_weather", {"city": "Paris"}), ("get_time", {})], (
                f"the tool calls of a {operation} read as {response.tool_calls!r}"
            )
            ids = [block["id"] for block in response.tool_calls or ()]
            assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 2, (
                f"the tool calls of a {operation} have the ids {ids!r}"
            )
            assert [b for b in response.content or () if b["type"] == "tool_use"] == (
                response.tool_calls
            ), f"the content of a {operation} is {response.content!r}"

    def test_tool_choice_forces_the_named_tool(self, server: FakeServer) -> None:
        """``tool_choice="<tool name>"`` reaches the server on every call path: the
        request names the tool once more than the same request with ``"auto"`` (in
        OpenAI's ``tool_choice``, Gemini's ``allowedFunctionNames``...). A type whose
        service cannot force a tool (``forces_tool_choice = False``: ``ollama_chat``)
        refuses the choice with BadRequestError before sending, on every path."""
        if not self.supports_tools:
            pytest.skip("the type takes no tools (test_tools_reach_the_server_or_are_refused)")
        self.script_reply(server, tool_calls=[("call_1", "get_weather", {"city": "Paris"})])
        model = self.load(server)
        tools = [get_weather, get_time]
        refused: dict[str, bool] = {}
        for operation in self._operations():
            named: dict[str, int] = {}
            for choice in ("auto", "get_weather"):
                before = len(server.requests)
                try:
                    response = self._respond(
                        model, operation, self._ask(model), tools=tools, tool_choice=choice
                    )
                except BadRequestError:
                    if choice == "auto":
                        raise
                    assert len(server.requests) == before, (
                        f"a {operation} whose tool_choice was refused was sent"
                    )
                    refused[operation] = True
                    continue
                sent = server.requests[before:]
                assert len(sent) == 1, f"a {operation} sent {len(sent)} requests"
                named[choice] = sum(value == "get_weather" for value, _ in _walk(sent[0].json()))
                got = [block["name"] for block in response.tool_calls or ()]
                assert got == ["get_weather"], (
                    f"the tool calls of a {operation} with tool_choice={choice!r} read as"
                    f" {response.tool_calls!r}"
                )
            if operation in refused:
                continue
            refused[operation] = False
            assert named["get_weather"] > named["auto"], (
                f"tool_choice='get_weather' did not reach the server on a {operation}: its"
                " request names the tool no more often than with tool_choice='auto'"
            )
        expected = not self.forces_tool_choice
        wrong = sorted(operation for operation, was in refused.items() if was != expected)
        assert not wrong, (
            f"forcing a tool was {'sent' if expected else 'refused'} on {', '.join(wrong)},"
            f" though the suite declares forces_tool_choice={self.forces_tool_choice}"
        )

    def test_tool_results_are_sent_back(self, server: FakeServer) -> None:
        """The second request carries the assistant's tool call (its name and arguments)
        and, after it, the tool's result tied to that call: by the call's id where the
        service gives calls ids (it reached the response: OpenAI's ``tool_call_id``), else
        by the function's name (Gemini and Ollama, whose calls the plugin numbers)."""
        if not self.supports_tools:
            pytest.skip("the type takes no tools (test_tools_reach_the_server_or_are_refused)")
        from modelwire.blocks import tool_result

        scripted_id, arguments = "call_1", {"city": "Paris"}
        self.script_reply(server, tool_calls=[(scripted_id, "get_weather", arguments)])
        model = self.load(server)
        first = model(self._ask(model), tools=[get_weather])
        (call,) = first.tool_calls or [None]
        assert call is not None, "the reply's tool call was not read"
        results = Msg("tools", [tool_result(call, "21 degrees in Paris")], role="tool")
        self.script_reply(server, text="It is 21 degrees.")
        final = model(self._ask(model, first.to_msg(), results), tools=[get_weather])
        assert final.text == "It is 21 degrees."
        body = server.requests[-1].json()
        nodes = list(_walk(body))
        sent_calls = [
            (index, owners)
            for index, (value, owners) in enumerate(nodes)
            if isinstance(value, dict) and _is_call_of(value, "get_weather", arguments)
        ]
        sent_results = [
            (index, owners)
            for index, (value, owners) in enumerate(nodes)
            if isinstance(value, str) and "21 degrees in Paris" in value
        ]
        assert sent_results, "the tool's result was not sent back"
        assert sent_calls, (
            "the assistant's tool call (get_weather with its arguments) was not sent back"
        )
        key, by = (call["id"], "id") if call["id"] == scripted_id else ("get_weather", "name")
        assert any(_holds(owners, key) for _, owners in sent_calls), (
            f"the assistant's tool call was sent without its {by} {key!r}"
        )
        assert any(_holds(owners, key) for _, owners in sent_results), (
            f"the tool's result was sent without its call's {by} {key!r}: the service"
            " cannot tell which call it answers"
        )
        assert min(index for index, _ in sent_calls) < max(i for i, _ in sent_results), (
            "the tool's result was sent before the call it answers"
        )

    def test_structured_output_is_validated(self, server: FakeServer) -> None:
        """On every call path the schema is sent, a reply in it is ``parsed`` and a reply
        off it raises ResponseParseError with its validation errors."""
        model = self.load(server)
        if not self.supports_structured_output:
            self.script_success(server)
            for operation in self._operations():
                with pytest.raises((BadRequestError, ConfigError)):
                    self._run_with(
                        model, operation, (self._ask(model),), {"structured_model": CITY_SCHEMA}
                    )
            assert not server.requests, "a structured call the type cannot take was sent"
            return
        self.script_reply(server, text='{"city": "Paris", "population": 2100000}')
        for operation in self._operations():
            before = len(server.requests)
            response = self._respond(
                model, operation, self._ask(model), structured_model=CITY_SCHEMA
            )
            assert response.parsed == {"city": "Paris", "population": 2100000}, (
                f"the parsed reply of a {operation} is {response.parsed!r}"
            )
            assert any("population" in r.text for r in server.requests[before:]), (
                f"the schema was not sent on a {operation}"
            )
        self.script_reply(server, text='{"city": 5}')
        for operation in self._operations():
            try:
                self._respond(model, operation, self._ask(model), structured_model=CITY_SCHEMA)
            except ResponseParseError as exc:
                assert getattr(exc, "validation_errors", None), (
                    f"a reply off the schema must raise with its validation errors: a"
                    f" {operation} raised {exc!r}"
                )
            else:
                pytest.fail(f"a reply off the schema was taken as parsed on a {operation}")

    def test_image_blocks_reach_the_server(self, server: FakeServer) -> None:
        if not self.supports_images:
            pytest.skip("declared: the type takes no images")
        self.script_reply(server, text="A red dot.")
        model = self.load(server)
        image = {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}
        question = Msg(
            "user",
            [{"type": "text", "text": "What is this?"}, {"type": "image", "source": image}],
            role="user",
        )
        assert model(model.format(question)).text == "A red dot."
        strings = [
            value for value, _ in _walk(server.requests[-1].json()) if isinstance(value, str)
        ]
        assert any("What is this?" in value for value in strings), "the text block was not sent"
        assert any(PNG_BASE64 in value for value in strings), "the image block was not sent"
        assert not any(PNG_BASE64 in value and "What is this?" in value for value in strings), (
            "the image was sent inside the prompt's text, not as an image"
        )

    def test_thinking_is_read(self, server: FakeServer) -> None:
        if not self.supports_thinking:
            pytest.skip("declared: the type reads no reasoning")
        self.script_reply(server, text="Sunny.", thinking="Paris is in France.")
        model = self.load(server)
        for how in self._operations():
            response = self._respond(model, how, self._ask(model))
            assert response.thinking == "Paris is in France.", (
                f"the reasoning of a {how} read as {response.thinking!r}"
            )
            assert response.text == "Sunny.", f"the text of a {how} read as {response.text!r}"
            assert [b["type"] for b in response.content or ()] == ["thinking", "text"], (
                f"the content of a {how} is {response.content!r}"
            )

    # -- errors -------------------------------------------------------------------------------
    def test_401_is_authentication_error_not_retried(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(401, {}))
        model = self.load(server)
        with pytest.raises(AuthenticationError) as info:
            self.call(model)
        error = info.value
        assert error.status == 401
        assert error.config_name == model.config_name
        assert error.model_type == model.model_type
        assert len(server.requests_to(path, method)) == 1
        assert model.usage["errors"] == 1

    def test_429_honours_retry_after(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(429, {"Retry-After": "1"}))
        model = self.load(server)
        started = time.perf_counter()
        self.check_output(self.call(model))
        assert time.perf_counter() - started >= 0.95
        assert len(server.requests_to(path, method)) == 2

    def test_429_exhausted_carries_retry_after(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(429, {"Retry-After": "7"}))
        model = self.load(server, retry={"max_retries": 0})
        with pytest.raises(RateLimitError) as info:
            self.call(model)
        assert info.value.retry_after == 7.0
        assert info.value.status == 429

    def test_500_is_retried(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(500, {}))
        model = self.load(server)
        self.check_output(self.call(model))
        assert len(server.requests_to(path, method)) == 2

    def test_503_exhausted(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, *[self.error_reply(503, {})] * 3)
        model = self.load(server, retry={"max_retries": 1, "initial_delay": 0.01})
        with pytest.raises(ServiceUnavailableError) as info:
            self.call(model)
        assert info.value.status == 503
        assert len(server.requests_to(path, method)) == 2

    def test_timeout(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, Reply.json({"late": True}, delay=3.0))
        model = self.load(server, timeout=0.5)
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError):
            self.call(model)
        assert time.perf_counter() - started < 2.5
        server.once(method, path, Reply.json({"late": True}, delay=3.0))
        args, kwargs = self.call_args(model)
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError):
            _in_a_loop(model, model.acall(*args, **kwargs))
        assert time.perf_counter() - started < 2.5

    def _run(self, model: Any, operation: str) -> Any:
        args, kwargs = self.call_args(model)
        return self._run_with(model, operation, args, kwargs)

    def _run_with(
        self, model: Any, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One ``call``, ``acall``, ``stream`` or ``astream`` (a stream's texts)."""
        if operation == "call":
            return model(*args, **kwargs)
        if operation == "acall":
            return _in_a_loop(model, model.acall(*args, **kwargs))
        received: list[str] = []
        _consume_stream(model, args, kwargs, received, use_async=operation == "astream")
        return received

    def _route_of(self, operation: str) -> tuple[str, str]:
        return self._stream_route() if "stream" in operation else self._error_route()

    @pytest.mark.parametrize("operation", ["call", "acall", "stream", "astream"])
    def test_timeout_is_the_deadline_of_an_attempt(
        self, server: FakeServer, operation: str
    ) -> None:
        """A server sending one byte every 50 ms, headers included, never lets a single read
        wait long: ``timeout`` must still end the attempt, as a ModelTimeoutError, once."""
        if "stream" in operation and not self.streams:
            return
        self.script_success(server)
        method, path = self._route_of(operation)
        model = self.load(server, timeout=0.6)
        server.slow_next(method, path, drip=0.05)
        before = len(server.requests_to(path, method))
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError, match="timeout"):
            self._run(model, operation)
        assert time.perf_counter() - started < 2.5, "the attempt outlived its timeout"
        assert len(server.requests_to(path, method)) - before == 1, "a timeout is not retried"

    @pytest.mark.parametrize("use_async", [False, True], ids=["stream", "astream"])
    def test_stream_idle_timeout_bounds_the_wait_for_each_chunk(
        self, server: FakeServer, use_async: bool
    ) -> None:
        """A stream that stalls between events ends at ``stream_idle_timeout``, with a
        ModelTimeoutError that names it, long before the first-chunk ``timeout``."""
        if not self.streams:
            return
        self.script_success(server)
        method, path = self._stream_route()
        model = self.load(server, timeout=8.0, stream_idle_timeout=0.4)
        server.slow_next(method, path, interval=1.2)
        args, kwargs = self.call_args(model)
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError, match="stream_idle_timeout"):
            _consume_stream(model, args, kwargs, [], use_async=use_async)
        assert time.perf_counter() - started < 4.0

    @pytest.mark.parametrize("use_async", [False, True], ids=["stream", "astream"])
    def test_stream_idle_timeout_longer_than_timeout_is_kept(
        self, server: FakeServer, use_async: bool
    ) -> None:
        """Events 0.6 s apart after the first two, with ``timeout`` 0.4 and
        ``stream_idle_timeout`` 3: the stream completes (an SDK whose own per-read
        timeout is ``timeout`` would cut it)."""
        if not self.streams:
            return
        self.script_success(server)
        method, path = self._stream_route()
        model = self.load(server, timeout=0.4, stream_idle_timeout=3.0)
        server.slow_next(method, path, interval=0.6, after=2)
        assert "".join(self._stream_all(model, use_async)) == self.expected_text

    @pytest.mark.parametrize("operation", ["call", "acall", "stream", "astream"])
    def test_reply_larger_than_max_response_bytes_is_refused(
        self, server: FakeServer, operation: str
    ) -> None:
        if "stream" in operation and not self.streams:
            return
        self.script_success(server)
        method, path = self._route_of(operation)
        model = self.load(server, max_response_bytes=16)
        before = len(server.requests_to(path, method))
        with pytest.raises(ResponseParseError, match="max_response_bytes=16"):
            self._run(model, operation)
        assert len(server.requests_to(path, method)) - before == 1, "not retried"
        self.check_output(self.call(self.load(server)))  # the default cap lets it through

    @pytest.mark.parametrize("operation", ["call", "acall", "stream", "astream"])
    def test_redirect_to_another_origin_is_not_followed(
        self, server: FakeServer, operation: str
    ) -> None:
        """A 307 to another host would take the credentials with it: it is refused with a
        ProviderError naming where it pointed, and the other host hears nothing."""
        if "stream" in operation and not self.streams:
            return
        self.script_success(server)
        method, path = self._route_of(operation)
        with FakeServer() as elsewhere:
            elsewhere.route(method, path, Reply.json({"stolen": True}))
            server.once(method, path, Reply.empty(307, headers={"Location": elsewhere.url + path}))
            with pytest.raises(ProviderError, match="another origin") as info:
                self._run(self.load(server), operation)
            assert elsewhere.url in str(info.value)
            assert elsewhere.requests == [], "a request (and its credentials) went elsewhere"

    def test_connection_refused_is_service_unavailable(self, server: FakeServer) -> None:
        model = self.load(server, retry={"max_retries": 1, "initial_delay": 0.01})
        server.close()
        with pytest.raises(ServiceUnavailableError):
            self.call(model)

    # -- fault injection ----------------------------------------------------------------------
    def test_async_errors_are_mapped_and_retried(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(429, {"Retry-After": "0.2"}))
        server.once(method, path, self.error_reply(500, {}))
        model = self.load(server)
        args, kwargs = self.call_args(model)
        self.check_output(_in_a_loop(model, model.acall(*args, **kwargs)))
        assert len(server.requests_to(path, method)) == 3
        server.once(method, path, self.error_reply(401, {}))
        with pytest.raises(AuthenticationError):
            _in_a_loop(model, model.acall(*args, **kwargs))

    def test_429_without_retry_after_backs_off(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(429, {}), self.error_reply(429, {}))
        model = self.load(server)
        self.check_output(self.call(model))
        assert len(server.requests_to(path, method)) == 3

    def test_html_error_page_is_retried(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, Reply.html("<html><body><h1>502 Bad Gateway</h1></body></html>"))
        model = self.load(server)
        self.check_output(self.call(model))
        server.route(method, path, Reply.html("<html><h1>503 Service Unavailable</h1></html>", 503))
        with pytest.raises(ServiceUnavailableError) as info:
            self.call(model)
        assert info.value.status == 503

    def test_connection_reset_is_retried(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, Reply.connection_reset())
        model = self.load(server)
        self.check_output(self.call(model))
        assert len(server.requests_to(path, method)) == 2

    def test_reply_cut_mid_body_is_retried(self, server: FakeServer) -> None:
        self.script_success(server)
        method, path = self._error_route()
        server.cut_next(method, path)
        model = self.load(server)
        self.check_output(self.call(model))
        assert len(server.requests_to(path, method)) == 2

    @pytest.mark.parametrize(
        "reply",
        [
            Reply.text("{not json", content_type="application/json"),
            Reply.empty(200, headers={"Content-Type": "application/json"}),
            Reply.html("<html>maintenance</html>", 200),
            Reply.text("[" * 50_000 + "]" * 50_000, content_type="application/json"),
            Reply.text('{"a": ' * 30_000 + "1" + "}" * 30_000, content_type="application/json"),
            Reply.text("[1e400, -1e400]", content_type="application/json"),
            Reply.text('"just a string"', content_type="application/json"),
            Reply.text("null", content_type="application/json"),
            Reply(200, {"Content-Type": "application/json"}, b'{"text": "\xff\xfe broken"}'),
        ],
        ids=[
            "malformed-json",
            "empty-body",
            "html-200",
            "nested-50000-deep",
            "objects-30000-deep",
            "numbers-beyond-float",
            "a-json-string",
            "json-null",
            "invalid-utf8",
        ],
    )
    @pytest.mark.parametrize("use_async", [False, True], ids=["call", "acall"])
    def test_unparseable_reply_is_response_parse_error(
        self, server: FakeServer, reply: Reply, use_async: bool
    ) -> None:
        """Whatever a hostile server answers with a 200 is a ResponseParseError, sent once:
        never a RecursionError, TypeError or UnicodeDecodeError, never a retry."""
        self.script_success(server)
        method, path = self._error_route()
        server.route(method, path, reply)
        model = self.load(server)
        with pytest.raises(ResponseParseError) as info:
            self._run(model, "acall" if use_async else "call")
        assert info.value.config_name == model.config_name
        assert len(server.requests_to(path, method)) == 1

    def test_stream_cut_half_way_keeps_partial_text(self, server: FakeServer) -> None:
        if not self.streams:
            return  # covered by test_stream_agrees_with_call: streaming is refused cleanly
        self.script_success(server)
        method, path = self.stream_route or self._error_route()
        model = self.load(server)
        args, kwargs = self.call_args(model)
        for use_async in (False, True):
            server.cut_next(method, path)
            received: list[str] = []
            with pytest.raises(ProviderError) as info:
                _consume_stream(model, args, kwargs, received, use_async=use_async)
            text = "".join(received)
            assert (info.value.partial_text or "") == text
            assert text != self.expected_text
        assert model.usage["errors"] == 2

    def test_secret_from_the_environment_never_leaks(
        self,
        server: FakeServer,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A credential read from the environment is hidden like one from the config,
        even when the server echoes it back in an error."""
        if self.env_secret_var is None:
            return  # the type reads no credential from the environment
        from modelwire import records

        config = _without_value(self.full_config(server), self.secret)
        method, path = self._error_route()
        echo = self.env_secret
        server.route(method, path, self.error_reply(401, {}))
        server.once(
            method,
            path,
            Reply.json({"error": {"message": f"bad key {echo}", "code": 401}}, 401),
        )
        monkeypatch.setenv(self.env_secret_var, self.env_secret)
        path_records = tmp_path / "env.jsonl"
        caplog.set_level(logging.DEBUG)
        records.configure(path_records)
        try:
            from modelwire.registry import ModelRegistry

            registry = ModelRegistry([config])
            model = registry.load_model(config["config_name"])
            with pytest.raises(ProviderError) as info:
                self.call(model)
            logging.getLogger("conformance").exception("logged", exc_info=info.value)
        finally:
            records.configure(None)
        assert any(_carries(request, self.env_secret) for request in server.requests), (
            f"the key in {self.env_secret_var} never reached the server"
        )
        shown = [
            repr(model),
            str(info.value),
            repr(info.value),
            "".join(traceback.format_exception(info.value)),
            path_records.read_text(),
            caplog.text,
        ]
        for text in shown:
            assert self.env_secret not in text

    # -- the stream route: the same error, retry and timeout matrix ------------------------
    def _stream_route(self) -> tuple[str, str]:
        return self.stream_route or self._error_route()

    def _stream_all(self, model: Any, use_async: bool) -> list[str]:
        args, kwargs = self.call_args(model)
        received: list[str] = []
        _consume_stream(model, args, kwargs, received, use_async=use_async)
        return received

    @pytest.mark.parametrize("use_async", [False, True], ids=["stream", "astream"])
    def test_stream_errors_retries_and_timeout(self, server: FakeServer, use_async: bool) -> None:
        if not self.streams:
            return  # covered by test_stream_agrees_with_call: streaming is refused cleanly
        self.script_success(server)
        method, path = self._stream_route()
        model = self.load(server)

        def sent() -> int:
            return len(server.requests_to(path, method))

        server.once(method, path, self.error_reply(401, {}))
        before = sent()
        with pytest.raises(AuthenticationError) as auth:
            self._stream_all(model, use_async)
        assert auth.value.status == 401 and sent() - before == 1

        server.once(method, path, self.error_reply(429, {"Retry-After": "0.2"}))
        server.once(method, path, self.error_reply(500, {}))
        before = sent()
        assert "".join(self._stream_all(model, use_async)) == self.expected_text
        assert sent() - before == 3, "a 429 and a 500 before the first chunk are retried"

        server.once(method, path, *[self.error_reply(503, {})] * 3)
        strict = self.load(server, retry={"max_retries": 1, "initial_delay": 0.01})
        before = sent()
        with pytest.raises(ServiceUnavailableError):
            self._stream_all(strict, use_async)
        assert sent() - before == 2

        server.once(method, path, Reply.json({"late": True}, delay=3.0))
        slow = self.load(server, timeout=0.5)
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError):
            self._stream_all(slow, use_async)
        assert time.perf_counter() - started < 2.5

    @pytest.mark.parametrize("use_async", [False, True], ids=["stream", "astream"])
    def test_stream_ended_without_its_terminator_is_an_error(
        self, server: FakeServer, use_async: bool
    ) -> None:
        """A stream whose body ends cleanly half-way is not taken as complete."""
        if not self.streams:
            return  # covered by test_stream_agrees_with_call
        self.script_success(server)
        method, path = self._stream_route()
        model = self.load(server)
        server.end_next(method, path)
        received: list[str] = []
        args, kwargs = self.call_args(model)
        with pytest.raises(ProviderError) as info:
            _consume_stream(model, args, kwargs, received, use_async=use_async)
        assert "".join(received) != self.expected_text
        assert (info.value.partial_text or "") == "".join(received)
        assert model.usage["errors"] == 1

    # -- connections --------------------------------------------------------------------
    def test_close_closes_connections(self, server: FakeServer) -> None:
        self.script_success(server)
        model = self.load(server)
        self.call(model)
        model.close()
        assert server.wait_for_connections(0) == 0, "close() left connections open"
        args, kwargs = self.call_args(model)

        async def cycle() -> int:
            await model.acall(*args, **kwargs)
            await model.aclose()
            return server.wait_for_connections(0)

        assert asyncio.run(cycle()) == 0, "aclose() left connections open"

    def test_closes_what_it_opens(self, server: FakeServer) -> None:
        """No ResourceWarning from a wrapper that is used and closed."""
        self.script_success(server)
        gc.collect()  # what earlier tests left behind is theirs, not this wrapper's
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            model = self.load(server)
            args, kwargs = self.call_args(model)
            self.call(model)
            if self.streams:
                list(model.stream(*args, **kwargs))

            async def cycle(wrapper: Any) -> None:
                await wrapper.acall(*args, **kwargs)
                await wrapper.aclose()

            asyncio.run(cycle(model))
            model.close()
            del model
            gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == [], leaks

    # -- budgets and records under concurrency ------------------------------------------------
    def _budget_setup(self, server: FakeServer) -> tuple[dict[str, Any], float] | None:
        """Config overrides that price the model, and one call's real cost."""
        if not self.reports_usage:
            return None  # no token usage, so no token price: budgets need a priced usage
        usage = self.expected_usage
        assert usage is not None, "set expected_usage"
        self.script_success(server)
        price = self.load(server).pricing
        if self.priced_model:
            assert price is not None, (
                "the plugin's pricing_table has no price for the config's model"
                " (set priced_model = False for a self-hosted service)"
            )
            overrides: dict[str, Any] = {}
        else:
            from modelwire.spend import Pricing

            price = Pricing(1.0, 2.0)
            overrides = {"pricing": {"prompt": 1.0, "completion": 2.0}}
        cost = price.cost(usage)
        assert cost > 0
        return overrides, cost

    def _worst_case(self, model: Any) -> float:
        args, kwargs = self.call_args(model)
        worst = model.worst_case_cost(model._request(*args, **kwargs))
        assert worst > 0, "a priced call must reserve something before it is sent"
        return worst

    def test_budget_below_one_calls_worst_case_sends_nothing(self, server: FakeServer) -> None:
        """A budget smaller than what one call may cost refuses it before sending."""
        setup = self._budget_setup(server)
        if setup is None:
            return
        overrides, _ = setup
        method, path = self._error_route()
        worst = self._worst_case(self.load(server, **overrides))
        model = self.load(server, budget=worst * 0.99, **overrides)
        with pytest.raises(BudgetExceededError, match="not sent"):
            self.call(model)
        assert server.requests_to(path, method) == []
        assert model.usage["cost_usd"] == 0

    def test_budget_is_never_overspent_under_concurrency(self, server: FakeServer) -> None:
        """64 threads, then 256 tasks: each call reserves its worst case and settles to its
        real cost, so exactly the calls that fit are sent and the spend stays in budget."""
        setup = self._budget_setup(server)
        if setup is None:
            return
        overrides, cost = setup
        method, path = self._error_route()
        worst = self._worst_case(self.load(server, **overrides))
        assert worst >= cost, (
            f"a call reserved ${worst:.9f} but cost ${cost:.9f}: the worst case must bound"
            " the real cost (see ModelWrapper._token_bounds)"
        )
        for admitted, run in ((5, "threads"), (7, "tasks")):
            # the last admitted call fits with its worst case; one more would not
            budget = cost * (admitted - 1) + worst + cost / 2
            model = self.load(server, budget=budget, **overrides)
            before = len(server.requests_to(path, method))
            args, kwargs = self.call_args(model)
            if run == "threads":
                results = _concurrent_threads(model, args, kwargs, 64)
            else:
                results = asyncio.run(_concurrent_tasks(model, args, kwargs, 256))
            refused = [r for r in results if isinstance(r, BudgetExceededError)]
            unexpected = [r for r in results if isinstance(r, BaseException) and r not in refused]
            assert unexpected == []
            assert len(results) - len(refused) == admitted, run
            assert len(server.requests_to(path, method)) - before == admitted, run
            assert model.usage["cost_usd"] == pytest.approx(cost * admitted)
            assert model.usage["cost_usd"] <= budget
            assert model.tracker.reserved == 0

    def test_abandoned_stream_is_charged_its_reservation(self, server: FakeServer) -> None:
        """A stream closed after its first chunk never got its usage: it is charged what
        it reserved, and a budgeted config stays usable (nothing is left reserved)."""
        if not self.streams:
            return
        setup = self._budget_setup(server)
        if setup is None:
            return
        overrides, _ = setup
        worst = self._worst_case(self.load(server, **overrides))
        model = self.load(server, budget=worst * 3.5, **overrides)
        args, kwargs = self.call_args(model)
        chunks = model.stream(*args, **kwargs)
        next(chunks)
        chunks.close()
        assert model.usage["cost_usd"] == pytest.approx(worst)
        assert model.tracker.reserved == 0
        self.check_output(self.call(model))

    def test_records_complete_under_threads(self, server: FakeServer, tmp_path: Path) -> None:
        from modelwire import records

        self.script_success(server)
        path_records = tmp_path / "threads.jsonl"
        records.configure(path_records)
        try:
            model = self.load(server)
            args, kwargs = self.call_args(model)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: model(*args, **kwargs), range(40)))
        finally:
            records.configure(None)
        text = path_records.read_text()
        lines = text.splitlines()
        assert len(lines) == 40
        assert len({json.loads(line)["id"] for line in lines}) == 40
        assert self.secret not in text

    # -- secrets ------------------------------------------------------------------------------
    def test_no_secret_in_repr_errors_records_or_logs(
        self, server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        from modelwire import records
        from modelwire.registry import ModelRegistry

        self.script_success(server)
        method, path = self._error_route()
        server.once(method, path, self.error_reply(401, {}))
        config = self.full_config(server)
        path_records = tmp_path / "records.jsonl"
        caplog.set_level(logging.DEBUG)
        records.configure(path_records)
        try:
            registry = ModelRegistry([config])
            model = registry.load_model(config["config_name"])
            with pytest.raises(AuthenticationError) as info:
                self.call(model)
            self.call(model)
        finally:
            records.configure(None)
        assert any(_carries(request, self.secret) for request in server.requests), (
            "the secret never reached the server: the test cannot tell whether it is hidden"
        )
        shown = [
            repr(model),
            str(model),
            repr(registry.config(config["config_name"])),
            str(info.value),
            repr(info.value),
            "".join(traceback.format_exception(info.value)),
            path_records.read_text(),
            caplog.text,
        ]
        for text in shown:
            assert self.secret not in text
        lines = path_records.read_text().splitlines()
        assert len(lines) == 2 and all(json.loads(line) for line in lines)

    @pytest.mark.parametrize("status", [400, 500])
    @pytest.mark.parametrize(
        "body",
        [
            "echo",
            "deep",
            "odd-codes",
            "invalid-utf8",
            "html",
        ],
    )
    @pytest.mark.parametrize("operation", ["call", "acall", "stream", "astream"])
    def test_hostile_error_replies_are_typed_and_leak_nothing(
        self, server: FakeServer, tmp_path: Path, operation: str, body: str, status: int
    ) -> None:
        """Error replies a hostile server sends (its own request headers echoed back, a
        body nested 50,000 deep, codes that are numbers, lists or booleans, bytes that
        are not UTF-8, an HTML page) end as a documented ProviderError, in time, with
        no secret in any text, the budget released and the record written."""
        if "stream" in operation and not self.streams:
            return
        from modelwire import records

        self.script_success(server)
        method, path = self._route_of(operation)

        def hostile(request: Request) -> Reply:
            headers = {"Content-Type": "application/json"}
            if body == "echo":
                return Reply.json({"error": {"message": dict(request.headers)}}, status)
            if body == "deep":
                return Reply(status, headers, b'{"error": ' * 50_000 + b"1" + b"}" * 50_000)
            if body == "odd-codes":
                error = {"code": [1, True], "message": 3.5, "status": False}
                return Reply.json({"error": error, "code": 7, "message": None}, status)
            if body == "invalid-utf8":
                return Reply(status, headers, b'{"error": {"message": "\xff\xfe\xfd"}}')
            echoed = "".join(f"<p>{k}: {v}</p>" for k, v in request.headers.items())
            return Reply.html(f"<html><body>{echoed}</body></html>", status)

        server.route(method, path, hostile)
        model = self.load(server, retry={"max_retries": 1, "initial_delay": 0.01})
        path_records = tmp_path / "records.jsonl"
        records.configure(path_records)
        started = time.perf_counter()
        try:
            with pytest.raises(ProviderError) as info:
                self._run(model, operation)
        finally:
            records.configure(None)
        assert time.perf_counter() - started < 10
        error = info.value
        # typed by its status where the SDK could still read one (not always, for bytes
        # that are not UTF-8)
        assert error.status in (status, None)
        assert any(_carries(request, self.secret) for request in server.requests)
        for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
            assert self.secret not in text
        assert self.secret not in path_records.read_text()
        assert model.tracker.reserved == 0 and model.tracker._in_flight == 0
        (line,) = path_records.read_text().splitlines()
        assert json.loads(line)["status"] == "error"


def _outcome(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return model(*args, **kwargs)
    except Exception as exc:
        return exc


def _concurrent_threads(
    model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], count: int
) -> list[Any]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: _outcome(model, args, kwargs), range(count)))


async def _concurrent_tasks(
    model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], count: int
) -> list[Any]:
    calls = (model.acall(*args, **kwargs) for _ in range(count))
    return await asyncio.gather(*calls, return_exceptions=True)


_T = TypeVar("_T")


def _in_a_loop(model: Any, coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` in an event loop of its own, closing ``model``'s clients of
    that loop before it ends, as users must (``await model.aclose()``): a pool left in
    a closed loop warns of its unclosed connections whenever it is collected, which
    would be blamed on whichever test runs then."""

    async def run() -> _T:
        try:
            return await coroutine
        finally:
            await model.aclose()

    return asyncio.run(run())


def _consume_stream(
    model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], into: list[str], *, use_async: bool
) -> None:
    if not use_async:
        for chunk in model.stream(*args, **kwargs):
            into.append(chunk.text)
        return

    async def consume() -> None:
        async for chunk in model.astream(*args, **kwargs):
            into.append(chunk.text)

    _in_a_loop(model, consume())


def _carries(request: Request, secret: str) -> bool:
    return (
        secret in request.text
        or any(secret in value for value in request.headers.values())
        or any(secret in value for values in request.query.values() for value in values)
    )


def _without_value(value: Any, secret: str) -> Any:
    """A copy of a config without the keys that hold ``secret``."""
    if isinstance(value, dict):
        return {k: _without_value(v, secret) for k, v in value.items() if v != secret}
    if isinstance(value, list):
        return [_without_value(v, secret) for v in value if v != secret]
    return value


def _sends(request: Request, name: str, value: Any) -> bool:
    """Whether ``name`` = ``value`` is in the request's JSON body, at any depth, or query."""
    if str(value) in request.query.get(name, []):
        return True
    try:
        body = request.json()
    except ValueError:
        return False
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if name in item and item[name] == value:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


#: A JSON value and the objects holding it, outermost (the request body) first.
_Node = tuple[Any, tuple[dict[str, Any], ...]]


def _walk(value: Any, owners: tuple[dict[str, Any], ...] = ()) -> Iterator[_Node]:
    """Every value of a JSON document in document order, with the objects holding it
    (itself included when it is one), outermost first."""
    if isinstance(value, dict):
        owners = (*owners, value)
        yield value, owners
        for item in value.values():
            yield from _walk(item, owners)
    elif isinstance(value, list):
        yield value, owners
        for item in value:
            yield from _walk(item, owners)
    else:
        yield value, owners


def _holds(owners: tuple[dict[str, Any], ...], key: str) -> bool:
    """Whether one of these objects, below the request body (which holds everything),
    has ``key`` as one of its own values."""
    return any(key in owner.values() for owner in owners[1:])


def _is_call_of(value: dict[str, Any], name: str, arguments: dict[str, Any]) -> bool:
    """Whether a JSON object is a call of ``name`` with ``arguments`` (an object, or the
    JSON text of one, as OpenAI sends them)."""
    if name not in value.values():
        return False
    for item in value.values():
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                continue
        if item == arguments:
            return True
    return False
