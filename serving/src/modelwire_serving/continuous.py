"""Continuous batching on the engine transformers ships, behind the `BatchWorker` interface.

`model.init_continuous_batching()` returns a `ContinuousBatchingManager` that
runs its own generation thread: a request added with `add_request` joins the
running batch at the next step, and a finished request leaves it at once. This
module adapts it to what the HTTP layer expects of a worker (`submit(job)`,
`start`/`stop`, `alive`, `queued`, `stats`):

* at most `max_batch_size` requests are in the engines at once; the rest wait
  here, in arrival order, up to `max_queue` (then `QueueFullError`, a 503);
* a router thread per engine reads its results and turns each request's new
  tokens into text deltas and a `Completion` with the same `RowWriter` the
  static worker uses (end-of-sequence, stop strings, token limits);
* a stop string, a client that went away or a timeout cancels the request in
  the engine (`cancel_request` sends no final result, so the router finishes or
  drops the row itself) and frees its slot for the next waiting request;
* two engines share the model, one per kind of request, and take turns (one
  pauses while the other steps, so there is never more than one forward pass):
  greedy requests go to an arg-max engine (`do_sample=False`, no logits
  processors: what `transformers serve --continuous-batching` runs after a
  greedy first request), sampled ones to an engine with per-request
  temperature, top-k and top-p. The per-request processors sort the whole
  vocabulary twice per row and step (top-k, top-p): with 16 greedy requests
  sent through them as top-k 1 the engine did 1.4x fewer tokens/s on CPU than
  the arg-max engine (serving/README.md, "What matters for speed"). While both
  have requests in flight they alternate every `TURN_SECONDS`; an idle one
  hands over at once.

What the engine cannot do, the static `BatchWorker` does: a request with a
`repetition_penalty` or a `seed` (the engine has no per-request penalty and one
random generator for all rows), a temperature float32 cannot divide by, or
every request when an engine could not start for this model. (Greedy
requests with a seed stay on the engines: greedy ignores the seed.) Both
engines pause while a static batch runs: concurrent forward passes on one CPU model
gave a later greedy batch wrong tokens in a test, and both draw samples from
torch's one global random generator. The start-up log
says which, and the first request of each kind logs it again.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from modelwire_serving.jobs import GenerationFailedError, Job, QueueFullError
from modelwire_serving.loading import TextModel, log
from modelwire_serving.prompts import Prompter
from modelwire_serving.worker import BatchWorker, Row, RowWriter, WorkerStats

logger = logging.getLogger("modelwire_serving")

SCHEDULERS = ("continuous", "static")
#: Default `--max-batch-size` per scheduler: requests in flight (continuous) or per batch (static).
DEFAULT_MAX_BATCH_SIZE = {"continuous": 32, "static": 8}
#: KV-cache tokens per request slot by default (one request may use more while others use less).
KV_TOKENS_PER_SLOT = 512
#: Tokens per engine step: prompt tokens beyond this are prefilled over several steps.
#: 256 made answers of mixed lengths ~1.2x slower (serving/README.md, "What matters for speed").
MAX_BATCH_TOKENS = 2048
#: Tokens per KV-cache page; the engine takes 4 and up. transformers' default, 256, was behind
#: 32, 64 or 128 in 12 of 15 A/B pairs at 8 and 16 clients, and 32 led 8 of the 9 rows it ran
#: in (serving/README.md, "What matters for speed").
KV_PAGE_SIZE = 32
#: Temperatures the engine can divide float32 logits by without overflowing.
TEMPERATURE_RANGE = (1e-4, 1e4)
#: How often the router looks for cancelled jobs when no result arrives, in seconds.
POLL_SECONDS = 0.02
#: The two engines: greedy requests (arg-max) and sampled ones (per-request sampler).
LANES = ("greedy", "sampled")
#: While both engines have requests in flight, each runs this long before the other's turn.
TURN_SECONDS = 0.5
#: How often the turn keeper checks whether the other engine should run, in seconds.
TURN_POLL_SECONDS = 0.01
#: Model generation settings the engine's sampler cannot apply, with their no-op values.
UNSUPPORTED_MODEL_SETTINGS: dict[str, tuple[object, ...]] = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "typical_p": (None, 1.0),
    "min_p": (None, 0.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "encoder_repetition_penalty": (None, 1.0),
    "num_beams": (None, 1),
}


@dataclass(frozen=True)
class SamplerDefaults:
    """What `generate` would use for a sampling request that leaves a knob unset."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0

    @classmethod
    def of(cls, model: Any) -> SamplerDefaults:
        config = getattr(model, "generation_config", None)
        temperature = getattr(config, "temperature", None)
        top_k = getattr(config, "top_k", None)
        top_p = getattr(config, "top_p", None)
        return cls(
            temperature=float(temperature) if temperature is not None else 1.0,
            top_k=int(top_k) if top_k is not None else 50,
            top_p=float(top_p) if top_p is not None else 1.0,
        )


