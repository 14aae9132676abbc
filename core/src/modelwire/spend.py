"""Usage and spend of one config, and the budget that admits or refuses its calls.

A budget is a hard cap: a call is admitted only if the spend so far, plus what
calls in flight are expected to cost, plus this call's expected cost, fits. The
expected cost is the dearest call seen so far; until one call has been priced,
only one call is in flight at a time, so concurrency cannot overshoot the cap.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from modelwire.errors import BudgetExceededError
from modelwire.response import Usage

__all__ = ["Pricing", "PricingConfig", "SpendTracker"]

_TOLERANCE = 1e-9


class PricingConfig(TypedDict, total=False):
    """The ``pricing`` key of a model config: USD per 1,000 tokens."""

    prompt: float
    completion: float


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per 1,000 prompt and completion tokens."""

    prompt: float
    completion: float

    @classmethod
    def from_config(cls, value: Pricing | Mapping[str, Any] | tuple[float, float]) -> Pricing:
        if isinstance(value, Pricing):
            return value
        if isinstance(value, tuple):
            return cls(float(value[0]), float(value[1]))
        return cls(float(value.get("prompt", 0.0)), float(value.get("completion", 0.0)))

    def cost(self, usage: Usage | None) -> float:
        if usage is None:
            return 0.0
        return (
            usage.prompt_tokens * self.prompt + usage.completion_tokens * self.completion
        ) / 1000


class SpendTracker:
    """Thread- and task-safe counters of one config, with its budget."""

    def __init__(self, config_name: str, budget: float | None = None) -> None:
        self.config_name = config_name
        self.budget = None if budget is None else float(budget)
        # A C-level lock on every call's path; the Condition over it (pure Python) only
        # for the rare wait for a first cost, and notified only when someone waits.
        self._lock = threading.RLock()
        self._settled = threading.Condition(self._lock)
        self._waiting = 0
        self._calls = 0
        self._errors = 0
        self._rejected = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._total_tokens = 0
        self._spent = 0.0
        self._reserved = 0.0
        self._in_flight = 0
        self._estimate: float | None = None

    # admission -----------------------------------------------------------
    def _try_reserve(self) -> float | None:
        """The amount reserved, or ``None`` when the caller must wait; raises when over."""
        if self.budget is None:
            self._in_flight += 1
            return 0.0
        if self._estimate is None:
            if self._in_flight:
                return None
            if self._spent >= self.budget * (1 + _TOLERANCE) or self.budget <= 0:
                raise self._exceeded()
            self._in_flight += 1
            return 0.0
        amount = self._estimate
        limit = self.budget * (1 + _TOLERANCE)
        if self._spent + self._reserved + amount > limit:
            if self._in_flight and self._spent + amount <= limit:
                return None  # calls in flight may cost less than reserved: wait for them
            raise self._exceeded()
        self._in_flight += 1
        self._reserved += amount
        return amount

    def _exceeded(self) -> BudgetExceededError:
        self._rejected += 1
        assert self.budget is not None
        return BudgetExceededError(
            self.config_name, budget=self.budget, spent=self._spent, reserved=self._reserved
        )

    def reserve(self) -> float:
        """Admit one call (blocking while its cost cannot be told yet)."""
        with self._lock:
            if self.budget is None:  # every unbudgeted call: no further frame
                self._in_flight += 1
                return 0.0
            while True:
                amount = self._try_reserve()
                if amount is not None:
                    return amount
                self._waiting += 1
                try:
                    self._settled.wait(0.05)
                finally:
                    self._waiting -= 1

    async def areserve(self) -> float:
        """Admit one call without blocking the event loop."""
        import asyncio  # on first async use: importing it costs ~15 ms at start-up

        while True:
            with self._lock:
                amount = self._try_reserve()
            if amount is not None:
                return amount
            await asyncio.sleep(0.002)

    # settlement ----------------------------------------------------------
    def settle(self, reserved: float, usage: Usage | None, cost: float | None) -> None:
        """Book a finished call: its usage, its cost, and free its reservation."""
        with self._lock:
            self._calls += 1
            self._book(reserved, usage, cost)
            if cost is not None and (self._estimate is None or cost > self._estimate):
                self._estimate = cost

    def release(
        self, reserved: float, usage: Usage | None = None, cost: float | None = None
    ) -> None:
        """Book a failed or interrupted call: free its reservation, keep any usage it had."""
        with self._lock:
            self._errors += 1
            self._book(reserved, usage, cost)

    def refused(self, error: BaseException) -> None:
        """Count a call that ended before it was admitted (a budget refusal counts itself)."""
        if not isinstance(error, BudgetExceededError):
            with self._lock:
                self._errors += 1

    def _book(self, reserved: float, usage: Usage | None, cost: float | None) -> None:
        self._in_flight -= 1
        if reserved:
            self._reserved = max(0.0, self._reserved - reserved)
        if usage is not None:
            self._prompt_tokens += usage.prompt_tokens
            self._completion_tokens += usage.completion_tokens
            self._total_tokens += usage.total_tokens
        if cost:
            self._spent += cost
        if self._waiting:
            self._settled.notify_all()

    # reporting -----------------------------------------------------------
    @property
    def spent(self) -> float:
        return self._spent

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "config_name": self.config_name,
                "calls": self._calls,
                "errors": self._errors,
                "rejected": self._rejected,
                "prompt_tokens": self._prompt_tokens,
                "completion_tokens": self._completion_tokens,
                "total_tokens": self._total_tokens,
                "cost_usd": round(self._spent, 10),
                "budget_usd": self.budget,
                "remaining_usd": None
                if self.budget is None
                else max(0.0, self.budget - self._spent),
            }
