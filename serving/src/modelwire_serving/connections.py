"""How waitress treats slow, idle and oversized clients.

Waitress accepts at most `connection_limit` connections and, by default, lets an
idle one stay for two minutes and a half-sent request stay for as long as the
client trickles bytes; about a hundred idle sockets then take the service
offline for everyone. Here every connection is bounded in time: idle ones close
after `idle_timeout` (waitress's `channel_timeout`), and a request must arrive
in full (headers and body) within `read_timeout` or it gets a 408 and the
connection closes.

A body over the limit is answered with a JSON 413 *after* it has been read and
thrown away (up to `DRAIN_FACTOR` times the limit): a server that answers and
closes while the client is still sending makes the client see a connection
reset instead of the 413. Nothing of such a body is buffered.
"""

from __future__ import annotations

import json
import resource
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.utilities import RequestEntityTooLarge

from modelwire_serving.errors import error_payload

#: Oversized bodies up to this many times the limit (and at least `MIN_DRAIN`) are
#: read and discarded so the client sees the 413; larger ones are cut off.
DRAIN_FACTOR = 64
MIN_DRAIN = 64 << 20
#: File descriptors kept free for the model files, logs and the listening socket.
SPARE_FDS = 64


def error_body(path: str, message: str, status: int, error_type: str) -> bytes:
    """The error body of the route family, as bytes."""
    return json.dumps(error_payload(path, message, status, error_type)).encode()


class _JSONTooLarge(RequestEntityTooLarge):
    """Waitress's 413, with the service's JSON body instead of plain text."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(f"request body too large: the limit is {limit} bytes (--max-body-bytes)")
        self.path = path

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        body = error_body(self.path, self.body, 413, "invalid_request_error")
        return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body


class _Discard:
    """A body receiver that counts `length` bytes and keeps none of them."""

    error = None

    def __init__(self, length: int) -> None:
        self.remaining = length
        self.completed = False

    def received(self, data: bytes) -> int:
        taken = min(len(data), self.remaining)
        self.remaining -= taken
        self.completed = self.remaining == 0
        return taken

    def getbuf(self) -> _Discard:
        return self

    def getfile(self) -> Any:
        raise RuntimeError("a discarded body has no content")

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


class _Parser(HTTPRequestParser):
    """Waitress's parser with the service's body limit, drained and answered in JSON."""

    body_limit = 1 << 20

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        length = self.content_length
        if self.chunked or length <= self.body_limit:
            return
        self.error = _JSONTooLarge(self.path, self.body_limit)
        if self.expect_continue or length >= self.adj.max_request_body_size:
            # The client waits for "100 Continue" (it will not send the body), or
            # the body is too large to be worth reading: answer at once.
            self.expect_continue = False
            self.body_rcv = None
            self.content_length = 0
        else:
            self.body_rcv = _Discard(length)

    def received(self, data: bytes) -> int:
        consumed = int(super().received(data))
        if self.chunked and not self.completed and self.body_bytes_received > self.body_limit:
            self.error = _JSONTooLarge(self.path, self.body_limit)
            self.completed = True
        if isinstance(self.error, RequestEntityTooLarge) and not isinstance(
            self.error, _JSONTooLarge
        ):
            self.error = _JSONTooLarge(self.path, self.body_limit)
        return consumed


class _Channel(HTTPChannel):
    """Waitress's channel with a deadline for receiving each request."""

    parser_class = _Parser
    read_timeout = 30.0
    _request_started = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None:
            self._request_started = time.time()
        return bool(super().received(data))

    def readable(self) -> bool:
        # Called by the event loop at least once a second (asyncore_loop_timeout).
        if (
            self.request is not None
            and not self.requests
            and not self.will_close
            and not self.close_when_flushed
            and time.time() - self._request_started > self.read_timeout
        ):
            self._time_out()
            return False
        return bool(super().readable())

    def _time_out(self) -> None:
        """Answer 408 and close: the request did not arrive within `read_timeout`."""
        path = getattr(self.request, "path", "") or ""
        message = (
            f"the request did not arrive in full within {self.read_timeout:g}s (--read-timeout)"
        )
        body = error_body(path, message, 408, "timeout")
        payload = (
            b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.request = None
        with self.outbuf_lock:
            self.outbufs[-1].append(payload)
            self.current_outbuf_count += len(payload)
            self.total_outbufs_len += len(payload)
        self.close_when_flushed = True


def fd_headroom() -> int:
    """How many connections the process's open-file limit leaves room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 16
    return max(1, soft - SPARE_FDS)


def waitress_options(max_body: int, connection_limit: int, idle_timeout: float) -> dict[str, Any]:
    """The `create_server` adjustments that go with `install`."""
    return {
        "connection_limit": connection_limit,
        "channel_timeout": idle_timeout,
        # How often idle channels are looked for (waitress's default is 30 s).
        "cleanup_interval": max(0.5, min(idle_timeout / 2, 5.0)),
        # poll() has no FD_SETSIZE (1024) ceiling, unlike select().
        "asyncore_use_poll": True,
        # The drain cap: bodies over `max_body` and below this are read and dropped.
        "max_request_body_size": max(MIN_DRAIN, DRAIN_FACTOR * max_body),
    }


def install(socket_map: dict[int, Any], max_body: int, read_timeout: float) -> None:
    """Make every listening server in `socket_map` use the bounded channel and parser."""
    parser = type("Parser", (_Parser,), {"body_limit": max_body})
    channel = type("Channel", (_Channel,), {"parser_class": parser, "read_timeout": read_timeout})
    for dispatcher in socket_map.values():
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = channel
