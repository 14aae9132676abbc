"""One local fake service speaking every first-party provider's wire format, in its own process.

The benchmarks compare a wrapper with the raw SDK against *this* server. It runs in a
separate process so that its Python work does not share the client's GIL (on a
2-core machine: one core for the server, one for the client), and every reply is a
precomputed ``Reply`` (bytes built once), so the server costs the same for both sides.

It needs only ``modelwire.testing.fakeserver``, which imports nothing but the standard
library: the peer venv (LiteLLM) runs it with ``PYTHONPATH=core/src``.

    python benchmarks/fakeservice.py [--asyncio]   # prints {"url": ...}; stops on stdin EOF

``--asyncio`` answers the same scripted routes from one asyncio loop instead of
FakeServer's thread per connection: at 256 concurrent connections, 256 server threads
contending for one GIL make the server, not the client, the bottleneck (and a noisy
one), which would hide exactly the client-side cost the concurrency figure is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORE_SRC = ROOT / "core" / "src"

#: What every chat reply says, and the pieces a stream delivers it in.
PIECES = ["Hello", " from", " the", " fake", " service."]
TEXT = "".join(PIECES)
#: Embedding replies: this many vectors (one per input text) of this many floats.
EMBED_INPUTS = ["first text to embed", "second text to embed"]
EMBED_DIMS = 384
VECTOR = [round(((i * 7919) % 1000) / 1000 - 0.5, 6) for i in range(EMBED_DIMS)]

OPENAI_MODEL = "gpt-4o-mini"
OPENAI_EMBED_MODEL = "text-embedding-3-small"
DASHSCOPE_MODEL = "qwen-max"
DASHSCOPE_EMBED_MODEL = "text-embedding-v2"
GEMINI_MODEL = "gemini-2.0-flash"
GEMINI_EMBED_MODEL = "text-embedding-004"
OLLAMA_MODEL = "llama3.2"

DASHSCOPE_API = "/api/v1"
CHAT_MESSAGES = [{"role": "user", "content": "Say hello."}]

# Cap on the server's lifetime, so that it stops by itself if its parent dies oddly.
MAX_SECONDS = 1800


def _openai_chat() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": OPENAI_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }


def _openai_chunks() -> list[dict[str, Any]]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000}
        return {**head, "model": OPENAI_MODEL, "choices": choices, **extra}

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    events += [chunk([{"index": 0, "delta": {"content": piece}}]) for piece in PIECES]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(chunk([], usage={"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}))
    return events


def _openai_embeddings() -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": VECTOR} for i in range(len(EMBED_INPUTS))
    ]
    usage = {"prompt_tokens": 8, "total_tokens": 8}
    return {"object": "list", "data": data, "model": OPENAI_EMBED_MODEL, "usage": usage}


def _dashscope_chat() -> dict[str, Any]:
    message = {"role": "assistant", "content": TEXT}
    return {
        "request_id": "req-1",
        "output": {"choices": [{"finish_reason": "stop", "message": message}]},
        "usage": {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14},
    }


def _dashscope_events() -> list[Any]:
    from modelwire.testing import RawEvent

    events = []
    for index, piece in enumerate(PIECES, 1):
        last = index == len(PIECES)
        payload = {
            "output": {
                "choices": [
                    {
                        "message": {"role": "assistant", "content": piece},
                        "finish_reason": "stop" if last else "null",
                    }
                ]
            },
            "usage": {"input_tokens": 9, "output_tokens": index, "total_tokens": 9 + index},
            "request_id": "req-1",
        }
        text = f"id:{index}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(payload)}\n\n"
        events.append(RawEvent(text))
    return events


def _dashscope_embeddings() -> dict[str, Any]:
    items = [{"text_index": i, "embedding": VECTOR} for i in range(len(EMBED_INPUTS))]
    return {"request_id": "req-1", "output": {"embeddings": items}, "usage": {"total_tokens": 8}}


def _gemini_response(text: str, last: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "index": 0,
        "content": {"role": "model", "parts": [{"text": text}]},
    }
    payload: dict[str, Any] = {"candidates": [candidate], "modelVersion": GEMINI_MODEL}
    if last:
        candidate["finishReason"] = "STOP"
        payload["usageMetadata"] = {
            "promptTokenCount": 9,
            "candidatesTokenCount": 5,
            "totalTokenCount": 14,
        }
    return payload


def _ollama_final(**extra: Any) -> dict[str, Any]:
    return {
        "model": OLLAMA_MODEL,
        "created_at": "2024-06-01T12:00:00.000000Z",
        "done": True,
        "done_reason": "stop",
        "total_duration": 5_000_000,
        "prompt_eval_count": 9,
        "eval_count": 5,
        **extra,
    }


def _ollama_lines() -> list[dict[str, Any]]:
    head = {"model": OLLAMA_MODEL, "created_at": "2024-06-01T12:00:00.000000Z", "done": False}
    lines = [{**head, "message": {"role": "assistant", "content": p}} for p in PIECES]
    lines.append(_ollama_final(message={"role": "assistant", "content": ""}))
    return lines


def _json_or_stream(plain: Any, streamed: Any) -> Any:
    """A responder that picks one of two prebuilt replies by the request's ``stream`` flag."""

    def respond(request: Any) -> Any:
        body = request.body
        return streamed if b'"stream": true' in body or b'"stream":true' in body else plain

    return respond


