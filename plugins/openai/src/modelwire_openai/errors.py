"""Mapping the ``openai`` SDK's exceptions onto modelwire's.

The SDK is never imported here: an exception can only come from it once it is
loaded, so it is looked up in ``sys.modules``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from modelwire import (
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
)

__all__ = ["map_error"]

#: Error ``type``s/``code``s of stream error events, which carry no HTTP status.
_RATE_LIMITED = frozenset({"rate_limit_exceeded", "requests", "tokens"})
_SERVER_FAILURES = frozenset({"server_error", "service_unavailable", "overloaded"})


def map_error(exc: Exception) -> ModelWireError | None:
    """The modelwire error for an exception raised by the ``openai`` SDK; ``None`` if unknown."""
    openai = sys.modules.get("openai")
    if openai is not None:
        # Subclasses before their bases: a timeout is a connection error, and a
        # validation error or a status error is an API error.
        if isinstance(exc, openai.APIStatusError):
            response = exc.response
            body = _body_text(response)
            reason = getattr(response, "reason_phrase", None) or exc.message
            return error_for_status(
                exc.status_code,
                _message(exc.body, str(reason)),
                headers=_headers(response),
                body=body,
            )
        if isinstance(exc, openai.APITimeoutError):
            return ModelTimeoutError(f"the service did not answer in time ({exc.message})")
        if isinstance(exc, openai.APIConnectionError):
            reason = exc.__cause__ or exc.message
            return ServiceUnavailableError(f"the connection to the service failed: {reason}")
        if isinstance(exc, openai.APIResponseValidationError):
            return ResponseParseError(
                f"the reply does not have the expected shape: {exc.message}",
                status=exc.status_code,
                body=_body_text(exc.response),
            )
        if isinstance(exc, openai.APIError):
            # An error event inside a stream: no HTTP status, only the error's type/code.
            body = json.dumps(exc.body, default=str) if exc.body is not None else None
            kind = {str(exc.type or ""), str(exc.code or "")}
            cls: type[ProviderError] = ProviderError
            if kind & _RATE_LIMITED:
                cls = RateLimitError
            elif kind & _SERVER_FAILURES:
                cls = ServiceUnavailableError
            return cls(_message(exc.body, exc.message), body=body)
        if isinstance(exc, openai.OpenAIError):
            return ProviderError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, json.JSONDecodeError):
        return ResponseParseError(f"the service's reply is not valid JSON: {exc}")
    return None


def _message(body: object, fallback: str) -> str:
    """The service's own error message (``{"error": {"message": ...}}``), else the SDK's."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            message = error.get("message")
            if isinstance(message, str) and message:
                return message
        elif isinstance(error, str) and error:
            return error
    return fallback


def _body_text(response: Any) -> str | None:
    try:
        return str(response.text)
    except Exception:  # a stream closed before its body was read
        return None


def _headers(response: Any) -> dict[str, str]:
    try:
        return {str(name): str(value) for name, value in response.headers.items()}
    except Exception:
        return {}
