"""``dashscope_image_synthesis``: text-to-image (Wanx) as an asynchronous DashScope task.

DashScope answers a submission with a task id. The wrapper polls ``/tasks/{id}``
with exponential backoff (``poll_interval``, doubling up to ``max_poll_interval``)
until the task finishes or ``wait_timeout`` seconds have passed. The submission and
the polls are one attempt of the call, so ``timeout`` (the attempt's deadline) bounds
all of them together; a config that sets none gets ``wait_timeout`` + 120 s. A failed
poll is retried in place (up to ``retry.max_retries`` in a row) rather than by the
core, which would submit, and pay for, a second task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelwire import (
    ConfigIssue,
    ModelResponse,
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    ResponseParseError,
)
from modelwire_dashscope.client import DashScopeWrapper
from modelwire_dashscope.errors import error_for_code, map_error

if TYPE_CHECKING:
    from dashscope.v2.resources._jobs import Job

__all__ = ["NAMED_ARGS", "DashScopeImageSynthesisWrapper"]

#: ``generate_args`` keys the SDK places itself (``negative_prompt`` belongs in the
#: task's ``input``); every other key is sent in ``parameters`` as it is.
NAMED_ARGS = (
    "negative_prompt",
    "n",
    "size",
    "seed",
    "style",
    "prompt_extend",
    "watermark",
    "image_urls",
    "extra_input",
    "function",
)
SUCCEEDED, FAILED, CANCELED, UNKNOWN = "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"
#: The longest poll setting: a day, like the core's longest ``timeout``.
_MAX_SECONDS = 86_400.0


class DashScopeImageSynthesisWrapper(DashScopeWrapper):
    """Generate images from a prompt; returns their (temporary) URLs."""

    model_type = "dashscope_image_synthesis"
    default_output_cap = 0  # generates no tokens: a budget reserves the input only

    def __init__(
        self,
        config_name: str,
        *,
        poll_interval: float = 1.0,
        max_poll_interval: float = 8.0,
        wait_timeout: float = 300.0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("timeout") is None:
            # One attempt is the submission and every poll: the attempt's deadline
            # (`timeout`) must leave the task its `wait_timeout`.
            kwargs["timeout"] = float(wait_timeout) + self.default_timeout
        super().__init__(config_name, **kwargs)
        self.poll_interval = float(poll_interval)
        # A slow poll_interval alone raises the ceiling rather than being an error.
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.wait_timeout = float(wait_timeout)

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        issues = super().validate_params(params)
        for key in ("poll_interval", "max_poll_interval", "wait_timeout"):
            value = params.get(key)
            if value is not None and not 0 < value <= _MAX_SECONDS:
                issues.append(
                    ConfigIssue(
                        "?", key, f"must be a positive number of seconds, at most {_MAX_SECONDS:g}"
                    )
                )
        low, high = params.get("poll_interval", 1.0), params.get("max_poll_interval")
        if high is not None and 0 < high < low:
            issues.append(
                ConfigIssue("?", "max_poll_interval", f"must not be below poll_interval ({low})")
            )
        return issues

    def _arguments(self, overrides: dict[str, Any]) -> dict[str, Any]:
        merged = {**self.generate_args, **overrides}
        arguments = {key: merged.pop(key) for key in NAMED_ARGS if key in merged}
        if merged:
            arguments["parameters"] = merged
        return arguments

    # -- the provider step: submit the task, then poll it until it ends ----------------
    def _request(self, prompt: str, **kwargs: Any) -> dict[str, Any]:
        return {"prompt": prompt, **self._arguments(kwargs)}

    def _send(self, request: dict[str, Any]) -> Job:
        jobs = self.clients.sync.images.jobs
        job = jobs.create(model=self.model_name, **request)
        polling = _Polling(self, job)
        while not polling.finished(job):
            time.sleep(polling.next_delay(job))
            try:
                job = jobs.fetch(polling.task_id)
            except Exception as exc:
                if _task_failed(exc):
                    raise
                polling.tolerate(exc)
            else:
                polling.failures = 0
        return job

    async def _asend(self, request: dict[str, Any]) -> Job:
        import asyncio

        jobs = self.clients.async_.images.jobs
        job = await jobs.create(model=self.model_name, **request)
        polling = _Polling(self, job)
        while not polling.finished(job):
            await asyncio.sleep(polling.next_delay(job))
            try:
                job = await jobs.fetch(polling.task_id)
            except Exception as exc:
                if _task_failed(exc):
                    raise
                polling.tolerate(exc)
            else:
                polling.failures = 0
        return job

    def _parse(self, job: Job, request: dict[str, Any]) -> ModelResponse:
        raw = job.model_dump(mode="json", exclude={"headers"})
        failed = [result.model_dump(exclude_none=True) for result in job.results if not result.url]
        urls = job.image_urls
        if not urls:
            first = failed[0] if failed else {}
            raise error_for_code(
                first.get("code"),
                f"image task {job.task_id} produced no image: {first.get('message', 'no results')}",
                body=json.dumps(raw, ensure_ascii=False),
            )
        return ModelResponse(
            image_urls=urls,
            raw=raw,
            model_name=self.model_name,
            extra={"task_id": job.task_id, "failed_results": failed},
        )


class _Polling:
    """Backoff, deadline and tolerance of transient failures while one task runs."""

    def __init__(self, wrapper: DashScopeImageSynthesisWrapper, job: Job) -> None:
        if not job.task_id:
            raise ResponseParseError("DashScope's answer to the submission holds no task_id")
        self.wrapper = wrapper
        self.task_id = job.task_id
        self.deadline = time.monotonic() + wrapper.wait_timeout
        self.interval = wrapper.poll_interval
        self.failures = 0

    def finished(self, job: Job) -> bool:
        """Whether the task succeeded; raises for a task that ended any other way."""
        if job.status == SUCCEEDED:
            return True
        if job.status == CANCELED:
            raise ProviderError(f"image task {self.task_id} was canceled on DashScope")
        if job.status == UNKNOWN:
            raise ProviderError(
                f"image task {self.task_id} is UNKNOWN to DashScope: it expired, or belongs"
                " to another API key or workspace"
            )
        return False

    def next_delay(self, job: Job) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ModelTimeoutError(
                f"image task {self.task_id} did not finish within wait_timeout="
                f"{self.wrapper.wait_timeout:g}s (last status {job.status or '?'});"
                " it may still be running on DashScope"
            )
        delay = min(self.interval, remaining)
        self.interval = min(self.interval * 2, self.wrapper.max_poll_interval)
        return delay

    def tolerate(self, exc: Exception) -> None:
        """Keep polling after a transient failure; raise once retries are spent."""
        error = exc if isinstance(exc, ModelWireError) else map_error(exc)
        if error is None:
            error = ProviderError(f"unexpected {type(exc).__name__}: {exc}")
        transient = isinstance(error, ModelTimeoutError) or getattr(error, "retryable", False)
        if transient and self.failures < self.wrapper.retry_policy.max_retries:
            self.failures += 1
            return
        if isinstance(error, ProviderError):
            # The task exists: retrying the call would submit and pay for another one.
            error.retryable = False
            error.message = (
                f"polling image task {self.task_id} failed (it may still run on DashScope):"
                f" {error.message}"
            )
        if error is exc:
            raise error
        raise error from exc


def _task_failed(exc: Exception) -> bool:
    """Whether the SDK raised because the task itself reports FAILED."""
    body = getattr(exc, "body", None)
    output = body.get("output") if isinstance(body, dict) else None
    return isinstance(output, dict) and output.get("task_status") == FAILED
