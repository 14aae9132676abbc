"""What the DashScope types share: config keys, SDK clients (built once, lazily and
thread-safely) and error mapping.

The 2.x SDK's ``dashscope.Client`` carries its own base URL, API key and timeout,
so two wrappers with different ``base_url``s in different threads never touch the
module-level ``dashscope.base_http_api_url`` the 1.x call style relies on.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelwire import ModelWireError, ModelWrapper, SDKClients
from modelwire_dashscope.errors import map_error, unreadable_code

if TYPE_CHECKING:
    from dashscope import AsyncClient, Client

__all__ = ["API_KEY_ENV", "DashScopeWrapper", "api_key_or_env"]

#: Where the API key comes from when a config sets none (the SDK's own variable).
API_KEY_ENV = "DASHSCOPE_API_KEY"


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
        self._options: dict[str, Any] = {
            "api_key": self.secret(api_key_or_env(api_key)),
            "base_url": base_url.rstrip("/") if base_url else None,
            "workspace": workspace,
            "timeout": self.timeout,
            "protocol": "native",  # whatever DASHSCOPE_PROTOCOL says
            "max_retries": 0,  # the core retries
            "raise_on_error": True,
        }
        self.clients: SDKClients[Client, AsyncClient] = SDKClients(
            self._build_client, self._build_async_client
        )

    def _build_client(self) -> Client:
        from dashscope import Client

        client = Client(**self._options)
        self.secret(client.config.api_key)  # a key the SDK found on its own
        _on_response(client.transport.http_client, _check_reply)
        return client

    def _build_async_client(self) -> AsyncClient:
        from dashscope import AsyncClient

        client = AsyncClient(**self._options)
        self.secret(client.config.api_key)
        _on_response(client.transport.http_client, _acheck_reply)
        return client

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)


def _on_response(http_client: Any, hook: Any) -> None:
    hooks = http_client.event_hooks
    http_client.event_hooks = {**hooks, "response": [*hooks.get("response", []), hook]}


def _check_reply(response: Any) -> None:
    """Raise for a JSON reply whose error code the SDK would crash on (``unreadable_code``);
    streams (``text/event-stream``) are left unread."""
    if "json" in response.headers.get("content-type", ""):
        response.read()
        error = unreadable_code(response)
        if error is not None:
            raise error


async def _acheck_reply(response: Any) -> None:
    if "json" in response.headers.get("content-type", ""):
        await response.aread()
        error = unreadable_code(response)
        if error is not None:
            raise error
