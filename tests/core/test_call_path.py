"""The one call path, driven by a stub provider step (no network): what every model type
gets from the base class whatever its SDK does."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import pytest

from modelwire import (
    BadRequestError,
    ModelResponse,
    ModelWrapper,
    ProviderError,
    ResponseParseError,
    ScrubbedError,
    ServiceUnavailableError,
    Usage,
)

SECRET = "stub-secret-0123456789"


class SDKError(Exception):
    """An SDK's HTTP error: it carries the status and echoes the key."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} for key {SECRET}")
        self.status_code = status


class Stub(ModelWrapper):
    model_type = "stub"

    def __init__(self, config_name: str = "stub", *, behaviour: Any = None, **kwargs: Any) -> None:
        super().__init__(config_name, **kwargs)
        self.secret(SECRET)
        self.behaviour = behaviour
        self.sent = 0

    def _send(self, request: Any) -> Any:
        self.sent += 1
        if isinstance(self.behaviour, BaseException) or (
            isinstance(self.behaviour, type) and issubclass(self.behaviour, BaseException)
        ):
            raise self.behaviour
        return self.behaviour if self.behaviour is not None else {"text": "ok"}

    def _parse(self, reply: Any, request: Any) -> ModelResponse:
        return ModelResponse(text=reply["text"], usage=Usage.of(1, 1))


def released(model: ModelWrapper) -> bool:
    return model.tracker.reserved == 0 and model.tracker._in_flight == 0


PRICED = {"budget": 100.0, "pricing": {"prompt": 1.0, "completion": 1.0}}


@pytest.mark.parametrize("use_async", [False, True], ids=["call", "acall"])
def test_a_base_exception_in_send_releases_the_reservation(use_async: bool) -> None:
    model = Stub(behaviour=KeyboardInterrupt, **PRICED)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(model.acall("x")) if use_async else model("x")
    assert released(model)
    assert model.usage["errors"] == 1


def test_the_chained_cause_is_a_scrubbed_copy() -> None:
    model = Stub(behaviour=SDKError(503), retry={"max_retries": 0})
    with pytest.raises(ProviderError) as info:
        model("x")
    assert isinstance(info.value.__cause__, ScrubbedError)
    assert isinstance(info.value.__cause__.original, SDKError)
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_a_mapper_that_raises_still_gives_an_error_typed_by_its_status() -> None:
    class Crashing(Stub):
        def _map_error(self, exc: Exception) -> Any:
            raise RecursionError("the mapper recursed")

    model = Crashing(behaviour=SDKError(503), retry={"max_retries": 1, "initial_delay": 0})
    with pytest.raises(ServiceUnavailableError, match="error mapper of 'stub' failed"):
        model("x")
    assert model.sent == 2  # a 503 is still retried


def test_a_data_error_in_parse_is_a_response_parse_error() -> None:
    model = Stub(behaviour={"no text": True})
    with pytest.raises(ResponseParseError, match="KeyError"):
        model("x")
    assert model.sent == 1


def test_arguments_the_type_cannot_take_are_a_bad_request_before_sending() -> None:
    model = Stub()
    with pytest.raises(BadRequestError, match="invalid call arguments"):
        model("a", "b")  # the default _request takes one input
    assert model.sent == 0


def test_an_unmapped_sdk_error_is_typed_by_the_status_it_carries() -> None:
    model = Stub(behaviour=SDKError(429), retry={"max_retries": 0})
    with pytest.raises(ProviderError) as info:
        model("x")
    assert type(info.value).__name__ == "RateLimitError"
    assert info.value.status == 429


def test_hooks_hear_start_then_end_and_an_error_once() -> None:
    from modelwire import PluginManager, hookimpl

    heard: list[str] = []

    class Listener:
        @hookimpl
        def on_call_start(self, call: Any) -> None:
            heard.append("start")

        @hookimpl
        def on_call_end(self, call: Any, response: Any) -> None:
            heard.append("end")

        @hookimpl
        def on_call_error(self, call: Any, error: Any) -> None:
            heard.append(f"error:{type(error).__name__}")

    manager = PluginManager()
    manager.register(Listener())
    model = Stub()
    model.hooks = manager.hook
    model("x")
    model.behaviour = SDKError(400)
    with pytest.raises(BadRequestError):
        model("x")
    assert heard == ["start", "end", "start", "error:BadRequestError"]
