"""A threaded HTTP server on 127.0.0.1 that speaks whatever wire format a test scripts.

Routes answer with scripted ``Reply``s: JSON, SSE, NDJSON, any status and headers,
delays, connection resets and streams cut off half-way. Every request is recorded,
so a test can check what the real SDK actually sent::

    with FakeServer() as server:
        server.route("POST", "/v1/chat/completions", Reply.json({...}))
        server.once("POST", "/v1/chat/completions", Reply.error(429, headers={"Retry-After": "1"}))
        ...  # point the SDK at server.url
        assert server.requests[-1].json()["model"] == "gpt-4"
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "RawEvent", "Reply", "Request"]


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class RawEvent:
    """An SSE event written exactly as given (e.g. DashScope's ``id:``/``event:`` lines)."""

    text: str


@dataclass
class Reply:
    """A scripted answer. Build with the class methods."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    parts: list[bytes] | None = None  # streamed with chunked encoding when set
    delay: float = 0.0
    interval: float = 0.0
    cut_after: int | None = None  # stream: close the connection after this many parts
    truncate_to: int | None = None  # body: send only this many bytes, then close
    end_after: int | None = None  # stream: end the body cleanly after this many parts
    reset: bool = False
    drip: float = 0.0  # send the whole reply, status line first, one byte per `drip` seconds
    pause_from: int = 1  # stream: the first part that `interval` is waited before

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        truncate_to: int | None = None,
    ) -> Reply:
        return cls(
            status,
            {"Content-Type": "application/json", **(headers or {})},
            json.dumps(obj).encode(),
            delay=delay,
            truncate_to=truncate_to,
        )

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        return cls(
            status, {"Content-Type": content_type, **(headers or {})}, text.encode(), delay=delay
        )

    @classmethod
    def html(cls, html: str, status: int = 502, **kwargs: Any) -> Reply:
        return cls.text(html, status, content_type="text/html; charset=utf-8", **kwargs)

    @classmethod
    def empty(cls, status: int = 200, *, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, dict(headers or {}), b"")

    @classmethod
    def error(
        cls,
        status: int,
        obj: Any = None,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """An error status with a JSON body (a generic ``{"error": {...}}`` by default)."""
        if obj is None:
            obj = {"error": {"message": f"scripted status {status}", "code": status}}
        return cls.json(obj, status, headers=headers, delay=delay)

    @classmethod
    def sse(
        cls,
        events: Iterable[Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        interval: float = 0.0,
        cut_after: int | None = None,
        done: str | None = None,
    ) -> Reply:
        """Server-sent events: dicts become ``data: <json>``, strings ``data: <str>``.

        ``done`` appends a final ``data: <done>`` (OpenAI's ``[DONE]``); ``cut_after``
        drops the connection after that many events, as a broken stream does.
        """
        parts = [_sse_event(event) for event in events]
        if done is not None:
            parts.append(f"data: {done}\n\n".encode())
        return cls(
            status,
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **(headers or {})},
            parts=parts,
            delay=delay,
            interval=interval,
            cut_after=cut_after,
        )

    @classmethod
    def ndjson(
        cls,
        objs: Iterable[Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        interval: float = 0.0,
        cut_after: int | None = None,
    ) -> Reply:
        """Newline-delimited JSON, streamed one object per chunk (Ollama's streams)."""
        parts = [(json.dumps(obj) + "\n").encode() for obj in objs]
        return cls(
            status,
            {"Content-Type": "application/x-ndjson", **(headers or {})},
            parts=parts,
            delay=delay,
            interval=interval,
            cut_after=cut_after,
        )

    @classmethod
    def connection_reset(cls, *, delay: float = 0.0) -> Reply:
        """Drop the connection without answering (TCP reset)."""
        return cls(reset=True, delay=delay)


def _sse_event(event: Any) -> bytes:
    if isinstance(event, RawEvent):
        text = event.text if event.text.endswith("\n\n") else event.text.rstrip("\n") + "\n\n"
        return text.encode()
    data = event if isinstance(event, str) else json.dumps(event)
    return f"data: {data}\n\n".encode()


Responder = Reply | Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping connections is what fault tests do: stay quiet about it."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Route:
    def __init__(self, method: str, path: str) -> None:
        self.method = method.upper()
        self.path = path
        pattern = re.escape(path).replace(r"\*", ".*")
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(pattern)
        self.standing: list[Responder] = []
        self.served = 0
        self.queued: deque[Responder] = deque()
        self.cuts = 0
        self.early_ends = 0
        self.slowdowns: list[dict[str, Any]] = []

    def next(self) -> Responder | None:
        if self.queued:
            return self.queued.popleft()
        if not self.standing:
            return None
        responder = self.standing[min(self.served, len(self.standing) - 1)]
        self.served += 1
        return responder


class FakeServer:
    """A scripted HTTP/1.1 server on 127.0.0.1; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: list[_Route] = []
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._open = 0
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------
    def start(self) -> FakeServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # scripting -------------------------------------------------------------------
    def _route(self, method: str, path: str) -> _Route:
        for route in self._routes:
            if route.method == method.upper() and route.path == path:
                return route
        route = _Route(method, path)
        self._routes.append(route)
        return route

    def route(self, method: str, path: str, *responders: Responder) -> FakeServer:
        """Answer ``method path`` with these replies in turn, the last one from then on.

        ``path`` may hold ``{name}`` segments and ``*``; the query string is ignored.
        A responder is a ``Reply`` or a function of the ``Request`` returning one.
        """
        if not responders:
            raise ValueError("route() needs at least one reply")
        with self._lock:
            route = self._route(method, path)
            route.standing = list(responders)
            route.served = 0
        return self

    def once(self, method: str, path: str, *responders: Responder) -> FakeServer:
        """Serve these replies first, once each, before the route's standing replies."""
        with self._lock:
            self._route(method, path).queued.extend(responders)
        return self

    def cut_next(self, method: str, path: str, times: int = 1) -> FakeServer:
        """Cut the route's next replies half-way, whatever produces them.

        A stream loses the connection after half of its events, a body after half
        of its bytes: the broken stream or truncated reply a flaky network gives.
        """
        with self._lock:
            self._route(method, path).cuts += times
        return self

    def end_next(self, method: str, path: str, times: int = 1) -> FakeServer:
        """End the route's next streamed replies cleanly half-way.

        The body ends as a complete HTTP message after half of its events: a stream
        closed without its terminator, which a client must not take as complete.
        """
        with self._lock:
            self._route(method, path).early_ends += times
        return self

    def slow_next(
        self,
        method: str,
        path: str,
        *,
        interval: float = 0.0,
        drip: float = 0.0,
        after: int = 1,
        times: int = 1,
    ) -> FakeServer:
        """Slow the route's next replies down, whatever produces them.

        ``interval``: seconds before each of a stream's parts from the ``after``-th on
        (the ones before are sent at once), a service that stalls mid-stream. ``drip``:
        every byte of the reply, status line included, on its own ``drip`` seconds apart,
        a slow-loris server.
        """
        slowdown = {"interval": interval, "drip": drip, "pause_from": after}
        with self._lock:
            self._route(method, path).slowdowns += [slowdown] * times
        return self

    @property
    def open_connections(self) -> int:
        """Client connections the server holds open right now."""
        with self._lock:
            return self._open

    def wait_for_connections(self, count: int, timeout: float = 2.0) -> int:
        """Wait until ``open_connections`` is at most ``count``; returns the last figure."""
        deadline = time.monotonic() + timeout
        while self.open_connections > count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()
            self._requests.clear()

    # inspection ------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        route = _Route(method or "*", path)
        return [
            r
            for r in self.requests
            if route.regex.fullmatch(r.path) and (method is None or r.method == method.upper())
        ]

    # dispatch ----------------------------------------------------------------------
    def _respond(self, request: Request) -> Reply:
        with self._lock:
            self._requests.append(request)
            for route in self._routes:
                match = route.regex.fullmatch(request.path)
                if route.method == request.method and match:
                    request.params = match.groupdict()
                    responder = route.next()
                    cut = route.cuts > 0
                    route.cuts -= cut
                    early = route.early_ends > 0
                    route.early_ends -= early
                    slowdown = route.slowdowns.pop(0) if route.slowdowns else None
                    break
            else:
                responder, cut, early, slowdown = None, False, False, None
        if responder is None:
            return Reply.json(
                {"error": {"message": f"no route for {request.method} {request.path}"}}, 404
            )
        reply = responder(request) if callable(responder) else responder
        if early and reply.parts is not None:
            reply = dataclasses.replace(reply, end_after=max(1, len(reply.parts) // 2))
        if cut:
            if reply.parts is not None:
                reply = dataclasses.replace(reply, cut_after=max(1, len(reply.parts) // 2))
            else:
                reply = dataclasses.replace(reply, truncate_to=len(reply.body) // 2)
        if slowdown is not None:
            reply = dataclasses.replace(reply, **slowdown)
        return reply


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every keep-alive reply waits ~40 ms for a delayed ACK
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._open += 1

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.fake._lock:
                self.fake._open -= 1

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        request = Request(
            self.command,
            url.path,
            parse_qs(url.query),
            {k.lower(): v for k, v in self.headers.items()},
            self._read_body(),
        )
        try:
            reply = self.fake._respond(request)
        except Exception as exc:  # a broken scripted responder: tell the test, not hang it
            reply = Reply.json({"error": {"message": f"responder failed: {exc!r}"}}, 599)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.reset:
            self._drop(hard=True)
            return
        if reply.drip:
            self._send_dripping(reply)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.parts is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.truncate_to is not None:
                self.wfile.write(reply.body[: reply.truncate_to])
                self.wfile.flush()
                self._drop(hard=False)
                return
            self.wfile.write(reply.body)
            self.wfile.flush()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, part in enumerate(reply.parts):
            if reply.cut_after is not None and index >= reply.cut_after:
                self.wfile.flush()
                self._drop(hard=False)
                return
            if reply.end_after is not None and index >= reply.end_after:
                break
            if index >= reply.pause_from and reply.interval:
                time.sleep(reply.interval)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_dripping(self, reply: Reply) -> None:
        """A slow-loris server: every byte on its own, so that no single read ever waits
        long; only a deadline over the whole reply can stop it."""
        body = reply.body if reply.parts is None else b"".join(reply.parts)
        head = f"HTTP/1.1 {reply.status} Scripted\r\n"
        headers = {**reply.headers, "Content-Length": str(len(body))}
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        try:
            for byte in head.encode() + body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(reply.drip)
        except OSError:  # the client gave up, as it should
            self.close_connection = True

    def _drop(self, *, hard: bool) -> None:
        """Close the connection mid-reply: ``hard`` sends a TCP reset."""
        self.close_connection = True
        try:
            if hard:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
