"""One generation worker that batches concurrent requests dynamically.

Request threads tokenize their prompt, wrap it in a `Job` and wait on the
job's event queue. The worker thread owns the model: it collects the pending
jobs that share sampling settings (waiting a short window so that requests
arriving together travel together), left-pads them into one batch and runs a
single `generate`. A per-batch stopping criterion follows every row at each
step: it ends a row at its own end-of-sequence token, stop string or token
limit, hands the finished row's result to its waiting thread right away (the
request does not wait for the rest of the batch) and pushes text deltas to
streaming jobs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from modelwire_serving.jobs import Completion, GenerationFailedError, Job, QueueFullError
from modelwire_serving.prompts import Prompter

__all__ = [
    "BatchWorker",
    "Completion",
    "GenerationFailedError",
    "Job",
    "QueueFullError",
    "Row",
    "RowWriter",
]

logger = logging.getLogger("modelwire_serving")


@dataclass
class Row:
    """The worker's running state for one job inside a batch."""

    job: Job
    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0
    done: bool = False


class RowWriter:
    """Turns one row's new tokens into text deltas and a `Completion`.

    Shared by both schedulers, so end-of-sequence, stop strings, token limits
    and streaming behave the same whichever one runs a request.
    """

    def __init__(self, prompter: Prompter, eos_ids: frozenset[int]) -> None:
        self.prompter = prompter
        self.eos_ids = eos_ids

    def push(self, row: Row, token: int) -> None:
        """Add one generated token; finishes the row at EOS, a stop string or its limit."""
        if row.done:
            return
        if token in self.eos_ids:
            self.finish(row, "stop")
            return
        row.ids.append(token)
        if row.job.stream or row.job.stop:
            self._advance_text(row)
        if not row.done and len(row.ids) >= row.job.max_new_tokens:
            self.finish(row, "length")

    def _advance_text(self, row: Row) -> None:
        """Decode the row so far, apply stop strings and stream what is safe to send."""
        text = self.prompter.decode(row.ids)
        stops = row.job.stop
        if stops:
            cuts = [index for index in (text.find(stop) for stop in stops) if index >= 0]
            if cuts:
                row.text = text[: min(cuts)]
                self.finish(row, "stop")
                return
        row.text = text
        if not row.job.stream:
            return
        safe = len(text)
        while safe > row.sent and text[safe - 1] == "\ufffd":
            safe -= 1  # an incomplete multi-byte character: wait for the next token
        if stops:
            safe = min(safe, len(text) - max(len(stop) for stop in stops) + 1)
        if safe > row.sent:
            row.job.events.put(("delta", text[row.sent : safe]))
            row.sent = safe

    def finish(self, row: Row, reason: str) -> None:
        """Hand a row's result to its waiting thread."""
        if row.done:
            return
        row.done = True
        job = row.job
        # Rows that stream or watch stop strings keep their decoded text up to date.
        text = row.text if job.stream or job.stop else self.prompter.decode(row.ids)
        if job.stream and len(text) > row.sent:
            job.events.put(("delta", text[row.sent :]))
            row.sent = len(text)
        completion = Completion(text, len(job.prompt_ids), len(row.ids), reason)
        job.events.put(("done", completion))

    def fail(self, row: Row, message: str) -> None:
        """Hand an error to the row's waiting thread (it becomes a 500 with this message)."""
        if not row.done:
            row.done = True
            row.job.events.put(("error", message))


