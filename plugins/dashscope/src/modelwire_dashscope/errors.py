"""Mapping the dashscope SDK's failures onto modelwire's errors.

DashScope reports a failure on one of two layers: a non-2xx HTTP status, or an
HTTP 200 whose body, stream event or async task carries a ``code`` such as
``Throttling``. The SDK raises both as ``dashscope.v2.errors.DashScopeError``
(``status_code``, ``code``, ``message``, ``headers``); this module turns them into
the error the core's retry policy understands, so ``Throttling`` is retried like
any 429 and ``InvalidApiKey`` never is. The SDK is imported only once a call has
failed, when it is loaded anyway.
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
    body_text,
    error_for_status,
)

__all__ = ["CODE_STATUS", "error_for_code", "map_error", "status_for_code", "unreadable_code"]

#: DashScope error codes and the HTTP status each one stands for. A code matches
#: exactly or as the prefix of a dotted code (``Throttling`` covers ``Throttling.RateQuota``).
CODE_STATUS: tuple[tuple[str, int], ...] = (
    ("InvalidApiKey", 401),
    ("AccessDenied", 403),
    ("Workspace.AccessDenied", 403),
    ("Model.AccessDenied", 403),
    ("Arrearage", 403),
    ("Throttling", 429),
    ("InvalidParameter", 400),
    ("BadRequest", 400),
    ("DataInspectionFailed", 400),
    ("InvalidURL", 400),
    ("InvalidFile", 400),
    ("UnsupportedOperation", 400),
    ("Model.NotExist", 404),
    ("ModelNotFound", 404),
    ("InternalError", 500),
    ("SystemError", 500),
    ("ServiceUnavailable", 503),
    ("ModelUnavailable", 503),
    ("ModelServiceFailed", 503),
    ("RequestTimeOut", 504),
    ("GatewayTimeout", 504),
)

#: SDK request models: a validation error in one of them is a bad request, not a bad reply.
_REQUEST_MODELS = frozenset(
    {"Message", "TextPart", "ImagePart", "AudioPart", "VideoPart", "ToolCall", "ToolCallFunction"}
)
_MESSAGE_LIMIT = 500


def status_for_code(code: Any) -> int | None:
    """The HTTP status a DashScope error code stands for, if the code is known.

    A code that is not a string (services have sent numbers, floats, booleans) is
    known to no table: the HTTP status decides then.
    """
    if not isinstance(code, str) or not code:
        return None
    for known, status in CODE_STATUS:
        if code == known or code.startswith(known + "."):
            return status
    return None


def error_for_code(code: Any, message: str, *, body: str | None = None) -> ProviderError:
    """The error for a DashScope code met outside an HTTP failure (a failed task result)."""
    status = status_for_code(code)
    text = f"DashScope {code}: {message}" if code else f"DashScope: {message}"
    if status is None:
        return ProviderError(text, body=body)
    return error_for_status(status, text, body=body)


def unreadable_code(response: Any) -> ProviderError | None:
    """The error for a read JSON reply whose error ``code`` the SDK cannot look up.

    The SDK finds an error's class with ``dict.get(code)``: a code that is a list or
    an object raises a bare ``TypeError`` there, losing the status and the message.
    The clients check every JSON reply first (a response hook on the SDK's httpx
    client, ``client.py``). ``None`` when the reply has no such code.
    """
    if b'"code"' not in response.content and b'"type"' not in response.content:
        return None
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None  # the SDK reports unreadable JSON itself
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    codes = [body.get("code")]
    if isinstance(error, dict):
        codes += [error.get("code"), error.get("type")]
    unreadable = next((code for code in codes if not _hashable(code)), None)
    if unreadable is None:
        return None
    message = body.get("message") or (error.get("message") if isinstance(error, dict) else None)
    text = f"DashScope sent an error code that is not a string ({body_text(unreadable)[:100]})"
    text += f": {body_text(message)[:_MESSAGE_LIMIT]}" if message else ""
    if body.get("request_id"):
        text += f" (request_id {body_text(body['request_id'])})"
    if response.status_code >= 400:
        headers = {str(k): str(v) for k, v in response.headers.items()}
        return error_for_status(response.status_code, text, headers=headers, body=response.text)
    return ResponseParseError(text, body=response.text)


def unreadable_body(response: Any) -> ResponseParseError | None:
    """The error for a read successful JSON reply the SDK would crash on: a body that
    is not UTF-8, or JSON that is not an object (a list, a string, a number, ``null``),
    which the SDK reads with ``.get`` (a bare ``AttributeError``). ``None`` otherwise;
    malformed JSON is left to the SDK, which reports it."""
    content = response.content
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ResponseParseError(f"DashScope's reply is not valid UTF-8 ({exc})")
    first = text.lstrip()[:1]
    if first in ("", "{"):
        return None
    return ResponseParseError(
        f"DashScope's reply is JSON but not an object: {body_text(text)[:100]}", body=text
    )


def _hashable(code: Any) -> bool:
    try:
        hash(code)
    except TypeError:
        return False
    return True


def map_error(exc: Exception) -> ModelWireError | None:
    """The modelwire error for an exception raised by the dashscope SDK; ``None`` if unknown."""
    import httpx
    from dashscope.v2.errors import APIConnectionError, APITimeoutError, DashScopeError
    from pydantic import ValidationError

    if isinstance(exc, APITimeoutError):
        return ModelTimeoutError(f"DashScope did not answer in time: {exc.message}")
    if isinstance(exc, APIConnectionError):
        return ServiceUnavailableError(f"cannot reach DashScope: {exc.message}")
    if isinstance(exc, DashScopeError):
        return _from_dashscope(exc)
    if isinstance(exc, httpx.TimeoutException):
        return ModelTimeoutError(f"DashScope stopped answering in time: {exc}")
    if _is_sse_error(exc):
        return ResponseParseError(f"DashScope's stream is not server-sent events: {exc}")
    if isinstance(exc, httpx.TransportError):
        return ServiceUnavailableError(
            f"the connection to DashScope broke: {type(exc).__name__}: {exc}"
        )
    if isinstance(exc, json.JSONDecodeError):
        return ResponseParseError(f"DashScope's reply is not valid JSON: {exc}")
    if isinstance(exc, ValidationError):
        if exc.title in _REQUEST_MODELS:
            return BadRequestError(f"the SDK rejected the request before sending it: {exc}")
        return ResponseParseError(f"DashScope's reply has an unexpected shape: {exc}")
    if isinstance(exc, ValueError):
        return BadRequestError(f"the SDK rejected the request before sending it: {exc}")
    if isinstance(exc, TypeError) and _raised_in("dashscope.v2.errors", exc):
        # A stream event's code the SDK cannot look up (see unreadable_code).
        return ResponseParseError(f"DashScope sent an error the SDK cannot read: {exc}")
    return None


def _raised_in(module: str, exc: Exception) -> bool:
    """Whether ``exc`` was raised by code of ``module`` (its traceback's last frame)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") == module


def _from_dashscope(exc: Any) -> ModelWireError:
    """Map a ``DashScopeError``: the code decides when known, else the HTTP status."""
    if isinstance(exc.__cause__, (json.JSONDecodeError, RecursionError)):
        return ResponseParseError(f"DashScope sent a malformed event: {exc.message}")
    http_status = exc.status_code if isinstance(exc.status_code, int) else None
    failed_status = http_status if http_status is not None and http_status >= 400 else None
    status = status_for_code(exc.code) or failed_status
    message = _describe(exc)
    body = _body_text(exc.body)
    if status is None:
        return ProviderError(message, status=failed_status, body=body)
    raw_headers = exc.headers if isinstance(exc.headers, Mapping) else {}
    headers = {str(k): str(v) for k, v in raw_headers.items()}
    error = error_for_status(status, message, headers=headers, body=body)
    error.status = failed_status or status
    return error


def _describe(exc: Any) -> str:
    """``[task <id> <STATUS>: ]DashScope <code>: <message> (request_id ...)``."""
    text = str(exc.message or "").strip() or "no message"
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    message = f"DashScope {exc.code}: {text}" if exc.code else f"DashScope: {text}"
    output = exc.body.get("output") if isinstance(exc.body, dict) else None
    if isinstance(output, dict) and output.get("task_id"):
        message = f"task {output['task_id']} {output.get('task_status', '')}: {message}"
    if exc.request_id:
        message += f" (request_id {exc.request_id})"
    return message


def _body_text(body: Any) -> str | None:
    return None if body is None else body_text(body)


def _is_sse_error(exc: Exception) -> bool:
    try:
        from httpx_sse import SSEError
    except ImportError:  # pragma: no cover - a dependency of the SDK
        return False
    return isinstance(exc, SSEError)
