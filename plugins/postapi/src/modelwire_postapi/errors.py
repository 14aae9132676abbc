"""Mapping httpx's exceptions onto modelwire's.

What a call can raise:

* ``httpx.HTTPStatusError`` for a non-2xx reply (the wrapper reads the body first, so
  the error carries it, truncated, and ``Retry-After`` reaches ``RateLimitError``);
* ``httpx.TimeoutException`` when ``timeout`` passes without an answer;
* other ``httpx.TransportError``s when the connection fails or breaks mid-reply (a
  truncated body is a network failure, so it is retried like one);
* ``httpx.DecodingError`` / ``json.JSONDecodeError`` for replies that cannot be read.

``httpx`` is imported inside ``map_error``, so that this module imports without it.
"""

from __future__ import annotations

import json
import re
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

__all__ = ["error_in", "map_error", "service_message"]

#: An HTML error page's title (compiled on first use, by ``re``).
_TITLE = r"(?is)<(?:title|h1)[^>]*>(.*?)</(?:title|h1)>"


def map_error(exc: Exception) -> ModelWireError | None:
    """The modelwire error for an exception raised calling the service; ``None`` if unknown."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(exc.response)
    if isinstance(exc, httpx.TimeoutException):
        return ModelTimeoutError(
            f"the service did not answer within the timeout ({type(exc).__name__});"
            " raise `timeout` in the config for slow models or long prompts"
        )
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BadRequestError(f"`api_url` cannot be requested: {exc}")
    if isinstance(exc, httpx.ConnectError):
        return ServiceUnavailableError(
            f"cannot connect to the service: is it running, and is `api_url` right? ({exc})"
        )
    if isinstance(exc, httpx.TransportError):
        return ServiceUnavailableError(
            f"the connection to the service failed: {type(exc).__name__}: {exc}"
        )
    if isinstance(exc, (httpx.DecodingError, json.JSONDecodeError)):
        return ResponseParseError(f"the service's reply cannot be decoded: {exc}")
    if isinstance(exc, httpx.InvalidURL):
        return BadRequestError(f"`api_url` is not a valid URL: {exc}")
    return None


def _status_error(response: Any) -> ProviderError:
    import httpx

    try:
        body = response.text
    except httpx.ResponseNotRead:
        body = None
    status = response.status_code
    message = service_message(body) or response.reason_phrase or f"HTTP {status}"
    url = response.request.url.copy_with(query=None)
    message = f"{response.request.method} {url}: {message}"
    if status in (404, 405):
        message += " (check `api_url`: this path does not take POST requests)"
    elif 300 <= status < 400 and response.headers.get("location"):
        message += (
            f" (the service redirects to {response.headers['location']}: set `api_url` to it,"
            ' or "post_args": {"follow_redirects": true})'
        )
    return error_for_status(status, message, headers=dict(response.headers), body=body)


def service_message(body: str | None) -> str | None:
    """The error message inside an error body: JSON's usual fields, or an HTML page's title."""
    if not body or not body.strip():
        return None
    try:
        payload = json.loads(body)
    except RecursionError:  # nested too deep to read: no message, the status still tells
        return None
    except ValueError:
        match = re.search(_TITLE, body)
        return " ".join(match.group(1).split()) if match else None
    return _message_in(payload, ("error", "detail", "message", "msg", "error_msg", "errors"))


def error_in(payload: Any) -> str | None:
    """The error a successful reply reports instead of an answer (``error``), if any."""
    return _message_in(payload, ("error", "errors"))


def _message_in(payload: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(payload, dict):
        return None
    for key in keys:
        value = payload.get(key)
        if not value:
            continue
        if isinstance(value, dict):
            inner = value.get("message") or value.get("msg") or value.get("detail")
            return str(inner) if inner else json.dumps(value, ensure_ascii=False)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return None
