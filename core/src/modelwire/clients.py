"""Holders for SDK clients, so every plugin pools connections the same way.

``LazyClient`` builds the synchronous client on first use, once, under a lock.
``PerLoopClient`` keeps one asynchronous client per running event loop: an async
connection pool belongs to the loop that opened it, and reusing it under a later
``asyncio.run`` fails with "Event loop is closed". Neither imports anything heavy.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop

__all__ = ["LazyClient", "PerLoopClient"]

T = TypeVar("T")


class LazyClient(Generic[T]):
    """A client built on first use; ``close()`` releases it and the next use rebuilds it."""

    def __init__(
        self, factory: Callable[[], T], close: Callable[[T], object] | None = None
    ) -> None:
        self._factory = factory
        self._close = close
        self._lock = threading.Lock()
        self._client: T | None = None

    def get(self) -> T:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
                client = self._client
        return client

    @property
    def current(self) -> T | None:
        """The client if it has been built, without building it."""
        return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._close is not None:
            self._close(client)


class PerLoopClient(Generic[T]):
    """One client per running event loop, dropped once its loop has closed."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        # id(loop) -> (the loop, weakly; its client). Not a WeakKeyDictionary: a
        # client's connections reference their loop, which would then never be freed.
        self._clients: dict[int, tuple[weakref.ref[AbstractEventLoop], T]] = {}

    def get(self) -> T:
        """The running loop's client (call it from a coroutine)."""
        import asyncio  # already imported by whoever runs the loop

        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))  # every call's path: no lock to read
        if entry is not None and entry[0]() is loop:
            return entry[1]
        with self._lock:
            entry = self._clients.get(id(loop))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            for key, (owner, _) in list(self._clients.items()):
                alive = owner()
                if alive is None or alive.is_closed():
                    del self._clients[key]
            client = self._factory()
            self._clients[id(loop)] = (weakref.ref(loop), client)
            return client

    def pop_current(self) -> T | None:
        """Forget the running loop's client and hand it back to be closed."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(id(loop), None)
        return entry[1] if entry is not None and entry[0]() is loop else None

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()
