"""``Call``: what lifecycle hooks are told about one invocation of a wrapper."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelwire.spend import SpendTracker
    from modelwire.wrapper import ModelWrapper

__all__ = ["Call"]


class Call:
    """One invocation: which config, which operation, its arguments, its timing.

    A plain class (hooks may attach their own attributes), compared by identity.
    """

    def __init__(
        self,
        wrapper: ModelWrapper,
        operation: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tracker: SpendTracker,
    ) -> None:
        self.wrapper = wrapper
        self.operation = operation
        self.args = args
        self.kwargs = kwargs
        self.tracker = tracker
        self.reserved = 0.0
        self.attempts = 0
        self.admitted = True
        self.started_at = time.time()
        self._started = time.perf_counter()
        self._id: str | None = None

    @property
    def id(self) -> str:
        """A random id, made on first use: most calls are never recorded, and os.urandom
        is a system call on every call's hot path otherwise."""
        if self._id is None:
            self._id = os.urandom(16).hex()
        return self._id

    @property
    def config_name(self) -> str:
        return self.wrapper.config_name

    @property
    def model_type(self) -> str:
        return self.wrapper.model_type

    @property
    def model_name(self) -> str | None:
        return self.wrapper.model_name

    @property
    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.perf_counter() - self._started

    def __repr__(self) -> str:
        return (
            f"Call(id={self.id!r}, config_name={self.config_name!r},"
            f" model_type={self.model_type!r}, operation={self.operation!r},"
            f" attempts={self.attempts})"
        )
