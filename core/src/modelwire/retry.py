"""The core's retry policy: exponential backoff with jitter that honours ``Retry-After``.

SDK retries are switched off by every first-party plugin so that this is the one
place where a call is repeated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from modelwire.errors import ProviderError

__all__ = ["RetryConfig", "RetryPolicy"]


class RetryConfig(TypedDict, total=False):
    """The ``retry`` key of a model config."""

    max_retries: int
    initial_delay: float
    max_delay: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry 429, 5xx and connection failures; never other 4xx, timeouts or parse errors.

    A ``Retry-After`` up to ``max_delay`` is waited exactly; a longer one is not
    waited at all: the error is raised with its ``retry_after`` so the caller decides.
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry settings must not be negative")

    @classmethod
    def from_config(cls, value: RetryPolicy | Mapping[str, Any] | None) -> RetryPolicy:
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        return cls(
            **{k: value[k] for k in ("max_retries", "initial_delay", "max_delay") if k in value}
        )

    def delay(self, retries_done: int, error: BaseException) -> float | None:
        """Seconds to wait before the next try, or ``None`` to give up with ``error``."""
        if not isinstance(error, ProviderError) or not error.retryable:
            return None
        if retries_done >= self.max_retries:
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(retry_after) if retry_after <= self.max_delay else None
        import random  # only once a call is being retried

        ceiling = min(self.max_delay, self.initial_delay * (2**retries_done))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
