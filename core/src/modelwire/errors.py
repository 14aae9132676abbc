"""The modelwire error hierarchy.

Every failure a caller can meet is one of these, so ``except modelwire.ProviderError``
catches every provider failure whatever SDK sits underneath, and the SDK's own
exception stays reachable as ``__cause__``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelwire.redact import scrub

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ConfigIssue",
    "ModelTimeoutError",
    "ModelWireError",
    "PluginError",
    "ProviderError",
    "RateLimitError",
    "ResponseParseError",
    "ScrubbedError",
    "ServiceUnavailableError",
    "UnknownModelTypeError",
    "UnsupportedOperationError",
    "body_text",
    "error_for_status",
    "parse_retry_after",
]


class ModelWireError(Exception):
    """Base class of every error modelwire raises."""

    def __init__(self, *args: Any) -> None:
        # ``args`` are kept scrubbed too: pickling, ``e.args`` and reprs of tools that
        # read them must not carry an echoed credential either.
        super().__init__(*(scrub(arg) if isinstance(arg, str) else arg for arg in args))

    def __str__(self) -> str:
        # Messages may quote SDK text that echoes a credential: scrub on the way out.
        return scrub(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in one model config."""

    config_name: str
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"config {self.config_name!r}"
        if self.key:
            where += f", key {self.key!r}"
        return f"{where}: {self.message}"


class ConfigError(ModelWireError, ValueError):
    """A model config is invalid; ``issues`` lists every problem found at once."""

    def __init__(self, issues: list[ConfigIssue] | str, *, source: str | None = None) -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue("?", None, issues)]
        self.issues: list[ConfigIssue] = list(issues)
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        origin = f" in {self.source}" if self.source else ""
        if len(self.issues) == 1:
            return f"invalid model config{origin}: {self.issues[0]}"
        lines = [f"{len(self.issues)} problems{origin}:"]
        lines += [f"  - {issue}" for issue in self.issues]
        return "\n".join(lines)


class UnknownModelTypeError(ConfigError):
    """No installed plugin provides the requested ``model_type``."""

    def __init__(self, model_type: str, message: str, *, config_name: str = "?") -> None:
        self.model_type = model_type
        super().__init__([ConfigIssue(config_name, "model_type", message)])


class PluginError(ModelWireError):
    """A plugin failed to load or registered something invalid."""

    def __init__(self, message: str, *, distribution: str | None = None) -> None:
        self.distribution = distribution
        super().__init__(message)


class BudgetExceededError(ModelWireError):
    """The call would spend more than the config's ``budget``; nothing was sent."""

    def __init__(
        self,
        config_name: str,
        *,
        budget: float,
        spent: float,
        reserved: float,
        needed: float | None = None,
    ) -> None:
        self.config_name = config_name
        self.budget = budget
        self.spent = spent
        self.reserved = reserved
        self.needed = needed
        worst = "" if needed is None else f"; this call may cost up to ${needed:.6f}"
        super().__init__(
            f"budget of config {config_name!r} exhausted: spent ${spent:.6f}"
            f" (+${reserved:.6f} in flight) of ${budget:.6f}{worst}; the call was not sent."
            " Raise `budget`, lower the call's output cap (e.g. `max_tokens`),"
            " or start a new registry."
        )


class UnsupportedOperationError(ModelWireError, NotImplementedError):
    """The model type does not offer this operation (e.g. streaming embeddings)."""


class ScrubbedError(Exception):
    """Stands in, as ``__cause__``, for the exception a modelwire error was mapped from.

    SDK exceptions keep what the server said, and servers echo credentials; a
    traceback or ``logging.exception()`` prints every chained exception. This copy
    holds the original's type name, scrubbed message and traceback frames; the
    original stays reachable as ``original`` for code that needs it.
    """

    def __init__(self, original: BaseException) -> None:
        self.original = original
        name = f"{type(original).__module__}.{type(original).__qualname__}"
        super().__init__(scrub(f"{name}: {original}"))

    def __str__(self) -> str:
        return str(self.args[0])


