"""What one attempt of a call may take: its deadline and the largest reply it may read.

The call path sets an attempt's ``AttemptLimits`` in a context variable, which
follows the attempt into the worker threads (``asyncio.to_thread`` copies it) and
tasks it runs in; ``modelwire.transport`` enforces them under the SDKs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple

from modelwire.errors import ModelTimeoutError

__all__ = ["AttemptLimits", "attempt_limits", "current_limits"]


class AttemptLimits(NamedTuple):
    """What one attempt (or one wait for a stream's next chunk) may take."""

    deadline: float  #: ``time.monotonic()`` by which it must be done
    seconds: float  #: the setting that made the deadline, for messages
    setting: str = "timeout"  #: its config key
    max_response_bytes: int | None = None

    def left(self) -> float:
        """Seconds left, or raise ``ModelTimeoutError`` when there are none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> ModelTimeoutError:
        return ModelTimeoutError(
            f"the service did not answer within {self.setting}={self.seconds:g}s"
        )


_current: ContextVar[AttemptLimits | None] = ContextVar("modelwire_attempt", default=None)


#: ``current_limits()``: the limits of the attempt running in this context, if any.
current_limits: Callable[[], AttemptLimits | None] = _current.get


class attempt_limits:  # lower case: it reads as a function, `with attempt_limits(...)`
    """Run the block under ``limits`` (no ``yield`` of a generator may happen inside)."""

    __slots__ = ("_limits", "_token")

    def __init__(self, limits: AttemptLimits | None) -> None:
        self._limits = limits

    def __enter__(self) -> AttemptLimits | None:
        self._token = _current.set(self._limits)
        return self._limits

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
