"""Sample tools for tests of tool calling: the same two functions in every plugin's
tests and in the conformance suite, so that their schemas and results are known."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelwire.blocks import tool_result

__all__ = ["TOOLS", "get_time", "get_weather", "run_tools"]


def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather.

    Args:
        city: The city's name.
    """
    return f"21 degrees {unit} in {city}"


def get_time(tz: str) -> str:
    """The local time in a time zone."""
    return f"12:00 in {tz}"


TOOLS: dict[str, Callable[..., str]] = {"get_weather": get_weather, "get_time": get_time}


def run_tools(response: Any) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks answering a response's tool calls, by running them."""
    return [tool_result(call, TOOLS[call["name"]](**call["input"])) for call in response.tool_calls]
