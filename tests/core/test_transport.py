"""The transport under every SDK client keeps the attempt's deadline, size cap and origin,
over real HTTP, sync and async."""

from __future__ import annotations

import asyncio
import functools
import gzip
import importlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from modelwire import ModelTimeoutError, ProviderError, ResponseParseError
from modelwire.limits import AttemptLimits, attempt_limits
from modelwire.testing import FakeServer, Reply
from modelwire.transport import AsyncGuardedTransport, GuardedTransport, guarded_transports


def limits(seconds: float, max_bytes: int | None = None) -> AttemptLimits:
    return AttemptLimits(time.monotonic() + seconds, seconds, "timeout", max_bytes)


@pytest.fixture
def other() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def get(url: str, within: AttemptLimits | None, library: str = "httpx", **client: Any) -> Any:
    transport = guarded_transports(library)[0]
    with (
        importlib.import_module(library).Client(
            transport=transport(), timeout=30, **client
        ) as http,
        attempt_limits(within),
    ):
        return http.get(url)


def aget(url: str, within: AttemptLimits | None, library: str = "httpx", **client: Any) -> Any:
    transport = guarded_transports(library)[1]
    client_class = importlib.import_module(library).AsyncClient

    async def main() -> Any:
        async with client_class(transport=transport(), timeout=30, **client) as c:
            with attempt_limits(within):
                return await c.get(url)

    return asyncio.run(main())


#: httpx, and httpx2: the fork newer openai and google-genai SDKs build their clients on.
LIBRARIES = ["httpx", "httpx2"]


@pytest.fixture(params=[(lib, mode) for lib in LIBRARIES for mode in ("sync", "async")], ids=str)
def fetch(request: pytest.FixtureRequest) -> Any:
    library, mode = request.param
    pytest.importorskip(library)
    return functools.partial(get if mode == "sync" else aget, library=library)


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_guard_finds_the_network_backend_of_this_httpx(library: str) -> None:
    # if httpx moves its pool's backend, the transport must fail loudly, not go unguarded
    from modelwire.transport import _AsyncBackend, _Backend

    pytest.importorskip(library)
    sync, asynchronous = guarded_transports(library)
    assert isinstance(sync()._pool._network_backend, _Backend)
    assert isinstance(asynchronous()._pool._network_backend, _AsyncBackend)
    assert issubclass(sync, importlib.import_module(library).HTTPTransport)


def test_transports_of_httpx_are_the_public_classes() -> None:
    assert guarded_transports("httpx") == (GuardedTransport, AsyncGuardedTransport)
    with pytest.raises(ValueError, match="httpx or httpx2, not 'requests'"):
        guarded_transports("requests")


def test_a_dripping_server_is_cut_at_the_deadline(server: FakeServer, fetch: Any) -> None:
    # one byte every 50 ms, headers included: no read ever waits long, yet the whole
    # reply would take ~10 s
    reply = Reply.json({"text": "x" * 100})
    reply.drip = 0.05
    server.route("GET", "/slow", reply)
    started = time.perf_counter()
    with pytest.raises(ModelTimeoutError, match=r"timeout=0.5s"):
        fetch(server.url + "/slow", limits(0.5))
    assert time.perf_counter() - started < 1.5


def test_a_silent_server_is_cut_at_the_deadline_not_the_read_timeout(
    server: FakeServer, fetch: Any
) -> None:
    server.route("GET", "/silent", Reply.json({}, delay=5))
    started = time.perf_counter()
    library = importlib.import_module(fetch.keywords["library"])
    with pytest.raises((ModelTimeoutError, library.TimeoutException)):
        fetch(server.url + "/silent", limits(0.4))
    assert time.perf_counter() - started < 1.5