def scrubbed_chain(exc: BaseException | None, depth: int = 0) -> BaseException | None:
    """``exc`` made safe to print with its chain: SDK exceptions become ``ScrubbedError``s."""
    if exc is None or depth > 20:
        return None
    if isinstance(exc, (ModelWireError, ScrubbedError)):
        cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
        exc.__cause__ = scrubbed_chain(cause, depth + 1)
        exc.__suppress_context__ = True
        return exc
    copy = ScrubbedError(exc).with_traceback(exc.__traceback__)
    cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
    copy.__cause__ = scrubbed_chain(cause, depth + 1)
    copy.__suppress_context__ = True
    return copy


class ProviderError(ModelWireError):
    """The model service failed or answered something unusable.

    ``retryable`` tells the core's retry policy whether trying again can help.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        config_name: str | None = None,
        model_type: str | None = None,
        body: Any = None,
        partial_text: str | None = None,
    ) -> None:
        super().__init__(message if isinstance(message, str) else str(message))
        self.message: str = self.args[0]  # scrubbed by ModelWireError
        self.status = status
        self.config_name = config_name
        self.model_type = model_type
        self.body = None if body is None else scrub(_truncate(body_text(body)))
        self.partial_text = partial_text

    def __str__(self) -> str:
        parts = []
        if self.config_name or self.model_type:
            parts.append(f"[{self.config_name or '?'} ({self.model_type or '?'})]")
        if self.status is not None:
            parts.append(f"HTTP {self.status}:")
        parts.append(self.message)
        if self.body and self.body not in self.message:
            parts.append(f"-- response body: {self.body}")
        if self.partial_text:
            parts.append(f"-- {len(self.partial_text)} characters were received before the failure")
        return scrub(" ".join(parts))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[ProviderError], message: str, state: dict[str, Any]) -> ProviderError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class AuthenticationError(ProviderError):
    """401/403: the credentials were refused. Never retried."""


class BadRequestError(ProviderError):
    """4xx other than 401/403/408/429: the request itself is wrong. Never retried."""


class RateLimitError(ProviderError):
    """429: slow down. ``retry_after`` holds the service's requested wait in seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ModelTimeoutError(ProviderError):
    """The service did not answer within ``timeout``. Not retried: it may have run."""


class ServiceUnavailableError(ProviderError):
    """5xx or a connection failure: retried with backoff."""

    retryable = True


class ResponseParseError(ProviderError):
    """The service answered, but not in a shape the wrapper understands.

    When what failed is the model's output rather than the service's reply, the
    error carries it: ``arguments`` (a tool call's raw arguments that could not be
    read), ``text`` and ``validation_errors`` (a reply off the ``structured_model``).
    """

    arguments: Any = None
    text: str | None = None
    validation_errors: list[str] | None = None


def error_for_status(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    **kwargs: Any,
) -> ProviderError:
    """The modelwire error for an HTTP status, for plugins that see raw statuses."""
    if status == 429:
        return RateLimitError(
            message, status=status, body=body, retry_after=parse_retry_after(headers), **kwargs
        )
    cls: type[ProviderError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status in (408, 504):
        cls = ModelTimeoutError if status == 408 else ServiceUnavailableError
    elif 400 <= status < 500:
        cls = BadRequestError
    elif status >= 500:
        cls = ServiceUnavailableError
    else:
        cls = ProviderError
    return cls(message, status=status, body=body, **kwargs)


def body_text(body: Any) -> str:
    """Any error body as text: bytes decoded, parsed JSON dumped, anything else ``str()``."""
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body).decode("utf-8", "replace")
    try:
        import json

        return json.dumps(body, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(body)[:2000]


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # only for the rare HTTP-date form; it is slow to import

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _truncate(text: str, limit: int = 2000) -> str:
    text = scrub(text)
    return (
        text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"
    )
