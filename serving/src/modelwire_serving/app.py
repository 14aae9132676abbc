"""The Flask application: routes, bearer-token check and JSON errors.

Every reply is JSON (or an SSE stream). Client mistakes become 4xx with an
OpenAI-style `{"error": {...}}` body; anything unexpected becomes a 500 with
the same shape and no traceback (the traceback goes to the server log).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from modelwire_serving import ollama_routes, responses
from modelwire_serving.bodies import read_json_object as _read_json_object
from modelwire_serving.errors import RequestError, error_payload
from modelwire_serving.jobs import Completion, GenerationFailedError, QueueFullError
from modelwire_serving.ollama_routes import ModelCard
from modelwire_serving.params import (
    COMPLETION_DEFAULT_MAX_TOKENS,
    parse_chat_body,
    parse_completion_body,
    parse_embedding_body,
    parse_llm_body,
)
from modelwire_serving.service import Service

logger = logging.getLogger("modelwire_serving")

#: Answered without the API key: liveness checks (Ollama clients probe `HEAD /`).
OPEN_PATHS = frozenset({"/health", "/"})


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def _error(
    message: str, status: int, error_type: str = "invalid_request_error", **headers: str
) -> Response:
    payload = error_payload(request.path, message, status, error_type)
    return _json(payload, status, headers)


def _wait(service: Service, job: Any) -> Completion:
    return job.result(timeout=service.limits.request_timeout)


def create_app(
    service: Service, *, raw_prompts: bool = False, cards: list[ModelCard] | None = None
) -> Flask:
    """Build the WSGI app around a loaded `Service`.

    `raw_prompts` keeps the seed's behaviour on /llm/: a string prompt goes to the
    model as it is. By default it is sent as one user turn through the chat
    template (when the model has one), since an instruct model given a bare
    question usually ends its answer at once. `cards` describe the models on the
    Ollama routes (/api/tags, /api/show); without them, names and sizes only.
    """
    app = Flask("modelwire_serving")
    app.config["MAX_CONTENT_LENGTH"] = service.limits.max_body_bytes

    @app.before_request
    def check_api_key() -> Response | None:
        if not service.api_key or request.path in OPEN_PATHS:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(
                "missing API key: send 'Authorization: Bearer <key>'",
                401,
                "authentication_error",
                **{"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(token.strip().encode(), service.api_key.encode()):
            return _error("invalid API key", 401, "authentication_error")
        return None

    @app.errorhandler(RequestError)
    def request_error(error: RequestError) -> Response:
        payload = error_payload(request.path, error.message, error.status, error.error_type)
        if not request.path.startswith("/api/"):
            payload = error.to_json()  # keeps `param`
        return _json(payload, error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            message = f"unknown route: {request.method} {request.path}"
        elif status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif status == 413:
            message = (
                f"request body too large: the limit is {service.limits.max_body_bytes} bytes "
                "(--max-body-bytes)"
            )
        else:
            message = error.description or error.name
        return _error(message, status)

    @app.errorhandler(QueueFullError)
    def busy(error: QueueFullError) -> Response:
        return _error(f"server busy: {error}", 503, "server_busy", **{"Retry-After": "1"})

    @app.errorhandler(TimeoutError)
    def timeout(_: TimeoutError) -> Response:
        return _error("generation timed out (--request-timeout)", 504, "timeout")

    @app.errorhandler(GenerationFailedError)
    def failed(error: GenerationFailedError) -> Response:
        return _error(str(error), 500, "server_error")

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
        return _error("internal server error; see the server log", 500, "server_error")

    @app.get("/health")
    def health() -> Response:
        worker = service.worker
        payload = {
            "status": "ok" if worker.alive else "error",
            "model": service.model_name,
            "embedding_model": service.embedder.name if service.embedder else None,
            "device": service.device,
            "queued": worker.queued,
            "requests": worker.stats.requests,
            "batches": worker.stats.batches,
            "largest_batch": worker.stats.largest_batch,
            "batch_sizes": {str(k): v for k, v in sorted(worker.stats.batch_sizes.items())},
            "max_batch_size": worker.max_batch_size,
            "string_prompts": "raw"
            if raw_prompts or not service.prompter.has_chat_template
            else "chat_template",
            "uptime_seconds": round(time.time() - service.started, 1),
        }
        payload.update(getattr(worker, "describe", dict)())  # which scheduler, fallbacks
        if worker.failure:
            payload["error"] = worker.failure
        return _json(payload, 200 if worker.alive else 503)

    @app.get("/v1/models")
    def models() -> Response:
        names = [service.model_name]
        if service.embedder:
            names.append(service.embedder.name)
        return _json(responses.models_reply(names, int(service.started)))

    @app.post("/llm/")
    @app.post("/llm")
    def llm() -> Response:
        parsed = parse_llm_body(_read_json_object())
        inputs = parsed.inputs
        raw = raw_prompts if parsed.raw is None else parsed.raw
        if isinstance(inputs, str) and not raw and service.prompter.has_chat_template:
            inputs = [{"role": "user", "content": inputs}]
        completion = _wait(service, service.submit(inputs, parsed.options))
        return _json(responses.llm_reply(completion, service.model_name))

    @app.post("/v1/chat/completions")
    def chat_completions() -> Response:
        parsed = parse_chat_body(_read_json_object())
        job = service.submit(parsed.messages, parsed.options, stream=parsed.stream)
        request_id = responses.new_id("chatcmpl")
        if not parsed.stream:
            completion = _wait(service, job)
            return _json(responses.chat_completion(completion, service.model_name, request_id))
        return _event_stream(_sse(service, job, request_id, parsed.include_usage))

    @app.post("/v1/completions")
    def completions() -> Response:
        parsed = parse_completion_body(_read_json_object())
        options = parsed.options
        if options.max_new_tokens is None:
            default = min(COMPLETION_DEFAULT_MAX_TOKENS, service.limits.max_new_tokens)
            options = replace(options, max_new_tokens=default)
        # A raw prompt: the string is continued as it is, never templated.
        job = service.submit(parsed.prompt, options, stream=parsed.stream)
        request_id = responses.new_id("cmpl")
        if not parsed.stream:
            completion = _wait(service, job)
            return _json(responses.text_completion(completion, service.model_name, request_id))
        return _event_stream(_completion_sse(service, job, request_id, parsed.include_usage))

    @app.post("/v1/embeddings")
    def embeddings() -> Response:
        if service.embedder is None:
            return _error(
                "no embedding model is loaded: start the server with --embedding-model", 404
            )
        parsed = parse_embedding_body(_read_json_object())
        if parsed.dimensions not in (None, service.embedder.dimension):
            raise RequestError(
                f"'dimensions' must be {service.embedder.dimension} for this model",
                param="dimensions",
            )
        vectors, tokens = service.embedder.embed(parsed.inputs)
        data: list[list[float]] | list[str] = vectors
        if parsed.encoding_format == "base64":
            data = [responses.encode_base64(vector) for vector in vectors]
        return _json(responses.embeddings_reply(data, service.embedder.name, tokens))

    if cards is None:
        cards = [
            ModelCard(service.model_name, ("completion",), context_length=service.context_length)
        ]
        if service.embedder is not None:
            embedding = ModelCard(
                service.embedder.name,
                ("embedding",),
                embedding_length=service.embedder.dimension,
            )
            cards.append(embedding)
    ollama_routes.register(app, service, cards)
    return app


def _event_stream(events: Iterator[str]) -> Response:
    return Response(
        events,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _completion_sse(
    service: Service, job: Any, request_id: str, include_usage: bool
) -> Iterator[str]:
    """OpenAI `text_completion` events, ending with `[DONE]`; a disconnect cancels the job."""
    created = int(time.time())
    model = service.model_name

    def event(payload: object) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def chunk(text: str, finish: str | None = None) -> str:
        return event(
            responses.text_completion_chunk(
                request_id, model, created, text, finish, include_usage=include_usage
            )
        )

    try:
        for item in job.iter_events(timeout=service.limits.request_timeout):
            if isinstance(item, Completion):
                yield chunk("", responses.stream_finish(item))
                if include_usage:
                    usage = responses.usage_chunk(
                        request_id, model, created, item, "text_completion"
                    )
                    yield event(usage)
            else:
                yield chunk(item)
        yield "data: [DONE]\n\n"
    except (GenerationFailedError, TimeoutError) as exc:
        yield event(RequestError(str(exc), 500, error_type="server_error").to_json())
    finally:
        job.cancel()


def _sse(service: Service, job: Any, request_id: str, include_usage: bool) -> Iterator[str]:
    """OpenAI chat-completion chunks as server-sent events, ending with `[DONE]`.

    If the client disconnects, the WSGI server closes this generator and the
    job is cancelled, so the worker stops spending steps on it.
    """
    created = int(time.time())
    model = service.model_name

    def event(payload: object) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return event(
            responses.chat_chunk(
                request_id, model, created, delta, finish, include_usage=include_usage
            )
        )

    try:
        yield chunk({"role": "assistant", "content": ""})
        for item in job.iter_events(timeout=service.limits.request_timeout):
            if isinstance(item, Completion):
                yield chunk({}, responses.stream_finish(item))
                if include_usage:
                    yield event(responses.usage_chunk(request_id, model, created, item))
            else:
                yield chunk({"content": item})
        yield "data: [DONE]\n\n"
    except (GenerationFailedError, TimeoutError) as exc:
        yield event(RequestError(str(exc), 500, error_type="server_error").to_json())
    finally:
        job.cancel()
