"""What the HTTP routes call: prompt checks, job submission, embeddings.

Keeps the routes about HTTP and the worker about batching; the length caps
and the mapping from a validated request to a worker `Job` live here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelwire_serving.errors import RequestError
from modelwire_serving.jobs import Job
from modelwire_serving.params import GenerationOptions, resolve_max_new_tokens

if TYPE_CHECKING:
    from modelwire_serving.continuous import ContinuousWorker
    from modelwire_serving.embeddings import Embedder
    from modelwire_serving.prompts import Prompter
    from modelwire_serving.worker import BatchWorker


@dataclass(frozen=True)
class Limits:
    """Caps that protect the server from oversized requests."""

    max_new_tokens: int = 512
    max_input_tokens: int = 4096
    max_body_bytes: int = 1 << 20
    request_timeout: float = 600.0


@dataclass
class Service:
    """The loaded models and settings shared by all request threads."""

    model_name: str
    prompter: Prompter
    worker: BatchWorker | ContinuousWorker
    limits: Limits
    context_length: int
    default_do_sample: bool
    device: str
    embedder: Embedder | None = None
    api_key: str | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.time()

    def submit(
        self,
        inputs: str | list[dict[str, str]],
        options: GenerationOptions,
        *,
        stream: bool = False,
    ) -> Job:
        """Tokenize, enforce the caps and queue one generation job."""
        sampling = options.sampling.resolve(self.default_do_sample)
        if isinstance(inputs, str):
            prompt_ids = self.prompter.encode_prompt(inputs)
        else:
            prompt_ids = self.prompter.encode_messages(inputs)
        if not prompt_ids:
            raise RequestError("the prompt is empty after tokenization")
        limit = self.limits.max_input_tokens
        if len(prompt_ids) > limit:
            raise RequestError(
                f"the prompt is {len(prompt_ids)} tokens; this server accepts at most "
                f"{limit} (--max-input-tokens)"
            )
        max_new = resolve_max_new_tokens(
            options, len(prompt_ids), self.limits.max_new_tokens, self.context_length
        )
        job = Job(
            prompt_ids=prompt_ids,
            max_new_tokens=max_new,
            sampling=sampling,
            stop=options.stop,
            stream=stream,
        )
        self.worker.submit(job)
        return job
