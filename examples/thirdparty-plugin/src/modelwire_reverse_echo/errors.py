"""Mapping the standard library's HTTP errors onto modelwire's."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error

from modelwire import (
    ModelTimeoutError,
    ModelWireError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
)


def map_error(exc: Exception) -> ModelWireError | None:
    """The modelwire error for an exception raised by ``urllib``; ``None`` if unknown."""
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read().decode("utf-8", "replace")
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason or f"HTTP {exc.code}"
        return error_for_status(exc.code, str(message), headers=dict(exc.headers), body=body)
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            return ModelTimeoutError(f"no answer in time: {exc.reason}")
        return ServiceUnavailableError(f"cannot reach the service: {exc.reason}")
    if isinstance(exc, http.client.HTTPException):  # e.g. IncompleteRead: the body was cut
        return ServiceUnavailableError(f"the connection broke mid-reply: {exc!r}")
    if isinstance(exc, json.JSONDecodeError):
        return ResponseParseError(f"the reply is not JSON: {exc}")
    return None
