"""A generation request as the worker sees it, and how its thread waits for it.

Torch-free, so the HTTP layer and the tests can use it without loading a model.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelwire_serving.params import SamplingParams


class QueueFullError(Exception):
    """Too many requests are waiting; the client should retry later (HTTP 503)."""


class GenerationFailedError(Exception):
    """`generate` raised for this job's batch (HTTP 500, details in the server log)."""


@dataclass(frozen=True)
class Completion:
    """The finished text of one job and its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class Job:
    """One request as the worker sees it, plus the queue its thread waits on."""

    prompt_ids: list[int]
    max_new_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...] = ()
    stream: bool = False
    created: float = field(default_factory=time.monotonic)
    events: queue.SimpleQueue[tuple[str, object]] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    key: tuple[object, ...] = field(init=False)

    def __post_init__(self) -> None:
        # Computed once: seeded requests get a unique key, so it must not be recomputed.
        self.key = self.sampling.batch_key()

    def cancel(self) -> None:
        """The client went away: the worker drops the row at its next step."""
        self.cancelled = True

    def iter_events(self, timeout: float | None = None) -> Iterator[str | Completion]:
        """Text deltas (streaming jobs only), then the `Completion`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                kind, payload = self.events.get(timeout=remaining)
            except queue.Empty:
                self.cancel()
                raise TimeoutError("generation did not finish in time") from None
            if kind == "delta":
                yield str(payload)
            elif kind == "done" and isinstance(payload, Completion):
                yield payload
                return
            else:
                raise GenerationFailedError(str(payload))

    def result(self, timeout: float | None = None) -> Completion:
        """Wait for the finished text (a non-streaming request)."""
        for event in self.iter_events(timeout):
            if isinstance(event, Completion):
                return event
        raise GenerationFailedError("the worker ended the job without a result")
