"""Mapping httpx's exceptions onto modelwire's."""

from __future__ import annotations

import json

from modelwire import (
    ModelTimeoutError,
    ModelWireError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
)


def map_error(exc: Exception) -> ModelWireError | None:
    """The modelwire error for an exception raised by ``httpx``; ``None`` if unknown.

    httpx is imported only once a call has failed, so that this module stays light.
    """
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        reply = exc.response
        try:
            message = reply.json()["error"]["message"]
        except (ValueError, KeyError, TypeError, RecursionError):
            message = reply.reason_phrase or f"HTTP {reply.status_code}"
        return error_for_status(
            reply.status_code, str(message), headers=dict(reply.headers), body=reply.text
        )
    if isinstance(exc, httpx.TimeoutException):
        return ModelTimeoutError(f"no answer in time: {exc}")
    if isinstance(exc, httpx.TransportError):  # refused, reset, or a body cut short
        return ServiceUnavailableError(f"cannot reach the service: {exc!r}")
    if isinstance(exc, json.JSONDecodeError):
        return ResponseParseError(f"the reply is not JSON: {exc}")
    return None
