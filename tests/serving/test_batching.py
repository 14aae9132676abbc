"""How the workers schedule requests, without a model.

The static worker's batch gathering is timed against a real clock; the continuous
worker runs on a stand-in for transformers' engine that the tests drive.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from modelwire_serving.continuous import ContinuousWorker
from modelwire_serving.jobs import Job, QueueFullError
from modelwire_serving.params import SamplingParams
from modelwire_serving.prompts import Prompter
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


# -- the continuous scheduler's bookkeeping, on a stand-in engine ----------------------


class _Tokenizer:
    """One character per token id."""

    chat_template = None

    def __call__(self, text: str, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(input_ids=[ord(c) for c in text])

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


class _Engine:
    """Records what the worker asks of transformers' manager; the test plays its results."""

    def __init__(self, name: str = "greedy") -> None:
        self.name = name
        self.added: list[tuple[str, dict[str, Any]]] = []
        self.cancelled: list[str] = []
        self.results: queue.Queue[SimpleNamespace] = queue.Queue()
        self.background_thread_status = SimpleNamespace(fatal_error=None)
        self.paused = 0
        self.log: list[str] = []  # "pause" / "resume", shared between engines by a test

    def add_request(self, input_ids: list[int], **kwargs: Any) -> str:
        request_id = f"req_{len(self.added)}"
        self.added.append((request_id, kwargs))
        return request_id

    def cancel_request(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    def get_result(self, timeout: float | None = None) -> SimpleNamespace | None:
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            return None

    def is_running(self) -> bool:
        return True

    def stop(self, **_: Any) -> None:
        pass

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        self.paused += 1
        self.log.append(f"pause {self.name}")
        try:
            yield
        finally:
            self.paused -= 1
            self.log.append(f"resume {self.name}")

    def play(self, request_id: str, text: str, finished: bool) -> None:
        tokens = [ord(c) for c in text]
        self.results.put(
            SimpleNamespace(
                request_id=request_id,
                generated_tokens=tokens,
                error=None,
                is_finished=lambda: finished,
            )
        )


class _StaticStandIn:
    """Takes the jobs the continuous worker hands over."""

    alive = True
    queued = 0
    max_batch_size = 8

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def submit(self, job: Job) -> None:
        self.jobs.append(job)


def _continuous(
    engine: _Engine | None,
    model: Any = None,
    sampled: _Engine | None = None,
    **kwargs: Any,
) -> tuple[ContinuousWorker, _StaticStandIn]:
    """A worker on stand-in engines: `engine` for greedy requests, `sampled` for sampled ones."""
    static = _StaticStandIn()
    engines = {"greedy": engine, "sampled": sampled or _Engine("sampled")}
    worker = ContinuousWorker(
        model,
        Prompter(_Tokenizer()),
        eos_token_ids=frozenset({0}),
        fallback=static,  # type: ignore[arg-type]
        engine_factory=lambda lane: engines[lane],
        **kwargs,
    )
    worker.start()
    return worker, static


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_requests_past_the_slots_wait_and_past_the_queue_get_refused() -> None:
    engine = _Engine()
    worker, _ = _continuous(engine, max_batch_size=2, max_queue=1)
    try:
        jobs = [Job([65], 4, GREEDY) for _ in range(3)]
        for job in jobs:
            worker.submit(job)
        assert [rid for rid, _ in engine.added] == ["req_0", "req_1"]  # two slots
        assert worker.queued == 1
        with pytest.raises(QueueFullError):
            worker.submit(Job([65], 4, GREEDY))
        engine.play("req_0", "ok\x00", finished=True)  # a finished row leaves at once...
        assert jobs[0].result(timeout=5).text == "ok"
        assert _wait_for(lambda: len(engine.added) == 3)  # ...and the waiting one joins
        assert worker.queued == 0
    finally:
        worker.stop()


def test_a_cancelled_job_is_cancelled_in_the_engine_and_frees_its_slot() -> None:
    engine = _Engine()
    worker, _ = _continuous(engine, max_batch_size=1)
    try:
        first, second = Job([65], 8, GREEDY, stream=True), Job([66], 8, GREEDY)
        worker.submit(first)
        worker.submit(second)
        assert len(engine.added) == 1
        first.cancel()  # the client went away
        assert _wait_for(lambda: engine.cancelled == ["req_0"])
        assert _wait_for(lambda: [rid for rid, _ in engine.added] == ["req_0", "req_1"])
        assert worker.describe()["cancelled"] == 1
    finally:
        worker.stop()


def test_a_stop_string_ends_the_engine_request() -> None:
    engine = _Engine()
    worker, _ = _continuous(engine)
    try:
        job = Job([65], 20, GREEDY, stop=("##",))
        worker.submit(job)
        assert engine.added[0][1]["streaming"] is True  # so every token is seen
        engine.play("req_0", "abc", finished=False)
        engine.play("req_0", "abc#", finished=False)
        engine.play("req_0", "abc##de", finished=False)
        completion = job.result(timeout=5)
        assert (completion.text, completion.finish_reason) == ("abc", "stop")
        assert _wait_for(lambda: engine.cancelled == ["req_0"])
    finally:
        worker.stop()


def test_each_request_carries_its_own_sampler_settings() -> None:
    greedy, sampler = _Engine(), _Engine("sampled")
    model = SimpleNamespace(
        generation_config=SimpleNamespace(temperature=None, top_k=None, top_p=None),
        config=SimpleNamespace(vocab_size=1000),
    )
    worker, static = _continuous(greedy, model=model, sampled=sampler)
    try:
        sampled = SamplingParams(temperature=0.5, top_k=0).resolve(default_do_sample=False)
        worker.submit(Job([65], 4, GREEDY))
        worker.submit(Job([65], 4, sampled))
        worker.submit(Job([65], 4, SamplingParams(temperature=0.9, top_p=0.8).resolve(False)))
        settings = [
            (kwargs["temperature"], kwargs["top_k"], kwargs["top_p"]) for _, kwargs in sampler.added
        ]
        # top_k 0 means no top-k filter; unset knobs are generate's defaults.
        assert settings == [(0.5, 1000, 1.0), (0.9, 50, 0.8)]
        # The greedy request goes to the arg-max engine, with no sampler settings at all.
        assert len(greedy.added) == 1
        assert not {"temperature", "top_k", "top_p"} & set(greedy.added[0][1])
        assert static.jobs == []
    finally:
        worker.stop()


def test_what_the_engine_cannot_do_goes_to_the_static_worker() -> None:
    engine = _Engine()
    worker, static = _continuous(engine)
    try:
        penalty = Job(
            [65], 4, SamplingParams(temperature=0.0, repetition_penalty=1.2).resolve(False)
        )
        seeded = Job([65], 4, SamplingParams(temperature=0.7, seed=3).resolve(False))
        greedy_seeded = Job([65], 4, SamplingParams(temperature=0.0, seed=3).resolve(False))
        tiny = Job([65], 4, SamplingParams(do_sample=True, temperature=1e-9))  # past params' check
        for job in (penalty, seeded, greedy_seeded, tiny):
            worker.submit(job)
        assert static.jobs == [penalty, seeded, tiny]
        assert len(engine.added) == 1  # greedy ignores the seed
        info = worker.describe()
        assert info["fallback_requests"] == 3
        assert set(info["fallback_reasons"]) == {
            "repetition_penalty",
            "seed",
            "temperature outside 0.0001..10000",
        }
    finally:
        worker.stop()


def test_a_model_setting_the_engine_ignores_sends_everything_static(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = SimpleNamespace(generation_config=SimpleNamespace(repetition_penalty=1.1))
    worker, static = _continuous(None, model=model)
    try:
        job = Job([65], 4, GREEDY)
        worker.submit(job)
        assert static.jobs == [job]
        assert worker.describe()["scheduler"] == "static"
        assert "repetition_penalty=1.1" in capsys.readouterr().out  # said at start-up
    finally:
        worker.stop()


def test_an_engine_that_fails_to_start_leaves_the_static_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(lane: str) -> None:
        raise RuntimeError("paged attention is not supported here")

    static = _StaticStandIn()
    worker = ContinuousWorker(
        None,
        Prompter(_Tokenizer()),
        eos_token_ids=frozenset({0}),
        fallback=static,  # type: ignore[arg-type]
        engine_factory=broken,
    )
    worker.start()
    try:
        worker.submit(Job([65], 4, GREEDY))
        assert len(static.jobs) == 1 and worker.alive
        assert "paged attention is not supported here" in capsys.readouterr().out
    finally:
        worker.stop()


def test_the_two_engines_take_turns_and_never_run_at_once() -> None:
    greedy, sampler = _Engine(), _Engine("sampled")
    log: list[str] = []
    greedy.log = sampler.log = log
    worker, _ = _continuous(greedy, sampled=sampler)
    try:
        assert (greedy.paused, sampler.paused) == (0, 1)  # the sampler waits at first
        long_greedy = Job([65], 64, GREEDY)
        worker.submit(long_greedy)
        sampled = Job([66], 4, SamplingParams(temperature=0.8).resolve(False))
        worker.submit(sampled)
        # Both have work: the sampler gets its turn after the arg-max engine's.
        assert _wait_for(lambda: (greedy.paused, sampler.paused) == (1, 0))
        sampler.play(sampler.added[0][0], "ok\x00", finished=True)
        assert sampled.result(timeout=5).text == "ok"
        # The sampler is idle now: the arg-max engine runs again at once.
        assert _wait_for(lambda: (greedy.paused, sampler.paused) == (0, 1))
        # Each hand-over pauses the running engine before the waiting one resumes.
        assert log[1:] == ["pause greedy", "resume sampled", "pause sampled", "resume greedy"]
    finally:
        worker.stop()
