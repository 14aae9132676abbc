"""What the DashScope types share: config keys, SDK clients (built once, lazily and
thread-safely) and error mapping.

The 2.x SDK's ``dashscope.Client`` carries its own base URL, API key and timeout,
so two wrappers with different ``base_url``s in different threads never touch the
module-level ``dashscope.base_http_api_url`` the 1.x call style relies on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelwire.clients import LazyClient, PerLoopClient
from modelwire.errors import ModelWireError
from modelwire.wrapper import ModelWrapper
from modelwire_dashscope.errors import map_error

if TYPE_CHECKING:
    from dashscope import AsyncClient, Client

__all__ = ["API_KEY_ENV", "DashScopeClients", "DashScopeWrapper", "api_key_or_env"]

#: Where the API key comes from when a config sets none (the SDK's own variable).
API_KEY_ENV = "DASHSCOPE_API_KEY"


class DashScopeClients:
    """One ``dashscope.Client`` and one ``dashscope.AsyncClient`` per running event loop.

    httpx binds an async connection pool to the loop that opened it, so an async
    client is kept per loop: a wrapper then works across repeated ``asyncio.run``.
    SDK retries are off (the core retries) and the protocol is pinned to DashScope's
    native wire format whatever ``DASHSCOPE_PROTOCOL`` says.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        workspace: str | None,
        timeout: float,
        secret: Callable[[str | None], str | None],
    ) -> None:
        self._options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url.rstrip("/") if base_url else None,
            "workspace": workspace,
            "timeout": timeout,
            "protocol": "native",
            "max_retries": 0,
            "raise_on_error": True,
        }
        self._secret = secret
        self._sync: LazyClient[Client] = LazyClient(self._build, close=_close)
        self._async: PerLoopClient[AsyncClient] = PerLoopClient(self._build_async)

    def sync(self) -> Client:
        """The synchronous client, built on first use."""
        return self._sync.get()

    def aio(self) -> AsyncClient:
        """The asynchronous client of the running event loop, built on first use."""
        return self._async.get()

    def close(self) -> None:
        """Close the sync client's pooled connections; the next call opens new ones."""
        self._sync.close()

    async def aclose(self) -> None:
        """Close the running loop's async client too, then the sync one."""
        client = self._async.pop_current()
        if client is not None:
            await client.aclose()
        self.close()

    def _build(self) -> Client:
        from dashscope import Client

        client = Client(**self._options)
        self._secret(client.config.api_key)  # a key the SDK found on its own
        return client

    def _build_async(self) -> AsyncClient:
        from dashscope import AsyncClient

        client = AsyncClient(**self._options)
        self._secret(client.config.api_key)
        return client


def api_key_or_env(api_key: str | None) -> str | None:
    """The configured key, else ``DASHSCOPE_API_KEY``."""
    return api_key or os.environ.get(API_KEY_ENV) or None


class DashScopeWrapper(ModelWrapper):
    """The config keys, clients and error mapping the three DashScope types share.

    Keys: ``model_name``, ``api_key`` (else ``DASHSCOPE_API_KEY``), ``base_url``,
    ``workspace``, ``generate_args``.
    """

    def __init__(
        self,
        config_name: str,
        *,
        model_name: str,
        api_key: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        generate_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.model_name = model_name
        self.generate_args = dict(generate_args or {})
        self._clients = DashScopeClients(
            api_key=self.secret(api_key_or_env(api_key)),
            base_url=base_url,
            workspace=workspace,
            timeout=self.timeout,
            secret=self.secret,
        )

    def close(self) -> None:
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)


def _close(client: Client) -> None:
    client.close()
