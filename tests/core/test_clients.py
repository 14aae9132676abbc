"""Client holders: built once, closable, one async client per event loop."""

from __future__ import annotations

import asyncio
import threading

from modelwire.clients import LazyClient, PerLoopClient


def test_lazy_client_built_once_across_threads() -> None:
    built: list[object] = []
    closed: list[object] = []

    def factory() -> object:
        built.append(object())
        return built[-1]

    holder = LazyClient(factory, close=closed.append)
    assert holder.current is None  # peeking builds nothing
    threads = [threading.Thread(target=holder.get) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    holder.close()
    assert closed == built
    assert holder.get() is built[1]


def test_per_loop_client_one_per_loop() -> None:
    holder: PerLoopClient[object] = PerLoopClient(object)

    async def twice() -> tuple[object, object]:
        return holder.get(), holder.get()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1]
    assert second[0] is not first[0]
    assert len(holder._clients) == 1  # the closed loop's client was dropped

    async def pop() -> object | None:
        current = holder.get()
        assert holder.pop_current() is current
        return holder.pop_current()

    assert asyncio.run(pop()) is None
