"""A fake DashScope: its native wire format, scripted on ``modelwire.testing.FakeServer``.

JSON replies for plain calls, SSE (``id:``/``event:``/``:HTTP_STATUS`` lines) when the
request carries ``X-DashScope-SSE: enable``, task submission + polling for images,
and errors as ``{"request_id", "code", "message"}`` bodies.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from modelwire.testing import FakeServer, RawEvent, Reply, Request

API = "/api/v1"
CHAT_PATH = f"{API}/services/aigc/text-generation/generation"
MULTIMODAL_PATH = f"{API}/services/aigc/multimodal-generation/generation"
EMBEDDING_PATH = f"{API}/services/embeddings/text-embedding/text-embedding"
IMAGE_PATH = f"{API}/services/aigc/text2image/image-synthesis"
TASK_PATH = f"{API}/tasks/{{task_id}}"

#: The DashScope code a gateway sends with each HTTP status.
STATUS_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "Model.NotExist",
    429: "Throttling.RateQuota",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "RequestTimeOut",
}


class DashScopeWire:
    """Scripts one ``FakeServer`` as DashScope; every method returns a route's replies."""

    _ids = itertools.count(1)

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.base_url = server.url + API

    # -- envelopes ----------------------------------------------------------------------
    @classmethod
    def request_id(cls) -> str:
        return f"req-{next(cls._ids):06d}"

    @classmethod
    def error_body(cls, code: str, message: str | None = None) -> dict[str, Any]:
        return {"request_id": cls.request_id(), "code": code, "message": message or code}

    @classmethod
    def error(
        cls,
        status: int,
        code: str | None = None,
        *,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An HTTP failure as DashScope sends it."""
        body = cls.error_body(code or STATUS_CODES.get(status, "InternalError"), message)
        return Reply.error(status, body, headers=headers)

    @classmethod
    def business_error(cls, code: str, message: str | None = None) -> Reply:
        """An HTTP 200 whose body reports a failure (DashScope's second error layer)."""
        return Reply.json(cls.error_body(code, message))

    # -- chat -----------------------------------------------------------------------------
    @staticmethod
    def chat_payload(text: str, usage: tuple[int, int], finish: str = "stop") -> dict[str, Any]:
        return {
            "request_id": DashScopeWire.request_id(),
            "output": {
                "choices": [
                    {"finish_reason": finish, "message": {"role": "assistant", "content": text}}
                ]
            },
            "usage": {
                "input_tokens": usage[0],
                "output_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }

    @staticmethod
    def sse_events(pieces: list[str], usage: tuple[int, int]) -> list[RawEvent]:
        """DashScope's incremental SSE: running usage on each event, ``"null"`` until the end."""
        events = []
        request_id = DashScopeWire.request_id()
        for index, piece in enumerate(pieces, 1):
            last = index == len(pieces)
            done = round(usage[1] * index / len(pieces))
            payload = {
                "output": {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": piece},
                            "finish_reason": "stop" if last else "null",
                        }
                    ]
                },
                "usage": {
                    "input_tokens": usage[0],
                    "output_tokens": done,
                    "total_tokens": usage[0] + done,
                },
                "request_id": request_id,
            }
            events.append(
                RawEvent(
                    f"id:{index}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(payload)}\n\n"
                )
            )
        return events

    @classmethod
    def message_reply(
        cls,
        message: dict[str, Any],
        usage: tuple[int, int] = (12, 5),
        finish: str = "stop",
        **usage_extra: Any,
    ) -> Reply:
        """A plain call's reply carrying ``message`` (tool calls, reasoning...) as given."""
        payload = cls.chat_payload("", usage, finish)
        payload["output"]["choices"][0]["message"] = {"role": "assistant", **message}
        payload["usage"].update(usage_extra)
        return Reply.json(payload)

    @classmethod
    def message_stream(
        cls,
        deltas: list[dict[str, Any]],
        usage: tuple[int, int] = (12, 5),
        finish: str = "stop",
    ) -> Reply:
        """An incremental SSE stream of these message deltas, the last one finishing."""
        request_id = cls.request_id()
        events = []
        for index, delta in enumerate(deltas, 1):
            last = index == len(deltas)
            payload = {
                "output": {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": "", **delta},
                            "finish_reason": finish if last else "null",
                        }
                    ]
                },
                "usage": {
                    "input_tokens": usage[0],
                    "output_tokens": usage[1] if last else 0,
                    "total_tokens": usage[0] + (usage[1] if last else 0),
                },
                "request_id": request_id,
            }
            events.append(
                RawEvent(
                    f"id:{index}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(payload)}\n\n"
                )
            )
        return Reply.sse(events, headers={"Content-Type": "text/event-stream;charset=UTF-8"})

    @classmethod
    def sse_error(cls, status: int, code: str, message: str = "failed") -> RawEvent:
        body = json.dumps(cls.error_body(code, message))
        return RawEvent(f"id:1\nevent:error\n:HTTP_STATUS/{status}\ndata:{body}\n\n")

    def chat(
        self,
        text: str = "Hello from Qwen",
        usage: tuple[int, int] = (12, 5),
        *,
        path: str = CHAT_PATH,
        pieces: int = 3,
    ) -> None:
        """Answer chat calls with ``text``: JSON, or SSE when the request asks for it."""
        size = max(1, -(-len(text) // pieces))
        parts = [text[i : i + size] for i in range(0, len(text), size)]

        def respond(request: Request) -> Reply:
            if request.header("x-dashscope-sse") == "enable":
                return Reply.sse(
                    self.sse_events(parts, usage),
                    headers={"Content-Type": "text/event-stream;charset=UTF-8"},
                )
            return Reply.json(self.chat_payload(text, usage))

        self.server.route("POST", path, respond)

    # -- embeddings -------------------------------------------------------------------------
    @staticmethod
    def vector(text: str, dimension: int = 4) -> list[float]:
        """A vector a test can trace back to its text."""
        return [float(len(text)), float(sum(map(ord, text)) % 997)] + [0.5] * (dimension - 2)

    def embeddings(self, tokens_per_text: int = 3) -> None:
        def respond(request: Request) -> Reply:
            body = request.json()
            texts = body["input"]["texts"]
            dimension = int(body.get("parameters", {}).get("dimension", 4))
            items = [
                {"text_index": index, "embedding": self.vector(text, dimension)}
                for index, text in enumerate(texts)
            ]
            return Reply.json(
                {
                    "request_id": self.request_id(),
                    # Real replies are not guaranteed to be ordered: the index is.
                    "output": {"embeddings": list(reversed(items))},
                    "usage": {"total_tokens": tokens_per_text * len(texts)},
                }
            )

        self.server.route("POST", EMBEDDING_PATH, respond)

    # -- image tasks ---------------------------------------------------------------------------
    def images(self, **kwargs: Any) -> ImageTasks:
        tasks = ImageTasks(**kwargs)
        self.server.route("POST", IMAGE_PATH, tasks.submit)
        self.server.route("GET", TASK_PATH, tasks.poll)
        return tasks


class ImageTasks:
    """DashScope's async task service: each submission is a task that runs for a few polls."""

    def __init__(
        self,
        *,
        running_polls: int = 1,
        final: str = "SUCCEEDED",
        code: str = "InvalidParameter",
        message: str = "the task failed",
        results: list[dict[str, Any]] | None = None,
    ) -> None:
        self.running_polls = running_polls
        self.final = final
        self.code = code
        self.message = message
        self.results = results
        self.polls: dict[str, int] = {}
        self.submissions: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @staticmethod
    def urls(prompt: str, n: int) -> list[str]:
        """Result URLs a test can trace back to the prompt, whichever task made them."""
        slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
        return [f"https://dashscope-result.example/{slug}/{i}.png" for i in range(n)]

    def submit(self, request: Request) -> Reply:
        body = request.json()
        with self._lock:
            task_id = f"task-{len(self.submissions) + 1}"
            self.submissions.append(body)
            self.polls[task_id] = 0
        if request.header("x-dashscope-async") != "enable":
            return DashScopeWire.error(
                403, "AccessDenied", message="current user api does not support synchronous calls"
            )
        return Reply.json(
            {
                "request_id": DashScopeWire.request_id(),
                "output": {"task_id": task_id, "task_status": "PENDING"},
            }
        )

    def poll(self, request: Request) -> Reply:
        task_id = request.params["task_id"]
        with self._lock:
            if task_id not in self.polls:
                return Reply.json(
                    {
                        "request_id": DashScopeWire.request_id(),
                        "output": {"task_id": task_id, "task_status": "UNKNOWN"},
                    }
                )
            self.polls[task_id] += 1
            count = self.polls[task_id]
            submitted = self.submissions[int(task_id.split("-")[1]) - 1]
        output: dict[str, Any] = {"task_id": task_id, "task_status": "RUNNING"}
        usage = None
        if count > self.running_polls:
            output["task_status"] = self.final
            if self.final == "SUCCEEDED":
                results = self.results
                if results is None:
                    n = int(submitted.get("parameters", {}).get("n", 1))
                    results = [{"url": url} for url in self.urls(submitted["input"]["prompt"], n)]
                output["results"] = results
                usage = {"image_count": sum(1 for r in results if "url" in r)}
            elif self.final == "FAILED":
                output.update(code=self.code, message=self.message)
        payload: dict[str, Any] = {"request_id": DashScopeWire.request_id(), "output": output}
        if usage:
            payload["usage"] = usage
        return Reply.json(payload)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def wire(server: FakeServer) -> DashScopeWire:
    return DashScopeWire(server)


@pytest.fixture
def wire_type() -> type[DashScopeWire]:
    """The fake-service class, for test classes whose hooks receive only the server."""
    return DashScopeWire
