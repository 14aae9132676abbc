"""Mapping ``google-genai`` exceptions (and those of its HTTP transports) onto modelwire's.

The wrappers give the SDK httpx clients on modelwire's transports (``client.py``),
but a config that brings its own ``transport`` or ``mounts`` may leave the SDK on
``httpx2`` or ``aiohttp``, so a failure can surface as an exception of any of them.
Their classes are looked up in ``sys.modules`` only: a transport that was never
imported cannot have raised, and this module stays import-free.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from modelwire import (
    AuthenticationError,
    BadRequestError,
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
)

__all__ = ["BlockedResponseError", "map_error", "retry_delay"]

#: ErrorInfo reasons with which the Gemini API refuses a key under HTTP 400.
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})


class BlockedResponseError(ProviderError):
    """Gemini withheld the answer (safety, recitation, blocklist...); never retried.

    ``finish_reason`` is the candidate's finish reason, or the prompt's block
    reason when the prompt itself was refused (``blocked == "prompt"``).
    """

    def __init__(
        self,
        message: str,
        *,
        finish_reason: str,
        blocked: str = "response",
        safety_ratings: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.finish_reason = finish_reason
        self.blocked = blocked
        self.safety_ratings = safety_ratings or []
        super().__init__(message, **kwargs)


def map_error(exc: Exception) -> ModelWireError | None:
    """The modelwire error for an exception raised while calling Gemini; ``None`` if unknown."""
    genai_errors = sys.modules.get("google.genai.errors")
    if genai_errors is not None:
        if isinstance(exc, genai_errors.APIError):
            return _api_error(exc)
        if isinstance(exc, genai_errors.UnknownApiResponseError):
            return ResponseParseError(f"the service's reply is not valid JSON: {exc}")
    name = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (TimeoutError, *_loaded("TimeoutException"))):
        return ModelTimeoutError(f"the service did not answer in time ({name})")
    if isinstance(exc, _loaded("DecodingError")):
        return ResponseParseError(f"the service's reply cannot be decoded ({name})")
    if isinstance(exc, (ConnectionError, *_loaded("TransportError", "ClientError"))):
        return ServiceUnavailableError(f"could not reach the service ({name})")
    auth = sys.modules.get("google.auth.exceptions")
    if auth is not None:
        if isinstance(exc, auth.TransportError):
            return ServiceUnavailableError(f"could not refresh the credentials ({name})")
        if isinstance(exc, auth.GoogleAuthError):
            return AuthenticationError(f"no usable Google Cloud credentials ({name})")
    if isinstance(exc, json.JSONDecodeError):
        return ResponseParseError(f"the service's reply is not valid JSON ({name})")
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        return ResponseParseError(f"the service's reply has an unexpected shape ({name})")
    if isinstance(exc, ValueError) and type(exc).__module__.startswith(
        ("google.genai", "builtins")
    ):
        return BadRequestError(f"the SDK refused the request ({name})")
    return None


def _api_error(exc: Any) -> ProviderError:
    """``google.genai.errors.APIError``: the service answered with an error status."""
    status = exc.code if isinstance(exc.code, int) else 0
    details = exc.details
    body = _body_of(exc, details)
    message = str(exc.message or exc.status or f"the service answered HTTP {status}")
    if isinstance(exc.status, str) and exc.status and exc.status not in message:
        message = f"{exc.status}: {message}"
    if not status:
        return ProviderError(message, body=body)
    headers = _headers(getattr(getattr(exc, "response", None), "headers", None))
    if status == 400 and _reasons(details) & _KEY_REASONS:
        return AuthenticationError(message, status=status, body=body)
    error = error_for_status(status, message, headers=headers, body=body)
    if isinstance(error, RateLimitError) and error.retry_after is None:
        error.retry_after = retry_delay(details)
    return error


def _body_of(exc: Any, details: Any) -> str | None:
    """The error reply's body as the service sent it (the core scrubs it).

    httpx responses keep their text; for others (aiohttp) the SDK's ``details`` is the
    parsed JSON, or ``{"message": <the body's text>, "status": <reason>}`` when the
    body was not JSON.
    """
    text = getattr(getattr(exc, "response", None), "text", None)
    if isinstance(text, str):
        return text or None
    if isinstance(details, Mapping) and details.keys() == {"message", "status"}:
        message = details["message"]
        return str(message) if message else None
    if details in (None, "", {}, []):
        return None
    return json.dumps(details, ensure_ascii=False, default=str)


def retry_delay(details: Any) -> float | None:
    """Seconds from the ``google.rpc.RetryInfo`` of an error body (``"retryDelay": "7s"``)."""
    for detail in _details(details):
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
        if isinstance(delay, Mapping):
            seconds = float(delay.get("seconds", 0) or 0) + float(delay.get("nanos", 0) or 0) / 1e9
            return max(0.0, seconds)
    return None


def _details(details: Any) -> list[Mapping[str, Any]]:
    if not isinstance(details, Mapping):
        return []
    error = details.get("error", details)
    items = error.get("details") if isinstance(error, Mapping) else None
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def _reasons(details: Any) -> set[str]:
    return {str(d.get("reason")) for d in _details(details) if d.get("reason")}


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    try:
        return {str(key): str(value) for key, value in headers.items()}
    except (AttributeError, TypeError):
        return {}


def _loaded(*names: str) -> tuple[type[BaseException], ...]:
    """Exception classes called ``names`` in the transports already imported."""
    found = []
    for module_name in ("httpx2", "httpx", "aiohttp"):
        module = sys.modules.get(module_name)
        for name in names:
            cls = getattr(module, name, None) if module is not None else None
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)
