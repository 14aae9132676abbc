"""How the worker gathers a batch, timed against a real clock, without a model."""

from __future__ import annotations

import threading
import time

from modelwire_serving.jobs import Job
from modelwire_serving.params import SamplingParams
from modelwire_serving.worker import COLLECTION_WINDOWS, BatchWorker

GREEDY = SamplingParams(temperature=0.0).resolve(default_do_sample=False)


def _worker(window: float) -> BatchWorker:
    # _next_batch touches neither the model nor the prompter; the thread is never started.
    return BatchWorker(
        None,
        None,  # type: ignore[arg-type]
        eos_token_ids=frozenset(),
        pad_token_id=0,
        device="cpu",
        max_batch_size=8,
        batch_window=window,
    )


def _arrive(worker: BatchWorker, gaps: list[float]) -> threading.Thread:
    """Jobs arriving one by one, ``gaps`` seconds apart, as request threads queue them."""

    def run() -> None:
        for gap in gaps:
            time.sleep(gap)
            with worker._cond:
                worker._pending.append(Job([1], 4, GREEDY))
                worker._cond.notify_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_companions_arriving_one_by_one_share_a_batch() -> None:
    # Each arrives within a window of the one before, the last 0.36 s after the first:
    # a window counted from the first arrival alone (0.2 s) would split them 2 + 2.
    worker = _worker(0.2)
    arrivals = _arrive(worker, [0, 0.12, 0.12, 0.12])
    batch = worker._next_batch()
    arrivals.join()
    assert batch is not None and len(batch) == 4


def test_collecting_stops_after_a_few_windows() -> None:
    worker = _worker(0.1)
    arrivals = _arrive(worker, [0] + [0.06] * 11)  # a steady trickle, 0.66 s in all
    started = time.monotonic()
    batch = worker._next_batch()
    waited = time.monotonic() - started
    arrivals.join()
    assert batch is not None and 2 <= len(batch) < 12
    assert waited < COLLECTION_WINDOWS * 0.1 + 0.2


def test_a_full_batch_starts_at_once() -> None:
    worker = _worker(5.0)
    for _ in range(8):
        worker._pending.append(Job([1], 4, GREEDY))
    started = time.monotonic()
    batch = worker._next_batch()
    assert batch is not None and len(batch) == 8
    assert time.monotonic() - started < 1.0
