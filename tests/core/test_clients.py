"""``SDKClients``: one sync client, one async client per event loop, and real closing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from modelwire import SDKClients


class Client:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class AsyncClient:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def test_sync_client_is_built_once_under_threads() -> None:
    built: list[Client] = []
    lock = threading.Lock()

    def build() -> Client:
        with lock:
            built.append(Client())
            return built[-1]

    clients: SDKClients[Client, Any] = SDKClients(build)
    seen: list[Client] = []
    threads = [threading.Thread(target=lambda: seen.append(clients.sync)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and all(client is built[0] for client in seen)


def test_one_async_client_per_event_loop_and_closed_loops_dropped() -> None:
    clients: SDKClients[Client, AsyncClient] = SDKClients(Client, AsyncClient)

    async def twice() -> tuple[AsyncClient, AsyncClient]:
        return clients.async_, clients.async_

    first, again = asyncio.run(twice())
    second, _ = asyncio.run(twice())
    assert first is again and first is not second
    assert len(clients._async) == 1  # the first loop's client was dropped with its loop


def test_close_and_aclose_call_the_closers_and_rebuild_afterwards() -> None:
    clients: SDKClients[Client, AsyncClient] = SDKClients(Client, AsyncClient)
    sync = clients.sync
    clients.close()
    assert sync.closed and clients.sync is not sync

    async def cycle() -> AsyncClient:
        client = clients.async_
        await clients.aclose()
        return client

    closed = asyncio.run(cycle())
    assert closed.closed  # aclose() awaited, as httpx names it
    assert not clients.built


def test_custom_closers_are_used() -> None:
    closed: list[str] = []
    clients: SDKClients[Client, AsyncClient] = SDKClients(
        Client, AsyncClient, close_sync=lambda c: closed.append("sync")
    )
    clients.sync  # noqa: B018 - builds it
    clients.close()
    assert closed == ["sync"]
