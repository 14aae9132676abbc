"""What the DashScope types share: config keys, SDK clients (built once, lazily and
thread-safely) and error mapping.

The 2.x SDK's ``dashscope.Client`` carries its own base URL, API key and timeout,
so two wrappers with different ``base_url``s in different threads never touch the
module-level ``dashscope.base_http_api_url`` the 1.x call style relies on. Its httpx
client is modelwire's: the SDK's own settings over ``modelwire.GuardedTransport``
(``AsyncGuardedTransport`` for ``dashscope.AsyncClient``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelwire import ModelWireError, ModelWrapper, SDKClients
from modelwire_dashscope.errors import map_error, unreadable_body, unreadable_code

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
            self._build_client,
            self._build_async_client,
            close_sync=_close,
            close_async=_aclose,
        )
        self._http_defaults: dict[str, Any] | None = None  # built under the clients' lock

    def _build_client(self) -> Client:
        import httpx
        from dashscope import Client

        from modelwire import GuardedTransport

        defaults = self._sdk_http_defaults()
        http_client = httpx.Client(
            transport=GuardedTransport(**defaults["transport"]),
            mounts=GuardedTransport.proxy_mounts(**defaults["transport"]),
            event_hooks={"response": [_check_reply]},
            **defaults["client"],
        )
        return Client(**self._options, http_client=http_client)

    def _build_async_client(self) -> AsyncClient:
        import httpx
        from dashscope import AsyncClient

        from modelwire import AsyncGuardedTransport

        defaults = self._sdk_http_defaults()
        http_client = httpx.AsyncClient(
            transport=AsyncGuardedTransport(**defaults["transport"]),
            mounts=AsyncGuardedTransport.proxy_mounts(**defaults["transport"]),
            event_hooks={"response": [_acheck_reply]},
            **defaults["client"],
        )
        return AsyncClient(**self._options, http_client=http_client)

    def _sdk_http_defaults(self) -> dict[str, Any]:
        """What the SDK would build its own httpx client with (base URL, headers with the
        key it resolved, timeouts, redirects; pool sizes), read once from a client it
        builds and closes unused. modelwire's transport (each attempt's deadline, the
        ``max_response_bytes`` cap, the configured origin) then goes under a copy."""
        if self._http_defaults is None:
            import httpx
            from dashscope import Client

            probe = Client(**self._options)
            try:
                config, http = probe.config, probe.transport.http_client
                self.secret(config.api_key)  # a key the SDK found on its own
                timeout = http.timeout
                self._http_defaults = {
                    "client": {
                        "base_url": http.base_url,
                        "headers": http.headers.copy(),
                        # a stream's wait for each next event is stream_idle_timeout
                        "timeout": httpx.Timeout(
                            max(self.timeout, self.stream_idle_timeout),
                            connect=timeout.connect,
                        ),
                        "follow_redirects": http.follow_redirects,
                    },
                    "transport": {
                        "limits": httpx.Limits(
                            max_connections=config.http_max_connections,
                            max_keepalive_connections=config.http_max_keepalive_connections,
                            keepalive_expiry=config.http_keepalive_expiry,
                        ),
                        # one SSL context (httpx's default) for every pool of this wrapper
                        "verify": httpx.create_ssl_context(),
                    },
                }
            finally:
                probe.close()
        return self._http_defaults

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)


def _close(client: Client) -> None:
    """The SDK leaves an ``http_client`` it was given open: close both."""
    http_client = client.transport.http_client
    try:
        client.close()
    finally:
        http_client.close()


async def _aclose(client: AsyncClient) -> None:
    http_client = client.transport.http_client
    try:
        await client.aclose()
    finally:
        await http_client.aclose()


def _check_reply(response: Any) -> None:
    """Raise for a JSON reply the SDK would crash on (``unreadable_code``,
    ``unreadable_body``); streams (``text/event-stream``) are left unread."""
    if "json" in response.headers.get("content-type", ""):
        response.read()
        _raise_if_unreadable(response)


async def _acheck_reply(response: Any) -> None:
    if "json" in response.headers.get("content-type", ""):
        await response.aread()
        _raise_if_unreadable(response)


def _raise_if_unreadable(response: Any) -> None:
    error = unreadable_body(response) if response.status_code < 300 else None
    error = error or unreadable_code(response)
    if error is not None:
        raise error