class _BatchController(StoppingCriteria):
    """Follows each row of a running `generate` and finishes rows independently."""

    def __init__(self, jobs: list[Job], prompter: Prompter, eos_ids: frozenset[int]) -> None:
        self.rows = [Row(job) for job in jobs]
        self.writer = RowWriter(prompter, eos_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        last = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, last, strict=True):
            if row.done:
                continue
            if row.job.cancelled:
                self.writer.finish(row, "cancelled")
                continue
            self.writer.push(row, token)
        done = [row.done for row in self.rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def finish_all(self, reason: str) -> None:
        """Finish rows `generate` ended without our say (e.g. the model's own length limit)."""
        for row in self.rows:
            self.writer.finish(row, reason)

    def fail_all(self, message: str) -> None:
        for row in self.rows:
            self.writer.fail(row, message)


@dataclass
class WorkerStats:
    """Counters shown on /health, so batching can be observed from outside."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)


#: The longest a batch waits for companions, in collection windows (``batch_window``).
COLLECTION_WINDOWS = 4


class BatchWorker:
    """The single thread that runs the model, one dynamic batch at a time."""

    def __init__(
        self,
        model: Any,
        prompter: Prompter,
        *,
        eos_token_ids: frozenset[int],
        pad_token_id: int,
        device: str,
        max_batch_size: int = 8,
        batch_window: float = 0.01,
        max_queue: int = 256,
    ) -> None:
        self._model = model
        self._prompter = prompter
        self._eos = eos_token_ids
        self._pad = pad_token_id
        self._device = device
        self.max_batch_size = max(1, max_batch_size)
        self.batch_window = max(0.0, batch_window)
        self.max_queue = max_queue
        self._pending: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._last_batch_end = 0.0
        self._thread = threading.Thread(target=self._loop, name="generation-worker", daemon=True)
        self.stats = WorkerStats()
        self.failure: str | None = None
        #: Held while a batch runs, so nothing else uses the model at the same time (the
        #: continuous engine sets it to its pause): concurrent forward passes on one CPU
        #: model gave a later greedy batch wrong tokens, and torch's random generator is
        #: global, so a seeded sample must not share it with another sampler.
        self.model_guard: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext

    # -- request side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.failure is None

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._pending)

    def describe(self) -> dict[str, object]:
        """What /health adds about the scheduler."""
        return {"scheduler": "static"}

    def submit(self, job: Job) -> None:
        """Queue a job; its thread then waits on `job.iter_events()`."""
        with self._cond:
            if self._stopping or not self.alive:
                raise GenerationFailedError("the generation worker is not running")
            if len(self._pending) >= self.max_queue:
                raise QueueFullError(f"{len(self._pending)} requests are already waiting")
            self._pending.append(job)
            self.stats.requests += 1
            self._cond.notify_all()

    # -- worker side -------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                jobs = self._next_batch()
                if jobs is None:
                    return
                self._run_batch(jobs)
        except BaseException as exc:  # the worker must never die silently
            self.failure = repr(exc)
            logger.exception("generation worker stopped")
            with self._cond:
                for job in self._pending:
                    job.events.put(("error", "the generation worker stopped"))
                self._pending.clear()

    def _next_batch(self) -> list[Job] | None:
        """Wait for work, then gather compatible jobs while they keep coming.

        The window starts when the oldest job arrived or the previous batch
        ended, whichever is later: requests that queued during a batch start at
        once, while replies to the previous batch have a moment to come back
        as new requests and join. Each compatible arrival opens the window again
        (up to ``COLLECTION_WINDOWS`` windows in all): clients coming back from a
        batch arrive one by one, and under load the last of eight took longer
        than one 30 ms window, splitting the next batch into 6 + 2.
        """
        with self._cond:
            while True:
                self._pending = [job for job in self._pending if not job.cancelled]
                if self._pending or self._stopping:
                    break
                self._cond.wait()
            if not self._pending:
                return None
            start = max(self._pending[0].created, self._last_batch_end)
            latest = start + COLLECTION_WINDOWS * self.batch_window
            while not self._stopping:
                key = self._pending[0].key
                compatible = [job.created for job in self._pending if job.key == key]
                deadline = min(max(start, *compatible) + self.batch_window, latest)
                remaining = deadline - time.monotonic()
                if len(compatible) >= self.max_batch_size or remaining <= 0:
                    break
                self._cond.wait(remaining)
            key = self._pending[0].key
            batch: list[Job] = []
            rest: list[Job] = []
            for job in self._pending:
                if job.key == key and len(batch) < self.max_batch_size:
                    batch.append(job)
                else:
                    rest.append(job)
            self._pending = rest
            return batch

    def _run_batch(self, jobs: list[Job]) -> None:
        controller = _BatchController(jobs, self._prompter, self._eos)
        try:
            input_ids, attention_mask = self._left_pad(jobs)
            kwargs = self._generate_kwargs(jobs)
            with self.model_guard(), torch.inference_mode():
                if jobs[0].sampling.seed is not None:
                    torch.manual_seed(jobs[0].sampling.seed)
                self._model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    stopping_criteria=StoppingCriteriaList([controller]),
                    **kwargs,
                )
            controller.finish_all("length")
        except Exception:
            logger.exception("generation failed for a batch of %d", len(jobs))
            self.stats.failed_batches += 1
            controller.fail_all("generation failed; see the server log")
        finally:
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
            sizes = self.stats.batch_sizes
            sizes[len(jobs)] = sizes.get(len(jobs), 0) + 1
            self._last_batch_end = time.monotonic()

    def _left_pad(self, jobs: list[Job]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left padding keeps every prompt's last token in the last column."""
        width = max(len(job.prompt_ids) for job in jobs)
        input_ids = torch.full((len(jobs), width), self._pad, dtype=torch.long)
        attention_mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):
            length = len(job.prompt_ids)
            input_ids[row, width - length :] = torch.tensor(job.prompt_ids, dtype=torch.long)
            attention_mask[row, width - length :] = 1
        return input_ids.to(self._device), attention_mask.to(self._device)

    def _generate_kwargs(self, jobs: list[Job]) -> dict[str, Any]:
        sampling = jobs[0].sampling
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(job.max_new_tokens for job in jobs),
            "pad_token_id": self._pad,
            "eos_token_id": sorted(self._eos),
            "do_sample": bool(sampling.do_sample),
        }
        if sampling.do_sample:
            for name in ("temperature", "top_p", "top_k"):
                value = getattr(sampling, name)
                if value is not None:
                    kwargs[name] = value
        if sampling.repetition_penalty is not None:
            kwargs["repetition_penalty"] = sampling.repetition_penalty
        return kwargs