def configure(server: Any) -> None:
    """Script every provider's routes with replies built once."""
    from modelwire.testing import Reply

    # OpenAI (and LiteLLM's "openai/..." provider)
    server.route(
        "POST",
        "/v1/chat/completions",
        _json_or_stream(Reply.json(_openai_chat()), Reply.sse(_openai_chunks(), done="[DONE]")),
    )
    server.route("POST", "/v1/embeddings", Reply.json(_openai_embeddings()))
    # DashScope (native protocol): SSE when the request carries X-DashScope-SSE
    plain, streamed = Reply.json(_dashscope_chat()), Reply.sse(_dashscope_events())
    server.route(
        "POST",
        f"{DASHSCOPE_API}/services/aigc/text-generation/generation",
        lambda request: streamed if request.header("x-dashscope-sse") == "enable" else plain,
    )
    server.route(
        "POST",
        f"{DASHSCOPE_API}/services/embeddings/text-embedding/text-embedding",
        Reply.json(_dashscope_embeddings()),
    )
    # Gemini (google-genai's default API version)
    server.route("POST", "/v1/models/{model}:generateContent", Reply.json(_gemini_response(TEXT)))
    events = [_gemini_response(p, last=i == len(PIECES) - 1) for i, p in enumerate(PIECES)]
    server.route("POST", "/v1/models/{model}:streamGenerateContent", Reply.sse(events))
    vectors = {"embeddings": [{"values": VECTOR} for _ in EMBED_INPUTS]}
    server.route("POST", "/v1/models/{model}:batchEmbedContents", Reply.json(vectors))
    # Ollama: NDJSON when the body says "stream": true
    chat = _ollama_final(message={"role": "assistant", "content": TEXT})
    server.route(
        "POST", "/api/chat", _json_or_stream(Reply.json(chat), Reply.ndjson(_ollama_lines()))
    )
    embed = {
        "model": OLLAMA_MODEL,
        "embeddings": [VECTOR for _ in EMBED_INPUTS],
        "prompt_eval_count": 8,
    }
    server.route("POST", "/api/embed", Reply.json(embed))
    # A seed-style Flask service for post_api
    usage = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
    server.route("POST", "/llm/", Reply.json({"response": TEXT, "usage": usage}))


def serve_asyncio() -> int:
    """The scripted routes of a (never started) FakeServer, answered from one asyncio loop."""
    import asyncio
    from urllib.parse import parse_qs

    from modelwire.testing import fakeserver

    routes = fakeserver.FakeServer()
    configure(routes)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                path, _, query = target.partition("?")
                request = fakeserver.Request(method, path, parse_qs(query), headers, body)
                writer.write(_encode(routes._respond(request)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the server is stopping
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        await asyncio.wait_for(stdin_closed, MAX_SECONDS)
        server.close()

    try:
        asyncio.run(main())
    except TimeoutError:
        pass
    routes.close()
    return 0


def _encode(reply: Any) -> bytes:
    """A ``Reply`` as HTTP/1.1 bytes: Content-Length, or chunked parts for a stream."""
    from http import HTTPStatus

    head = [f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}"]
    head += [f"{name}: {value}" for name, value in reply.headers.items()]
    if reply.parts is None:
        head.append(f"Content-Length: {len(reply.body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body
    head.append("Transfer-Encoding: chunked")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in reply.parts)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + chunks + b"0\r\n\r\n"


def serve() -> int:
    """Run the server until stdin closes (or MAX_SECONDS pass); print its URL first."""
    from modelwire.testing import fakeserver

    # 256 concurrent clients connect at once: socketserver's default backlog of 5 would
    # drop SYNs and add 1 s retransmits to random calls of either side.
    fakeserver._Server.request_queue_size = 1024
    server = fakeserver.FakeServer()
    configure(server)
    server.start()
    print(json.dumps({"url": server.url, "pid": os.getpid()}), flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(MAX_SECONDS)
    server.close()
    return 0


class Service:
    """The fake service in a child process of ``python``; a context manager giving its URL."""

    def __init__(self, python: str = sys.executable, *, use_asyncio: bool = False) -> None:
        self.python = python
        self.use_asyncio = use_asyncio
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Service:
        env = {**os.environ, "PYTHONPATH": str(CORE_SRC)}
        argv = [self.python, str(Path(__file__).resolve())]
        self._process = subprocess.Popen(
            argv + (["--asyncio"] if self.use_asyncio else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the fake service did not start")
        self.url = json.loads(line)["url"]
        return self

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


if __name__ == "__main__":
    sys.path.insert(0, str(CORE_SRC))
    raise SystemExit(serve_asyncio() if "--asyncio" in sys.argv[1:] else serve())
