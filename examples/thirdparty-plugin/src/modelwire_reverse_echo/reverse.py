"""``reverse_echo``: sends text to a reversing service over plain HTTP.

A stand-in for any in-house model API: the model type supplies the provider step
(build the request, send it, parse the reply and the stream's events, map errors);
modelwire's base class drives call, acall, stream and astream from them.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from modelwire import (
    ModelChunk,
    ModelResponse,
    ModelWireError,
    ModelWrapper,
    Msg,
    ResponseParseError,
    SDKClients,
    Stream,
    Usage,
    iter_msgs,
    text_of,
)
from modelwire_reverse_echo.errors import map_error
from modelwire_reverse_echo.pricing import PRICES

if TYPE_CHECKING:
    import httpx


#: The service's one route (the client's base URL is the config's ``base_url``).
PATH = "/v1/reverse"


class ReverseEchoWrapper(ModelWrapper):
    """Reverses its input text. Config keys: ``model_name``, ``base_url``, ``api_key``."""

    model_type = "reverse_echo"
    pricing_table = PRICES

    def __init__(
        self,
        config_name: str,
        *,
        model_name: str,
        base_url: str = "http://127.0.0.1:8765",
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.model_name = model_name
        self.base_url = base_url.rstrip("/")
        self._api_key = self.secret(api_key or os.environ.get("REVERSE_ECHO_API_KEY"))
        self.clients: SDKClients[httpx.Client, httpx.AsyncClient] = SDKClients(
            self._build_client, self._build_async_client
        )

    # httpx is imported when the first call needs a client, not when configs load. The
    # clients send through modelwire's transport, which keeps each attempt's deadline,
    # the config's max_response_bytes and the configured origin.
    def _build_client(self) -> httpx.Client:
        import httpx

        from modelwire import GuardedTransport

        return httpx.Client(transport=GuardedTransport(), **self._client_options())

    def _build_async_client(self) -> httpx.AsyncClient:
        import httpx

        from modelwire import AsyncGuardedTransport

        return httpx.AsyncClient(transport=AsyncGuardedTransport(), **self._client_options())

    def _client_options(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        # each read may wait as long as the call path allows: the transport keeps the deadline
        return {"base_url": self.base_url, "headers": headers, "timeout": self.network_timeout}

    def format(self, *args: Msg | list[Msg] | None) -> str:
        return "\n".join(text_of(msg.content) for msg in iter_msgs(*args))

    def _request(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError(f"reverse_echo takes a string, not {type(text).__name__}")
        return {"model": self.model_name, "text": text}

    def _send(self, request: dict[str, Any]) -> Any:
        reply = self.clients.sync.post(PATH, json={**request, "stream": False})
        reply.raise_for_status()
        return reply.json()

    async def _asend(self, request: dict[str, Any]) -> Any:
        reply = await self.clients.async_.post(PATH, json={**request, "stream": False})
        reply.raise_for_status()
        return reply.json()

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        try:
            return ModelResponse(
                text=reply["output"],
                raw=reply,
                usage=_usage(reply["usage"]),
                model_name=self.model_name,
                finish_reason="stop",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"unexpected reply shape: {exc!r}") from exc

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        with self.clients.sync.stream("POST", PATH, json={**request, "stream": True}) as reply:
            if reply.is_error:
                reply.read()  # the error's body, for its message
                reply.raise_for_status()
            for line in reply.iter_lines():
                if line.strip():
                    yield json.loads(line)

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        client = self.clients.async_
        async with client.stream("POST", PATH, json={**request, "stream": True}) as reply:
            if reply.is_error:
                await reply.aread()
                reply.raise_for_status()
            async for line in reply.aiter_lines():
                if line.strip():
                    yield json.loads(line)

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        if not isinstance(event, dict):
            raise ResponseParseError(f"a stream event is a JSON object, not {event!r}")
        usage = event.get("usage")
        try:
            return ModelChunk(
                text=str(event.get("delta", "")),
                raw=event,
                usage=None if usage is None else _usage(usage),
                model_name=self.model_name,
                # the service's last event carries the usage: that is the stream's end
                finish_reason=None if usage is None else "stop",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"unexpected stream event: {exc!r}") from exc

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)

    def _token_bounds(self, request: dict[str, Any]) -> tuple[int, int]:
        # What a budget reserves: the service counts a token per byte, both ways.
        size = len(request["text"].encode())
        return size, size


def _usage(usage: Any) -> Usage:
    return Usage.of(usage["input_tokens"], usage["output_tokens"])