def unsupported_model_settings(model: Any) -> list[str]:
    """Generation-config settings that `generate` applies and the engine would not."""
    config = getattr(model, "generation_config", None)
    found = []
    for name, no_ops in UNSUPPORTED_MODEL_SETTINGS.items():
        value = getattr(config, name, None)
        if value not in no_ops:
            found.append(f"{name}={value!r}")
    return found


def fallback_reason(job: Job) -> str | None:
    """Why the engine cannot serve `job` exactly (it then goes to the static worker), or None."""
    sampling = job.sampling
    if sampling.repetition_penalty is not None:  # even 1.0: one simple rule to document
        return "repetition_penalty"
    if sampling.seed is not None and sampling.do_sample:  # greedy ignores the seed
        return "seed"
    if sampling.do_sample and sampling.temperature is not None:
        low, high = TEMPERATURE_RANGE
        if not low <= sampling.temperature <= high:
            return f"temperature outside {low:g}..{high:g}"
    return None


@dataclass
class ContinuousStats(WorkerStats):
    """`WorkerStats` as /health shows them, in continuous-batching terms.

    A "batch" is a busy period (from the engine picking up work while idle to it
    running dry); its size is the most requests it held at once.
    """

    fallback_requests: int = 0
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0


@dataclass
class _Flight:
    """A job inside an engine: its row, its request id, its engine and the tokens seen."""

    row: Row
    request_id: str
    lane: str
    seen: int = 0


def lane_of(job: Job) -> str:
    """Which engine serves `job`: the arg-max one for greedy requests, else the sampler."""
    return "sampled" if job.sampling.do_sample else "greedy"


