"""Mapping the ``ollama`` SDK's exceptions, and the httpx ones it lets through, onto modelwire's.

What the SDK raises:

* ``ollama.ResponseError`` for an HTTP error status (``status_code``, ``error``) and for
  an ``{"error": ...}`` line inside a stream (``status_code`` -1). It is raised
  ``from None`` inside ``except httpx.HTTPStatusError``, so the httpx error, and with it
  the response's headers (``Retry-After``), is still its ``__context__``.
* the built-in ``ConnectionError`` when a plain call cannot connect; a stream lets
  ``httpx.ConnectError`` through instead.
* httpx's timeouts and transport errors, ``json.JSONDecodeError`` and pydantic's
  ``ValidationError`` for replies it cannot read, unchanged.

The SDK is imported inside ``map_error``: it runs only after a call, when the SDK is
already loaded, and keeps this module importable without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelwire import (
    BadRequestError,
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
)

__all__ = ["map_error"]


def map_error(
    exc: Exception, *, model: str | None = None, host: str | None = None
) -> ModelWireError | None:
    """The modelwire error for an exception of the Ollama SDK; ``None`` if unknown.

    ``model`` and ``host`` only make the messages actionable (``ollama pull <model>``).
    """
    import httpx
    import ollama
    import pydantic

    where = f" at {host}" if host else ""
    if isinstance(exc, ollama.ResponseError):
        return _response_error(exc, model, httpx)
    if isinstance(exc, ollama.RequestError):
        return BadRequestError(f"the SDK refused the request before sending it: {exc.error}")
    if isinstance(exc, httpx.TimeoutException):
        return ModelTimeoutError(
            f"Ollama{where} did not answer within the timeout ({type(exc).__name__});"
            " raise `timeout` in the config for slow models or cold starts"
        )
    if isinstance(exc, (ConnectionError, httpx.ConnectError)):
        return ServiceUnavailableError(
            f"cannot connect to Ollama{where}: is `ollama serve` running and `host` right?"
            f" ({type(exc).__name__}: {exc})"
        )
    if isinstance(exc, httpx.TransportError):
        return ServiceUnavailableError(
            f"the connection to Ollama{where} failed: {type(exc).__name__}: {exc}"
        )
    if isinstance(exc, (json.JSONDecodeError, httpx.DecodingError)):
        return ResponseParseError(f"Ollama's reply is not valid JSON: {exc}")
    if isinstance(exc, pydantic.ValidationError):
        bad_call = _bad_tool_call(exc)
        if bad_call is not None:
            return bad_call
        return ResponseParseError(
            f"Ollama's reply does not have the expected shape: {exc.error_count()} problem(s),"
            f" first: {_first_problem(exc)}"
        )
    return None


def _response_error(exc: Any, model: str | None, httpx: Any) -> ProviderError:
    status = int(exc.status_code)
    message = str(exc.error)
    if status < 100:
        # An {"error": ...} line in a 200 stream: the model failed while generating.
        return ProviderError(f"Ollama reported an error while generating: {message}")
    headers: Mapping[str, str] | None = None
    body: str | None = None
    context = exc.__context__
    if isinstance(context, httpx.HTTPStatusError):
        headers = dict(context.response.headers)
        try:
            body = context.response.text
        except httpx.ResponseNotRead:
            body = None
    if status == 404 and "not found" in message.lower():
        name = model or "<model>"
        message = (
            f"model {name!r} is not available on this Ollama server ({message});"
            f" pull it first with `ollama pull {name}`"
        )
    return error_for_status(status, message, headers=headers, body=body)


def _bad_tool_call(exc: Any) -> ResponseParseError | None:
    """The error for a tool call the SDK could not read (arguments that are not an
    object, a missing name), carrying the raw ``arguments``: never a silent ``{}``.

    The SDK validates the reply before modelwire sees it, so nothing can be repaired.
    """
    for problem in exc.errors():
        location = tuple(problem.get("loc", ()))
        if location[:2] != ("message", "tool_calls") or len(location) < 3:
            continue
        where = f"tool call {location[2]}" if isinstance(location[2], int) else "a tool call"
        field = ".".join(str(part) for part in location[3:]) or "function"
        raw = problem.get("input")
        shown = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        error = ResponseParseError(
            f"{where} of Ollama's reply cannot be read ({field}: {problem.get('msg', '')}):"
            f" {shown[:200]}",
            body=shown,
        )
        error.arguments = raw if field.endswith("arguments") else None
        return error
    return None


def _first_problem(exc: Any) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    return f"{location or '<reply>'}: {first.get('msg', '')}"