@pytest.fixture
def slow_reader() -> Iterator[str]:
    """A server that takes a request body 16 KiB every 2 ms at most, and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(0.2)
                while not stop.is_set():
                    try:
                        if not connection.recv(16_384):
                            break
                    except OSError:
                        if stop.is_set():
                            break
                    time.sleep(0.002)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/upload"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_server_reading_the_body_slowly_is_cut_at_the_deadline(
    slow_reader: str, library: str
) -> None:
    # 24 MB at under 8 MB/s: every send() finishes well within the time left, yet the
    # whole body takes seconds
    pytest.importorskip(library)
    transport = guarded_transports(library)[0]
    module = importlib.import_module(library)
    started = time.perf_counter()
    with (
        module.Client(transport=transport(), timeout=30) as http,
        attempt_limits(limits(0.5)),
        pytest.raises(ModelTimeoutError),
    ):
        http.post(slow_reader, content=b"x" * 24_000_000)
    assert time.perf_counter() - started < 1.5


def test_without_limits_the_transport_is_plain_httpx(server: FakeServer, fetch: Any) -> None:
    server.route("GET", "/ok", Reply.json({"ok": True}))
    assert fetch(server.url + "/ok", None).json() == {"ok": True}


def test_a_body_over_the_cap_is_refused(server: FakeServer, fetch: Any) -> None:
    server.route("GET", "/big", Reply.text("x" * 100_000))
    with pytest.raises(ResponseParseError, match="max_response_bytes=1000"):
        fetch(server.url + "/big", limits(5, 1000))
    assert len(fetch(server.url + "/big", limits(5, 100_000)).text) == 100_000


def test_a_compressed_bomb_is_refused_by_its_decompressed_size(
    server: FakeServer, fetch: Any
) -> None:
    bomb = gzip.compress(b"0" * 20_000_000)  # 20 MB of zeros in ~20 KB
    assert len(bomb) < 100_000
    server.route(
        "GET", "/bomb", Reply(200, {"Content-Encoding": "gzip", "Content-Type": "text/plain"}, bomb)
    )
    started = time.perf_counter()
    with pytest.raises(ResponseParseError, match="max_response_bytes=1000000"):
        fetch(server.url + "/bomb", limits(5, 1_000_000))
    assert time.perf_counter() - started < 2


def test_a_compressed_reply_under_the_cap_is_decoded(server: FakeServer, fetch: Any) -> None:
    body = gzip.compress(b'{"answer": "' + b"y" * 5000 + b'"}')
    server.route(
        "GET",
        "/gz",
        Reply(200, {"Content-Encoding": "gzip", "Content-Type": "application/json"}, body),
    )
    assert fetch(server.url + "/gz", limits(5, 10_000)).json() == {"answer": "y" * 5000}
    assert server.requests[-1].header("accept-encoding") == "gzip, deflate"


@pytest.mark.parametrize("form", ["zlib", "raw"])
def test_a_deflate_reply_is_decoded_as_zlib_or_raw_deflate(
    server: FakeServer, fetch: Any, form: str
) -> None:
    # "deflate" means zlib data, yet some servers send raw deflate: httpx reads both
    data = b'{"answer": "' + b"z" * 5000 + b'"}'
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS if form == "zlib" else -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    headers = {"Content-Encoding": "deflate", "Content-Type": "application/json"}
    server.route("GET", "/deflate", Reply(200, headers, body))
    assert fetch(server.url + "/deflate", limits(5, 10_000)).json() == {"answer": "z" * 5000}
    with pytest.raises(ResponseParseError, match="max_response_bytes=1000"):
        fetch(server.url + "/deflate", limits(5, 1000))


def test_an_encoding_it_did_not_offer_is_refused(server: FakeServer, fetch: Any) -> None:
    server.route("GET", "/br", Reply(200, {"Content-Encoding": "br"}, b"\x00\x01"))
    with pytest.raises(ResponseParseError, match="'br'"):
        fetch(server.url + "/br", limits(5, 1000))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_origin_is_refused(
    server: FakeServer, other: FakeServer, fetch: Any, status: int
) -> None:
    other.route("GET", "/steal", Reply.json({"stolen": True}))
    target = other.url + "/steal?api-key=sk-should-not-show-123"
    server.route("GET", "/moved", Reply.empty(status, headers={"Location": target}))
    with pytest.raises(ProviderError, match="another origin") as info:
        fetch(server.url + "/moved", limits(5), follow_redirects=True)
    assert other.url in str(info.value)
    assert "sk-should-not-show-123" not in str(info.value)
    assert other.requests == []


@pytest.mark.parametrize("location", ["http:///steal", "http:/steal", "HTTP:///steal"])
def test_a_location_without_a_host_is_judged_where_the_client_would_go(
    server: FakeServer, fetch: Any, location: str
) -> None:
    # httpx fills in the host but not the port: the target is port 80, another origin
    server.route("GET", "/moved", Reply.empty(307, headers={"Location": location}))
    with pytest.raises(ProviderError, match="another origin"):
        fetch(server.url + "/moved", limits(5), follow_redirects=True)
    assert [r.path for r in server.requests] == ["/moved"]


def test_a_redirect_within_the_origin_is_followed(server: FakeServer, fetch: Any) -> None:
    server.route("GET", "/new", Reply.json({"here": True}))
    server.route("GET", "/old", Reply.empty(307, headers={"Location": "/new"}))
    assert fetch(server.url + "/old", limits(5), follow_redirects=True).json() == {"here": True}
