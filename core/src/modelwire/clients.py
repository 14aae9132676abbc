"""``SDKClients``: the one way a plugin holds its SDK's clients.

The synchronous client is built on first use, once, under a lock. Asynchronous
clients are kept one per running event loop: an async connection pool belongs to
the loop that opened it, and reusing it under a later ``asyncio.run`` fails with
"Event loop is closed". ``close()``/``aclose()`` really close what was opened.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from modelwire.redact import install_log_filters

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop

__all__ = ["SDKClients"]

S = TypeVar("S")
A = TypeVar("A")


class SDKClients(Generic[S, A]):
    """A wrapper's sync client and its per-event-loop async clients.

    ``build_sync``/``build_async`` make a client; ``close_sync``/``close_async``
    close one (by default its ``close()``, and for async clients ``aclose()`` where
    it exists, as httpx names it; awaited when it returns an awaitable).
    """

    def __init__(
        self,
        build_sync: Callable[[], S],
        build_async: Callable[[], A] | None = None,
        *,
        close_sync: Callable[[S], object] | None = None,
        close_async: Callable[[A], object] | None = None,
    ) -> None:
        self._build_sync = build_sync
        self._build_async = build_async
        self._close_sync = close_sync or _call_close
        self._close_async = close_async or _call_aclose
        self._lock = threading.Lock()
        self._sync: S | None = None
        # id(loop) -> (the loop, weakly; its client). Not a WeakKeyDictionary: a
        # client's connections reference their loop, which would then never be freed.
        self._async: dict[int, tuple[weakref.ref[AbstractEventLoop], A]] = {}

    @property
    def sync(self) -> S:
        """The synchronous client, built on first use and shared by every thread."""
        client = self._sync
        if client is None:
            with self._lock:
                if self._sync is None:
                    self._sync = self._build_sync()
                    install_log_filters()  # the SDK is imported now: its loggers exist
                client = self._sync
        return client

    @property
    def async_(self) -> A:
        """The running event loop's asynchronous client (read it inside a coroutine)."""
        import asyncio

        if self._build_async is None:
            raise TypeError("these SDK clients have no asynchronous client")
        loop = asyncio.get_running_loop()
        entry = self._async.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        with self._lock:
            entry = self._async.get(id(loop))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            for key, (owner, _) in list(self._async.items()):
                alive = owner()
                if alive is None or alive.is_closed():
                    del self._async[key]
            client = self._build_async()
            install_log_filters()
            self._async[id(loop)] = (weakref.ref(loop), client)
            return client

    def open(self, *, asynchronous: bool = False) -> None:
        """Build the client a call is about to use (the running loop's async one, when
        there is an async builder), so that building it is not part of an attempt."""
        if asynchronous and self._build_async is not None:
            self.async_  # noqa: B018 - built on first read
        else:
            self.sync  # noqa: B018

    @property
    def built(self) -> bool:
        """Whether any client has been built (and not closed since)."""
        return self._sync is not None or bool(self._async)

    def close(self) -> None:
        """Close the sync client; async clients of loops that have closed are dropped.

        Async clients of a loop that still runs are closed by ``aclose()`` from it.
        The next call builds new clients.
        """
        with self._lock:
            client, self._sync = self._sync, None
            for key, (owner, _) in list(self._async.items()):
                alive = owner()
                if alive is None or alive.is_closed():
                    del self._async[key]
        if client is not None:
            result = self._close_sync(client)
            if inspect.iscoroutine(result):
                result.close()
                raise TypeError("close_sync must not be a coroutine function")

    async def aclose(self) -> None:
        """Close the running loop's async client, then the sync client."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.pop(id(loop), None)
        if entry is not None and entry[0]() is loop:
            result = self._close_async(entry[1])
            if inspect.isawaitable(result):
                await result
        self.close()


def _call_close(client: Any) -> Any:
    close = getattr(client, "close", None)
    if close is None:
        raise TypeError(f"{type(client).__name__} has no close(): pass close_sync=/close_async=")
    return close()


def _call_aclose(client: Any) -> Any:
    aclose = getattr(client, "aclose", None)
    return aclose() if aclose is not None else _call_close(client)