class ContinuousWorker:
    """Runs jobs on transformers' continuous-batching engines; hands the rest to a `BatchWorker`."""

    def __init__(
        self,
        model: Any,
        prompter: Prompter,
        *,
        eos_token_ids: frozenset[int],
        fallback: BatchWorker,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE["continuous"],
        max_queue: int = 256,
        max_request_tokens: int = 4096 + 512,
        kv_cache_tokens: int | None = None,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        page_size: int = KV_PAGE_SIZE,
        engine_factory: Callable[[str], Any] | None = None,
    ) -> None:
        # `engine_factory(lane)` builds and starts the engine of a lane ("greedy" or
        # "sampled"); the default is transformers' own (tests pass stand-ins that need no model).
        self._engine_factory = engine_factory or self._start_engine
        self._model = model
        self._prompter = prompter
        self._eos = eos_token_ids
        self._writer = RowWriter(prompter, eos_token_ids)
        self.fallback = fallback
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue = max_queue
        self.max_request_tokens = max(1, max_request_tokens)
        self.kv_cache_tokens = kv_cache_tokens or max(
            self.max_batch_size * KV_TOKENS_PER_SLOT, self.max_request_tokens
        )
        self.max_batch_tokens = max_batch_tokens
        self.page_size = page_size
        self._defaults = SamplerDefaults.of(model)
        self._vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 1 << 20)
        self._lock = threading.Lock()
        self._waiting: deque[Job] = deque()
        self._flights: dict[str, _Flight] = {}
        self._lane_flights = dict.fromkeys(LANES, 0)
        self._next_id = 0
        self._stopping = threading.Event()
        self._engines: dict[str, Any] = {}
        self._routers: list[threading.Thread] = []
        self._turns = threading.Thread(target=self._take_turns, name="cb-turns", daemon=True)
        #: The pause this worker holds on the engine whose turn it is not.
        self._held: tuple[str, contextlib.AbstractContextManager[object]] | None = None
        self._busy_peak = 0
        self._warned: set[str] = set()
        #: Why the engines serve nothing (every request goes to the static worker), if so.
        self.engine_unavailable: str | None = None
        self.failure: str | None = None
        self.stats = ContinuousStats()

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the static worker, then the engines; an engine that fails leaves the static one."""
        self.fallback.start()
        unsupported = unsupported_model_settings(self._model)
        if unsupported:
            self.engine_unavailable = (
                "the model's generation config sets "
                + ", ".join(unsupported)
                + ", which continuous batching does not apply"
            )
        else:
            try:
                for lane in LANES:
                    self._engines[lane] = self._engine_factory(lane)
            except Exception as exc:  # any engine failure leaves the static worker in charge
                logger.debug("continuous batching failed to start", exc_info=True)
                self.engine_unavailable = f"the engine failed to start: {_one_line(exc)}"
                self._stop_engines(timeout=10)
        if self.engine_unavailable:
            log(
                f"Scheduler: static batches for every request: {self.engine_unavailable} "
                f"(up to {self.fallback.max_batch_size} requests per batch)"
            )
            return
        # The sampler waits while the arg-max engine runs: one forward pass at a time.
        self._hold("sampled")
        # A static batch pauses both engines: one model, one forward pass at a time.
        self.fallback.model_guard = self._pause_all
        for lane, engine in self._engines.items():
            router = threading.Thread(
                target=self._route, args=(lane, engine), name=f"cb-router-{lane}", daemon=True
            )
            self._routers.append(router)
            router.start()
        self._turns.start()
        log(
            f"Scheduler: continuous batching (transformers' engine, one arg-max engine for "
            f"greedy requests and one sampler for sampled ones, taking turns; up to "
            f"{self.max_batch_size} requests in flight, KV cache for {self.kv_cache_tokens} "
            f"tokens each in pages of {self.page_size}, up to {self.max_batch_tokens} tokens "
            f"a step, then up to {self.max_queue} waiting). Requests with "
            f"repetition_penalty or seed go to static batches of up to "
            f"{self.fallback.max_batch_size}, which support them."
        )

    def _start_engine(self, lane: str) -> Any:
        import torch
        from transformers import ContinuousBatchingConfig, GenerationConfig

        page = self.page_size
        if lane == "greedy":
            # No logits processors: the engine takes the arg-max of the logits.
            generation = GenerationConfig(
                do_sample=False, max_new_tokens=16, eos_token_id=sorted(self._eos)
            )
        else:
            generation = GenerationConfig(
                do_sample=True,
                # Non-default values, so the engine builds the per-request processors at all.
                temperature=0.7,
                top_k=50,
                top_p=0.9,
                max_new_tokens=16,
                eos_token_id=sorted(self._eos),
            )
        config = ContinuousBatchingConfig(
            page_size=page,
            num_blocks=math.ceil(self.kv_cache_tokens / page) + 1,
            max_batch_tokens=self.max_batch_tokens,
            max_requests_per_batch=self.max_batch_size,
            per_request_processors=lane == "sampled",
            drop_unsupported_processors=False,
        )
        engine = self._model.init_continuous_batching(
            generation_config=generation, continuous_batching_config=config
        )
        with torch.inference_mode():  # the engine's thread runs in the caller's mode
            engine.start()
        try:
            # The other engine is not running yet (the greedy one starts first and
            # only its own probe runs on it), so this probe has the model to itself.
            if lane == "sampled":
                with self._engines["greedy"].pause():
                    self._probe(engine, lane)
            else:
                self._probe(engine, lane)
        except Exception:
            engine.stop(block=True, timeout=10, hard_stop=True)
            raise
        return engine

    def _probe(self, engine: Any, lane: str) -> None:
        """One tiny request, so a model the engine cannot run is found before clients come."""
        prompt = self._prompter.encode_prompt("Hello") or [min(self._eos)]
        request_id = engine.add_request(
            prompt,
            request_id=f"probe-{lane}",
            max_new_tokens=2,
            eos_token_id=sorted(self._eos),
            **self._sampler(None, lane),
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            output = engine.get_result(timeout=1)
            if output is None:
                fatal = engine.background_thread_status.fatal_error
                if fatal is not None or not engine.is_running():
                    raise RuntimeError(str(fatal or "the generation thread stopped"))
                continue
            if output.request_id == request_id and output.is_finished():
                if output.error:
                    raise RuntimeError(output.error)
                return
        raise RuntimeError("the first request did not finish in 300 s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the engines (requests in flight get an error), the routers and the static worker."""
        self._stopping.set()
        if self._turns.is_alive():
            self._turns.join(timeout)
        self._release_held()
        self._stop_engines(timeout)
        for router in self._routers:
            if router.is_alive():
                router.join(timeout)
        with self._lock:
            for flight in self._flights.values():
                self._writer.fail(flight.row, "the server is shutting down")
            self._flights.clear()
            for job in self._waiting:
                job.events.put(("error", "the server is shutting down"))
            self._waiting.clear()
        self.fallback.stop(timeout)

    def _stop_engines(self, timeout: float) -> None:
        for engine in self._engines.values():
            try:
                engine.stop(block=True, timeout=timeout, hard_stop=True)
            except Exception:
                logger.exception("stopping a continuous-batching engine failed")

    @property
    def alive(self) -> bool:
        if self.engine_unavailable:
            return self.fallback.alive
        return (
            self.failure is None
            and all(router.is_alive() for router in self._routers)
            and self.fallback.alive
        )

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._waiting) + self.fallback.queued

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._flights)

    def describe(self) -> dict[str, object]:
        """What /health adds about the scheduler."""
        info: dict[str, object] = {
            "scheduler": "static" if self.engine_unavailable else "continuous",
            "running": self.running,
            "fallback_requests": self.stats.fallback_requests,
            "fallback_reasons": dict(self.stats.fallback_reasons),
            "cancelled": self.stats.cancelled,
        }
        if not self.engine_unavailable:
            info["engine"] = {
                "max_batch_tokens": self.max_batch_tokens,
                "kv_page_size": self.page_size,
                "kv_cache_tokens": self.kv_cache_tokens,
            }
        if self.engine_unavailable:
            info["continuous_unavailable"] = self.engine_unavailable
        return info

    # -- taking turns ----------------------------------------------------------------------

    def _hold(self, lane: str) -> None:
        """Pause `lane`'s engine (waits for it to finish its step) and remember the pause."""
        pause = self._engines[lane].pause()
        pause.__enter__()
        self._held = (lane, pause)

    def _release_held(self) -> None:
        if self._held is not None:
            _, pause = self._held
            self._held = None
            pause.__exit__(None, None, None)

    @contextlib.contextmanager
    def _pause_all(self) -> Iterator[None]:
        """Pause every engine, for a static batch."""
        with contextlib.ExitStack() as stack:
            for engine in self._engines.values():
                stack.enter_context(engine.pause())
            yield

    def _take_turns(self) -> None:
        """Let the paused engine run when the running one is idle or has had its turn."""
        since = time.monotonic()
        try:
            while not self._stopping.wait(TURN_POLL_SECONDS):
                held = self._held
                if held is None:
                    return
                waiting_lane = held[0]
                running_lane = "greedy" if waiting_lane == "sampled" else "sampled"
                with self._lock:
                    waiting_work = self._lane_flights[waiting_lane]
                    running_work = self._lane_flights[running_lane]
                if not waiting_work:
                    continue
                if running_work and time.monotonic() - since < TURN_SECONDS:
                    continue
                # Pause the running engine first (at the end of its step), then let the
                # other one go: the two never step at once.
                previous = held[1]
                self._hold(running_lane)
                previous.__exit__(None, None, None)
                since = time.monotonic()
        except BaseException as exc:  # the turn keeper must never die silently
            logger.exception("continuous-batching turn keeper stopped")
            self._engine_died(repr(exc))

    # -- request side --------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a job for an engine, or for the static worker if the engines cannot serve it."""
        reason = self.engine_unavailable and "continuous batching unavailable"
        reason = reason or fallback_reason(job)
        if reason:
            self._to_fallback(job, reason)
            return
        with self._lock:
            if self._stopping.is_set() or not self.alive:
                raise GenerationFailedError("the generation worker is not running")
            if len(self._waiting) >= self.max_queue:
                raise QueueFullError(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(job)
            self.stats.requests += 1
            self._admit_locked()

    def _to_fallback(self, job: Job, reason: str) -> None:
        self.fallback.submit(job)  # raises QueueFullError / GenerationFailedError itself
        with self._lock:
            self.stats.requests += 1
            self.stats.fallback_requests += 1
            reasons = self.stats.fallback_reasons
            reasons[reason] = reasons.get(reason, 0) + 1
            first = reason not in self._warned
            self._warned.add(reason)
        message = "a request with %s is served by a static batch (continuous batching cannot)"
        if first:
            logger.warning(message + "; later ones are logged at INFO", reason)
        else:
            logger.info(message, reason)

    def _sampler(self, job: Job | None, lane: str) -> dict[str, Any]:
        """Per-request sampler settings (none for the arg-max engine)."""
        if lane == "greedy":
            return {}
        if job is None or not job.sampling.do_sample:
            return {"temperature": 1.0, "top_k": 1, "top_p": 1.0}
        sampling, defaults = job.sampling, self._defaults
        top_k = sampling.top_k if sampling.top_k is not None else defaults.top_k
        return {
            "temperature": float(
                sampling.temperature if sampling.temperature is not None else defaults.temperature
            ),
            # top_k 0 means "no top-k filter" in `generate`.
            "top_k": int(top_k) if top_k and top_k > 0 else self._vocab,
            "top_p": float(sampling.top_p if sampling.top_p is not None else defaults.top_p),
        }

    def _admit_locked(self) -> None:
        """Move waiting jobs into their engine while there are free slots (lock held)."""
        while self._waiting and len(self._flights) < self.max_batch_size:
            job = self._waiting.popleft()
            if job.cancelled:
                continue
            if not self._flights:
                self.stats.batches += 1  # a busy period begins
                self._busy_peak = 0
            lane = lane_of(job)
            self._next_id += 1
            request_id = self._engines[lane].add_request(
                job.prompt_ids,
                request_id=f"{lane}-{self._next_id}",
                max_new_tokens=job.max_new_tokens,
                # Stop strings are matched on the decoded text after every token.
                streaming=job.stream or bool(job.stop),
                eos_token_id=sorted(self._eos),
                **self._sampler(job, lane),
            )
            if request_id is None:  # the engine refused it (stopping)
                job.events.put(("error", "the generation engine is not accepting requests"))
                continue
            self._flights[request_id] = _Flight(Row(job), request_id, lane)
            self._lane_flights[lane] += 1
            in_flight = len(self._flights)
            self.stats.largest_batch = max(self.stats.largest_batch, in_flight)
            if in_flight > self._busy_peak:
                sizes = self.stats.batch_sizes
                if self._busy_peak:
                    sizes[self._busy_peak] -= 1
                    if not sizes[self._busy_peak]:
                        del sizes[self._busy_peak]
                self._busy_peak = in_flight
                sizes[in_flight] = sizes.get(in_flight, 0) + 1

    def _land_locked(self, request_id: str) -> _Flight:
        """Take a flight out of the books (lock held)."""
        flight = self._flights.pop(request_id)
        self._lane_flights[flight.lane] -= 1
        return flight

    # -- the router threads (one per engine) --------------------------------------------

    def _route(self, lane: str, engine: Any) -> None:
        try:
            while not self._stopping.is_set():
                output = engine.get_result(timeout=POLL_SECONDS)
                if output is not None:
                    self._deliver(output)
                else:
                    fatal = engine.background_thread_status.fatal_error
                    if fatal is not None or not engine.is_running():
                        if not self._stopping.is_set():
                            self._engine_died(str(fatal or "the generation thread stopped"))
                        return
                self._drop_cancelled(lane)
        except BaseException as exc:  # a router must never die silently
            logger.exception("continuous-batching router stopped")
            self._engine_died(repr(exc))

    def _deliver(self, output: Any) -> None:
        with self._lock:
            flight = self._flights.get(output.request_id)
            if flight is None:  # cancelled or already finished on our side
                return
            row = flight.row
            if output.error:
                logger.error("continuous batching failed a request: %s", output.error)
                self.stats.failed_batches += 1
                self._writer.fail(row, "generation failed; see the server log")
            else:
                tokens = output.generated_tokens
                for token in tokens[flight.seen :]:
                    self._writer.push(row, int(token))
                    if row.done:
                        break
                flight.seen = len(tokens)
                if output.is_finished() and not row.done:
                    self._writer.finish(row, "length")
            if row.done:
                self._land_locked(output.request_id)
                if not output.is_finished():  # a stop string: the engine would go on
                    self._engines[flight.lane].cancel_request(output.request_id)
                self._admit_locked()

    def _drop_cancelled(self, lane: str) -> None:
        """Cancel the engine requests of clients that went away, and free their slots."""
        with self._lock:
            gone = [
                rid
                for rid, flight in self._flights.items()
                if flight.lane == lane and flight.row.job.cancelled
            ]
            for request_id in gone:
                flight = self._land_locked(request_id)
                self._engines[lane].cancel_request(request_id)
                self._writer.finish(flight.row, "cancelled")
                self.stats.cancelled += 1
            if gone or self._waiting:
                self._admit_locked()

    def _engine_died(self, message: str) -> None:
        logger.error("continuous-batching engine stopped: %s", message)
        with self._lock:
            self.failure = message
            for flight in self._flights.values():
                self._writer.fail(flight.row, "the generation engine stopped; see the server log")
            self._flights.clear()
            self._lane_flights = dict.fromkeys(LANES, 0)
            for job in self._waiting:
                job.events.put(("error", "the generation engine stopped; see the server log"))
            self._waiting.clear()


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def build_worker(
    args: argparse.Namespace, text: TextModel, prompter: Prompter
) -> BatchWorker | ContinuousWorker:
    """The worker `--scheduler` asks for, not yet started."""
    max_request_tokens = min(args.max_input_tokens + args.max_new_tokens, text.context_length)
    scheduler = getattr(args, "scheduler", "continuous")
    static_batch = args.max_batch_size if scheduler == "static" else None
    static = BatchWorker(
        text.model,
        prompter,
        eos_token_ids=text.eos_token_ids,
        pad_token_id=text.pad_token_id,
        device=text.device,
        max_batch_size=static_batch or DEFAULT_MAX_BATCH_SIZE["static"],
        batch_window=args.batch_window_ms / 1000,
        max_queue=args.max_queue,
    )
    if scheduler == "static":
        return static
    return ContinuousWorker(
        text.model,
        prompter,
        eos_token_ids=text.eos_token_ids,
        fallback=static,
        max_batch_size=args.max_batch_size,
        max_queue=args.max_queue,
        max_request_tokens=max_request_tokens,
        max_batch_tokens=getattr(args, "max_batch_tokens", None) or MAX_BATCH_TOKENS,
        page_size=getattr(args, "kv_page_size", None) or KV_PAGE_SIZE,
    )
