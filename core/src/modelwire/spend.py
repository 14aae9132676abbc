"""Usage and spend of one config, and the budget that admits or refuses its calls.

A budget is a hard cap. Before a call is sent it reserves its worst case: the
most tokens its prompt can be (one per UTF-8 byte of the request's text, plus a
little per message) and its output cap (``max_tokens`` and its kin, or the
model type's default cap), at the config's prices. A call is admitted only if
the spend so far plus every reservation in flight plus its own fits the budget;
when it does not fit but calls in flight may still settle below what they
reserved, it waits for them. A finished call settles to its real cost; a call
whose reply reports no usage (or a stream abandoned before its usage arrived) is
charged its reservation, so nothing is free.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from modelwire.errors import BudgetExceededError
from modelwire.response import Usage

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "OUTPUT_CAP_KEYS",
    "Pricing",
    "PricingConfig",
    "SpendTracker",
    "output_token_cap",
    "prompt_token_bound",
]

_TOLERANCE = 1e-9

#: Request keys that cap a call's output tokens, as the SDKs name them.
OUTPUT_CAP_KEYS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "max_new_tokens",
        "max_output_tokens",
        "maxOutputTokens",
        "num_predict",
        "max_length",
    }
)
#: Tokens counted for one inline image or file (a data URL or bytes): what the
#: services charge for one image is in the hundreds to low thousands.
MEDIA_TOKENS = 2_000
#: Tokens counted for each message or other container: role markers and separators.
CONTAINER_TOKENS = 4


def prompt_token_bound(value: Any) -> int:
    """At most how many tokens ``value`` (a request) can be as a prompt.

    Byte-level tokenizers never make more tokens than UTF-8 bytes, so every string
    counts its bytes; each dict or list adds a few tokens for the markers a chat
    template puts around a message; inline media counts ``MEDIA_TOKENS``.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith("data:"):
                total += MEDIA_TOKENS
            else:
                total += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            total += MEDIA_TOKENS
        elif isinstance(item, Mapping):
            total += CONTAINER_TOKENS
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += CONTAINER_TOKENS
            stack.extend(item)
        else:
            to_dict = getattr(item, "model_dump", None) or getattr(item, "to_dict", None)
            if callable(to_dict):
                stack.append(to_dict())
            elif item is not None and not isinstance(item, (int, float, bool)):
                total += len(str(item).encode("utf-8", "surrogatepass"))
    return total


