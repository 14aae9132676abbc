"""Gemini's REST wire format for the fake server: generateContent (JSON), its SSE stream,
batchEmbedContents and Google-style errors, as responders that answer from what the SDK sent.

The installed ``google-genai`` calls the Gemini API under ``/v1/`` (its default API
version); Vertex AI express mode goes under ``/v1beta1/publishers/google/``.
Test modules reach the helpers through the ``wire`` fixture (``--import-mode=importlib``
makes conftest modules unimportable by name).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelwire.testing import FakeServer, Reply, Request

GENERATE_PATH = "/v1/models/{model}:generateContent"
STREAM_PATH = "/v1/models/{model}:streamGenerateContent"
EMBED_PATH = "/v1/models/{model}:batchEmbedContents"

#: What the chat responders answer unless told otherwise, and its token counts.
REPLY_TEXT = "Hello there, how can I help?"
CHAT_USAGE = {"promptTokenCount": 7, "candidatesTokenCount": 6, "totalTokenCount": 13}

#: Settings of the developer's machine that would otherwise steer the SDK.
ENV_VARS = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_HTTP_CLIENT",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)

Responder = Callable[[Request], Reply]


@pytest.fixture(autouse=True)
def _clean_gemini_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own Google settings must not leak into (or rescue) a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


class GeminiWire:
    """Builders of Gemini payloads and responders that speak them."""

    generate_path = GENERATE_PATH
    stream_path = STREAM_PATH
    embed_path = EMBED_PATH
    reply_text = REPLY_TEXT
    chat_usage = CHAT_USAGE

    # -- generateContent -------------------------------------------------------------------
    @staticmethod
    def candidate(
        text: str | None = REPLY_TEXT,
        *,
        finish_reason: str | None = "STOP",
        safety_ratings: list[dict[str, Any]] | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts is None and text is not None:
            parts = [{"text": text}]
        if parts is not None:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish_reason:
            candidate["finishReason"] = finish_reason
        if safety_ratings is not None:
            candidate["safetyRatings"] = safety_ratings
        return candidate

    @classmethod
    def response(
        cls,
        text: str | None = REPLY_TEXT,
        *,
        usage: dict[str, int] | None = CHAT_USAGE,
        model_version: str = "gemini-pro-001",
        **candidate: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "candidates": [cls.candidate(text, **candidate)],
            "modelVersion": model_version,
            "responseId": "resp-1",
        }
        if usage is not None:
            payload["usageMetadata"] = usage
        return payload

    @classmethod
    def chat(cls, text: str = REPLY_TEXT, **kwargs: Any) -> Responder:
        """Answers generateContent; checks the request is well-formed Gemini first."""

        def respond(request: Request) -> Reply:
            problem = cls.request_problem(request)
            if problem:
                return cls.error(400, problem, status="INVALID_ARGUMENT")
            return Reply.json(cls.response(text, **kwargs))

        return respond

    @classmethod
    def stream(
        cls,
        pieces: tuple[str, ...] = ("Hello ", "there, how ", "can I help?"),
        *,
        usage: dict[str, int] | None = CHAT_USAGE,
        finish_reason: str = "STOP",
        **kwargs: Any,
    ) -> Responder:
        """Answers streamGenerateContent?alt=sse, one candidate piece per event."""

        def respond(request: Request) -> Reply:
            problem = cls.request_problem(request)
            if problem:
                return cls.error(400, problem, status="INVALID_ARGUMENT")
            if request.query.get("alt") != ["sse"]:
                return cls.error(400, "streams are requested with alt=sse")
            events = []
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                event = cls.response(
                    piece,
                    usage=usage if last else None,
                    finish_reason=finish_reason if last else None,
                )
                events.append(event)
            return Reply.sse(events, **kwargs)

        return respond

    @staticmethod
    def request_problem(request: Request) -> str | None:
        """Why Gemini would refuse this generateContent body, if it would."""
        try:
            body = request.json()
        except ValueError:
            return "body is not JSON"
        contents = body.get("contents") if isinstance(body, dict) else None
        if not contents:
            return "contents is required"
        for content in contents:
            if content.get("role") not in ("user", "model") or not content.get("parts"):
                return f"bad content {content!r}"
        if "x-goog-api-key" not in request.headers:
            return "no API key header"
        return None

    # -- batchEmbedContents ----------------------------------------------------------------
    @staticmethod
    def embeddings(
        *, dims: int = 4, usage: dict[str, int] | None = None, drop: int = 0
    ) -> Responder:
        """One vector per request in the batch (``drop`` fewer, to script a broken reply)."""

        def respond(request: Request) -> Reply:
            requests = request.json().get("requests") or []
            vectors = [
                {"values": [round(0.1 * (i + 1) + 0.01 * d, 4) for d in range(dims)]}
                for i in range(len(requests) - drop)
            ]
            payload: dict[str, Any] = {"embeddings": vectors}
            if usage is not None:
                payload["usageMetadata"] = usage
            return Reply.json(payload)

        return respond

    # -- errors ------------------------------------------------------------------------------
    @staticmethod
    def error(
        code: int,
        message: str = "scripted error",
        *,
        status: str = "",
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An error as Google APIs send it: ``{"error": {code, message, status, details}}``."""
        statuses = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
        }
        error: dict[str, Any] = {
            "code": code,
            "message": message,
            "status": status or statuses.get(code, "UNKNOWN"),
        }
        if details is not None:
            error["details"] = details
        return Reply.json({"error": error}, code, headers=headers)

    @staticmethod
    def retry_info(delay: str) -> dict[str, Any]:
        return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}

    @staticmethod
    def bodies(server: FakeServer, path: str) -> list[Any]:
        return [json.loads(r.body) for r in server.requests_to(path, "POST")]


@pytest.fixture
def wire() -> type[GeminiWire]:
    return GeminiWire
