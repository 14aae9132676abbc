"""The HTTP transport under every plugin's SDK client: the limits httpx does not keep.

httpx's timeouts bound each network operation, not a request: a server that sends
one byte a second keeps a request alive for ever. The call path
(``modelwire.calls``) sets each attempt's ``AttemptLimits`` (``modelwire.limits``),
and this transport enforces them for every SDK built on httpx:

* **deadline**: every connect, write and read, headers included, is given at most
  the time left, and none starts after the deadline (``ModelTimeoutError``);
* **size**: a reply body larger than ``max_response_bytes`` once decompressed is
  refused (``ResponseParseError``), compressed or not;
* **redirects**: a redirect to another origin is refused (``ProviderError`` naming
  the ``Location``), so credentials are never sent to a host the config did not name.

httpx has no setting for a network backend, so ``_guard`` wraps the one the
transport's connection pool holds; ``tests/core/test_transport.py`` breaks if a
new httpx moves it.

``GuardedTransport``/``AsyncGuardedTransport`` are for ``httpx``;
``guarded_transports("httpx2")`` gives the same pair for httpx2, the fork of httpx
(on httpcore2) that newer openai and google-genai SDKs build their clients on: an
SDK keeps its own HTTP library, and the guards are the same code for both.
"""

from __future__ import annotations

import functools
import importlib
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx

from modelwire.errors import ProviderError, ResponseParseError
from modelwire.limits import current_limits
from modelwire.redact import mask_url

__all__ = ["AsyncGuardedTransport", "GuardedTransport", "guarded_transports"]

#: The encodings the transport offers and can decompress within the size cap.
ACCEPT_ENCODING = "gzip, deflate"


def _bound(timeout: float | None) -> float | None:
    """``timeout`` cut to the time the attempt has left (``ModelTimeoutError`` at none)."""
    limits = current_limits()
    if limits is None:
        return timeout
    left = limits.deadline - time.monotonic()
    if left <= 0:
        raise limits.expired()
    return left if timeout is None or timeout > left else timeout


class _DeadlineErrors:
    """A network timeout that ends at the attempt's deadline is the deadline's doing."""

    __slots__ = ("_timeouts",)

    def __init__(self, timeouts: type[BaseException]) -> None:
        self._timeouts = timeouts  # the library's ``TimeoutException``

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if kind is not None and issubclass(kind, self._timeouts):
            limits = current_limits()
            if limits is not None and limits.deadline - time.monotonic() < _SLACK:
                raise limits.expired() from exc


#: How close to the deadline a network timeout must end to be counted as the deadline's.
_SLACK = 0.005

#: The largest piece of a request body written under one deadline check.
_WRITE_PIECE = 64 * 1024