def output_token_cap(value: Any) -> int | None:
    """The largest output cap set anywhere in a request, or ``None`` when it sets none.

    A cap of zero or less (Ollama's ``num_predict: -1`` means "no limit") is no cap.
    """
    found: int | None = None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if key in OUTPUT_CAP_KEYS and isinstance(sub, int) and not isinstance(sub, bool):
                    if sub <= 0:
                        return None
                    found = sub if found is None else max(found, sub)
                elif isinstance(sub, (Mapping, list, tuple)) or hasattr(sub, "model_dump"):
                    stack.append(sub)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            to_dict = getattr(item, "model_dump", None)
            if callable(to_dict):
                stack.append(to_dict())
    return found


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
        return self.cost_of_tokens(usage.prompt_tokens, usage.completion_tokens)

    def cost_of_tokens(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1000


class SpendTracker:
    """Thread- and task-safe counters of one config, with its budget."""

    def __init__(self, config_name: str, budget: float | None = None) -> None:
        self.config_name = config_name
        self.budget = None if budget is None else float(budget)
        self._lock = threading.RLock()
        self._settled = threading.Condition(self._lock)
        self._waiting = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._calls = 0
        self._errors = 0
        self._rejected = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._total_tokens = 0
        #: Parts of the counts above, summed over the calls whose service reported them.
        self._reasoning_tokens: int | None = None
        self._cached_tokens: int | None = None
        self._spent = 0.0
        self._reserved = 0.0
        self._in_flight = 0

    # admission -----------------------------------------------------------
    def _try_reserve(self, amount: float) -> bool:
        """Whether the call was admitted (``False``: wait for calls in flight); raises
        ``BudgetExceededError`` when it cannot fit even once they settle."""
        if self.budget is None:
            self._in_flight += 1
            return True
        limit = self.budget * (1 + _TOLERANCE)
        if self._spent + self._reserved + amount > limit:
            if self._in_flight and self._spent + amount <= limit:
                return False  # calls in flight may cost less than they reserved
            raise self._exceeded(amount)
        self._in_flight += 1
        self._reserved += amount
        return True

    def _exceeded(self, amount: float) -> BudgetExceededError:
        self._rejected += 1
        assert self.budget is not None
        return BudgetExceededError(
            self.config_name,
            budget=self.budget,
            spent=self._spent,
            reserved=self._reserved,
            needed=amount,
        )

    def reserve(self, amount: float = 0.0) -> float:
        """Admit one call that may cost up to ``amount``, blocking while calls in flight
        settle; returns the amount reserved."""
        with self._lock:
            while not self._try_reserve(amount):
                self._waiting += 1
                try:
                    self._settled.wait()
                finally:
                    self._waiting -= 1
        return amount if self.budget is not None else 0.0

    async def areserve(self, amount: float = 0.0) -> float:
        """``reserve`` without blocking the event loop: waits on a future that the
        settlement of a call in flight (in any thread or loop) resolves."""
        import asyncio

        while True:
            with self._lock:
                if self._try_reserve(amount):
                    return amount if self.budget is not None else 0.0
                loop = asyncio.get_running_loop()
                waiter = (loop, loop.create_future())
                self._async_waiters.append(waiter)
            try:
                await waiter[1]
            finally:
                with self._lock:
                    if waiter in self._async_waiters:
                        self._async_waiters.remove(waiter)

    # settlement ----------------------------------------------------------
    def settle(self, reserved: float, usage: Usage | None, cost: float | None) -> None:
        """Book a finished call and free its reservation. Without usage the call is
        charged what it reserved: a reply that reports nothing is not free."""
        with self._lock:
            self._calls += 1
            self._book(reserved, usage, reserved if usage is None else cost)

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
        if not self._in_flight:
            self._reserved = 0.0  # exactly: subtracting floats leaves dust
        elif reserved:
            self._reserved = max(0.0, self._reserved - reserved)
        if usage is not None:
            self._prompt_tokens += usage.prompt_tokens
            self._completion_tokens += usage.completion_tokens
            self._total_tokens += usage.total_tokens
            if usage.reasoning_tokens is not None:
                self._reasoning_tokens = (self._reasoning_tokens or 0) + usage.reasoning_tokens
            if usage.cached_tokens is not None:
                self._cached_tokens = (self._cached_tokens or 0) + usage.cached_tokens
        if cost:
            self._spent += cost
        if self._waiting:
            self._settled.notify_all()
        for loop, future in self._async_waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop has closed: its waiter is gone
                pass
        self._async_waiters.clear()

    # reporting -----------------------------------------------------------
    @property
    def spent(self) -> float:
        return self._spent

    @property
    def reserved(self) -> float:
        """What calls in flight have reserved and not yet settled."""
        return self._reserved

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts: dict[str, Any] = {
                "config_name": self.config_name,
                "calls": self._calls,
                "errors": self._errors,
                "rejected": self._rejected,
                "prompt_tokens": self._prompt_tokens,
                "completion_tokens": self._completion_tokens,
                "total_tokens": self._total_tokens,
            }
            if self._reasoning_tokens is not None:
                counts["reasoning_tokens"] = self._reasoning_tokens
            if self._cached_tokens is not None:
                counts["cached_tokens"] = self._cached_tokens
            counts["cost_usd"] = round(self._spent, 10)
            counts["budget_usd"] = self.budget
            counts["remaining_usd"] = (
                None if self.budget is None else max(0.0, self.budget - self._spent)
            )
            return counts


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