# -- the network layer: every operation gets at most the time left ---------------------------
class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bound(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if len(buffer) <= _WRITE_PIECE:
            self._inner.write(buffer, _bound(timeout))
            return
        # The backend gives every send() of one write the whole timeout, so a server
        # reading a large body slowly would stretch it: each piece gets the time left.
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_PIECE):
            self._inner.write(view[start : start + _WRITE_PIECE], _bound(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:  # fmt: skip
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _bound(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None,
                    ) -> httpcore.NetworkStream:  # fmt: skip
        stream = self._inner.connect_tcp(host, port, _bound(timeout), local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:  # fmt: skip
        return _Stream(self._inner.connect_unix_socket(path, _bound(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, _bound(timeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, _bound(timeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # fmt: skip
        inner = await self._inner.start_tls(ssl_context, server_hostname, _bound(timeout))
        return _AsyncStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None,
                          ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        inner = await self._inner.connect_tcp(
            host, port, _bound(timeout), local_address, socket_options
        )
        return _AsyncStream(inner)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None,
                                  ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        inner = await self._inner.connect_unix_socket(path, _bound(timeout), socket_options)
        return _AsyncStream(inner)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _guard(pool: Any, backend: type[_Backend] | type[_AsyncBackend], library: Any) -> None:
    inner = getattr(pool, "_network_backend", None)
    if inner is None:
        name = library.__name__
        raise RuntimeError(
            f"this {name} keeps no network backend where modelwire looks for it"
            f" ({name} {library.__version__}): pin the {name} version modelwire supports"
        )
    pool._network_backend = backend(inner)


# -- the HTTP layer: redirects, encodings, size ---------------------------------------------
#: The statuses httpx follows as redirects (``Response.is_redirect``).
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _refused_redirect(request: httpx.Request, response: httpx.Response) -> ProviderError | None:
    """The error for a redirect to another origin (``None`` for any other reply)."""
    if response.status_code not in _REDIRECTS:
        return None
    location = response.headers.get("location")
    if location is None:
        return None
    if _origin(_redirect_target(request.url, location)) == _origin(request.url):
        return None
    return ProviderError(
        f"the service redirected to another origin ({mask_url(location)}), which is not"
        " followed so that credentials stay with the configured host; point the config"
        " at the new address if it is right",
        status=response.status_code,
    )


def _redirect_target(here: Any, location: str) -> Any:
    """Where the client would go, resolved as httpx (and httpx2) resolve a ``Location``
    in ``Client._redirect_url``: ``http:///path`` keeps the host but not the port;
    ``None`` for a ``Location`` that is no URL (the client refuses to follow it)."""
    try:
        url = type(here)(location)
        if url.scheme and not url.host:
            url = url.copy_with(host=here.host)
        return here.join(url) if url.is_relative_url else url
    except Exception:
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: Any) -> tuple[str, str, int | None] | None:
    if url is None:
        return None
    return (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme))


class _Decoder:
    """Decompresses a body (if it is) and counts its decompressed size against the cap."""

    def __init__(self, encoding: str, limit: int | None) -> None:
        self.limit = limit
        self.size = 0
        # "deflate" is zlib data, but some servers send a raw deflate stream: as httpx
        # does, a first piece zlib refuses is read again as raw deflate.
        self._may_be_raw = encoding == "deflate"
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise ResponseParseError(
                f"the reply is encoded as {encoding!r}, which modelwire did not ask for"
                f" (it accepts {ACCEPT_ENCODING})"
            )

    def finish(self) -> bytes:
        """What the decompressor still holds once the body has ended."""
        return b"" if self._zlib is None else self.feed_decoded(self._zlib.flush())

    def feed(self, data: bytes) -> bytes:
        if self._zlib is not None:
            # at most one byte past the cap: enough to tell that it is exceeded
            room = 0 if self.limit is None else self.limit - self.size + 1
            may_be_raw, self._may_be_raw = self._may_be_raw, False
            try:
                data = self._zlib.decompress(data, room)
            except zlib.error as exc:
                if not may_be_raw:
                    raise ResponseParseError(
                        f"the reply's compressed body is broken ({exc})"
                    ) from exc
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.feed(data)
        return self.feed_decoded(data)

    def feed_decoded(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise ResponseParseError(
                f"the reply is larger than max_response_bytes={self.limit} bytes; raise"
                " `max_response_bytes` in the config if such replies are expected"
            )
        return data


class _SyncBody:
    """A reply body read through the decoder; a subclass adds the library's
    ``SyncByteStream`` base and ``_deadline_errors``."""

    _deadline_errors: _DeadlineErrors

    def __init__(self, inner: Any, decoder: _Decoder) -> None:
        self._inner = inner
        self._decoder = decoder

    def __iter__(self) -> Iterator[bytes]:
        parts = iter(self._inner)
        while True:
            with self._deadline_errors:
                part = next(parts, None)
            if part is None:
                break
            data = self._decoder.feed(part)
            if data:
                yield data
        tail = self._decoder.finish()
        if tail:
            yield tail

    def close(self) -> None:
        self._inner.close()


class _AsyncBody:
    """``_SyncBody`` for async clients (the library's ``AsyncByteStream``)."""

    _deadline_errors: _DeadlineErrors

    def __init__(self, inner: Any, decoder: _Decoder) -> None:
        self._inner = inner
        self._decoder = decoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        parts = aiter(self._inner)
        while True:
            with self._deadline_errors:
                part = await anext(parts, None)
            if part is None:
                break
            data = self._decoder.feed(part)
            if data:
                yield data
        tail = self._decoder.finish()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self._inner.aclose()


def _prepare(request: httpx.Request) -> None:
    _bound(None)  # no request starts after its deadline
    if request.headers.get("accept-encoding") != ACCEPT_ENCODING:
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING


def _checked(request: httpx.Request, response: httpx.Response, body: Any) -> httpx.Response:
    """The response, unless it redirects to another origin, with its body under the cap;
    the caller closes it when this raises."""
    refused = _refused_redirect(request, response)
    if refused is not None:
        raise refused
    return _guarded(response, body)


def _guarded(response: httpx.Response, body: Any) -> httpx.Response:
    """The response with its body read through the size cap (and decompressed here, so
    that the cap counts what the body really is)."""
    limits = current_limits()
    limit = None if limits is None else limits.max_response_bytes
    encoding, length = _framing(response)
    if encoding in ("", "identity"):
        if limit is None or length <= limit:
            # h11 reads no more than the Content-Length: a body so framed fits the cap
            return response
        response.stream = body(response.stream, _Decoder(encoding, limit))
        return response
    decoder = _Decoder(encoding, limit)
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length")
    ]
    return type(response)(
        response.status_code,
        headers=headers,
        stream=body(response.stream, decoder),
        extensions=response.extensions,
    )


def _framing(response: httpx.Response) -> tuple[str, float]:
    """The body's ``Content-Encoding`` (lower case, ``""`` for none) and the length its
    ``Content-Length`` frames (infinite when it does not), read in one pass."""
    encodings: list[bytes] = []
    length = b""
    for key, value in response.headers.raw:
        name = key.lower()
        if name == b"content-encoding":
            encodings.append(value)
        elif name == b"content-length":
            length = value
    encoding = b", ".join(encodings).strip().lower().decode("latin-1")
    return encoding, int(length) if length.isdigit() else float("inf")


def _environment_mounts(transport: type, options: dict[str, Any], library: Any) -> dict[str, Any]:
    # httpx reads these itself only for a client without a transport of its own
    get_environment_proxies = importlib.import_module(
        f"{library.__name__}._utils"
    ).get_environment_proxies
    return {
        pattern: None if proxy is None else transport(proxy=proxy, **options)
        for pattern, proxy in get_environment_proxies().items()
    }


class _Guarded:
    """What both transports add to the library's: the guarded network backend, proxy
    mounts, and the checks of ``handle_request``; a subclass names the library."""

    _library: Any  # the httpx module (``httpx`` or ``httpx2``)
    _backend: type[_Backend] | type[_AsyncBackend]
    _body: type[Any]
    _deadline_errors: _DeadlineErrors
    _pool: Any

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _guard(self._pool, self._backend, self._library)

    @classmethod
    def proxy_mounts(cls, **options: Any) -> dict[str, Any]:
        """The environment's proxies (``HTTPS_PROXY``, ``NO_PROXY``...), each on a guarded
        transport made with ``options``: pass as ``mounts=`` beside ``transport=``, since
        a client given a transport no longer reads them."""
        return _environment_mounts(cls, options, cls._library)


class _SyncGuarded(_Guarded):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _prepare(request)
        with self._deadline_errors:
            response = super().handle_request(request)  # type: ignore[misc]
        try:
            return _checked(request, response, self._body)
        except BaseException:
            response.close()
            raise


class _AsyncGuarded(_Guarded):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _prepare(request)
        with self._deadline_errors:
            response = await super().handle_async_request(request)  # type: ignore[misc]
        try:
            return _checked(request, response, self._body)
        except BaseException:
            await response.aclose()
            raise


_httpx_deadline_errors = _DeadlineErrors(httpx.TimeoutException)


class _Body(_SyncBody, httpx.SyncByteStream):
    _deadline_errors = _httpx_deadline_errors


class _AsyncBodyStream(_AsyncBody, httpx.AsyncByteStream):
    _deadline_errors = _httpx_deadline_errors


class GuardedTransport(_SyncGuarded, httpx.HTTPTransport):
    """``httpx.HTTPTransport`` keeping the attempt's deadline, size cap and origin."""

    _library = httpx
    _backend = _Backend
    _body = _Body
    _deadline_errors = _httpx_deadline_errors


class AsyncGuardedTransport(_AsyncGuarded, httpx.AsyncHTTPTransport):
    """``GuardedTransport`` for ``httpx.AsyncClient``."""

    _library = httpx
    _backend = _AsyncBackend
    _body = _AsyncBodyStream
    _deadline_errors = _httpx_deadline_errors


@functools.cache
def guarded_transports(library: str = "httpx") -> tuple[type[Any], type[Any]]:
    """The sync and async guarded transports for ``library``: ``"httpx"`` (the classes
    above) or ``"httpx2"``, for a client of the SDK's own HTTP library."""
    if library == "httpx":
        return GuardedTransport, AsyncGuardedTransport
    if library != "httpx2":
        raise ValueError(f"modelwire's transports run on httpx or httpx2, not {library!r}")
    module = importlib.import_module(library)
    shared = {"_library": module, "_deadline_errors": _DeadlineErrors(module.TimeoutException)}
    body = type("_Body", (_SyncBody, module.SyncByteStream), shared)
    async_body = type("_AsyncBodyStream", (_AsyncBody, module.AsyncByteStream), shared)
    sync = type(
        "GuardedTransport",
        (_SyncGuarded, module.HTTPTransport),
        {**shared, "_backend": _Backend, "_body": body, "__doc__": GuardedTransport.__doc__},
    )
    asynchronous = type(
        "AsyncGuardedTransport",
        (_AsyncGuarded, module.AsyncHTTPTransport),
        {**shared, "_backend": _AsyncBackend, "_body": async_body,
         "__doc__": AsyncGuardedTransport.__doc__},
    )  # fmt: skip
    return sync, asynchronous
