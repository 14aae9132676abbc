"""What every Ollama model type shares: its common config keys and its SDK clients.

The ``ollama`` SDK (and httpx under it) is imported only when a call is made, never
at module level, so validating a config, which reads the wrapper's signature, never
loads it. The SDK's httpx clients run on modelwire's transport
(``modelwire.GuardedTransport``), which keeps each attempt's deadline, the
``max_response_bytes`` cap and the configured origin.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from modelwire import (
    BadRequestError,
    ModelChunk,
    ModelResponse,
    ModelWireError,
    ModelWrapper,
    ResponseParseError,
    SDKClients,
    Stream,
    Usage,
    is_secret_key,
    read_media,
)
from modelwire_ollama.errors import map_error
from modelwire_ollama.pricing import PRICES

if TYPE_CHECKING:
    from ollama import AsyncClient, Client

__all__ = ["DEFAULT_HOST", "OllamaOptions", "OllamaWrapper", "OutputFormat", "images_of"]

DEFAULT_HOST = "http://127.0.0.1:11434"
HOST_ENV = "OLLAMA_HOST"
API_KEY_ENV = "OLLAMA_API_KEY"

#: Structured output: ``"json"`` for any JSON, or a JSON schema the reply must follow.
OutputFormat = Literal["json"] | dict[str, Any]


class OllamaOptions(TypedDict, total=False):
    """Ollama's model options; the server ignores unknown ones, so typos are caught at load."""

    # load-time options
    numa: bool
    num_ctx: int
    num_batch: int
    num_gpu: int
    main_gpu: int
    low_vram: bool
    f16_kv: bool
    logits_all: bool
    vocab_only: bool
    use_mmap: bool
    use_mlock: bool
    embedding_only: bool
    num_thread: int
    # runtime options
    num_keep: int
    seed: int
    num_predict: int
    top_k: int
    top_p: float
    min_p: float
    tfs_z: float
    typical_p: float
    repeat_last_n: int
    temperature: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    penalize_newline: bool
    stop: list[str]


class OllamaWrapper(ModelWrapper):
    """The config keys, clients and reply reading the three Ollama types share.

    Keys: ``model``, ``host``, ``headers``, ``options``, ``keep_alive``. A request is
    the keyword arguments of one SDK method (``_method`` names it).
    """

    model_name_param = "model"
    pricing_table = PRICES
    #: The ``ollama.Client`` method this type calls (``chat``, ``generate``, ``embed``).
    _method = ""

    def __init__(
        self,
        config_name: str,
        *,
        model: str,
        host: str | None = None,
        headers: dict[str, str] | None = None,
        options: OllamaOptions | None = None,
        keep_alive: str | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.model = model
        self.model_name = model
        self.host = host or os.environ.get(HOST_ENV) or DEFAULT_HOST
        self.options: dict[str, Any] | None = dict(options) if options else None
        self.keep_alive = keep_alive
        self._headers = self._secret_headers(headers)
        self.clients = SDKClients(self._build_client, self._build_async_client)

    def _secret_headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        """Config headers with credentials registered as secrets.

        ``OLLAMA_API_KEY`` is read here rather than by the SDK, so that it is
        registered too (the SDK would add it silently).
        """
        result = dict(headers or {})
        for name, value in result.items():
            if is_secret_key(name):
                self.secret(value)
        if not any(name.lower() == "authorization" for name in result):
            api_key = self.secret(os.environ.get(API_KEY_ENV))
            if api_key:
                result["Authorization"] = f"Bearer {api_key}"
        return result

    # -- clients: ``ollama.Client(**kwargs)`` passes its kwargs to ``httpx.Client`` -------
    def _client_options(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "timeout": self.network_timeout,  # each read's; the transport keeps the deadline
            "headers": self._headers,
        }

    def _build_client(self) -> Client:
        from ollama import Client

        from modelwire import GuardedTransport

        return Client(
            transport=GuardedTransport(**_TRANSPORT_OPTIONS),
            mounts=GuardedTransport.proxy_mounts(**_TRANSPORT_OPTIONS),
            **self._client_options(),
        )

    def _build_async_client(self) -> AsyncClient:
        from ollama import AsyncClient

        from modelwire import AsyncGuardedTransport

        return AsyncClient(
            transport=AsyncGuardedTransport(**_TRANSPORT_OPTIONS),
            mounts=AsyncGuardedTransport.proxy_mounts(**_TRANSPORT_OPTIONS),
            **self._client_options(),
        )

    def _common(self) -> dict[str, Any]:
        """The keyword arguments every SDK call of this config carries."""
        return {"model": self.model, "options": self.options, "keep_alive": self.keep_alive}

    # -- the provider step shared by the three types ----------------------------------
    def _send(self, request: dict[str, Any]) -> Any:
        with _shape_errors():
            return getattr(self.clients.sync, self._method)(**request)

    async def _asend(self, request: dict[str, Any]) -> Any:
        with _shape_errors():
            return await getattr(self.clients.async_, self._method)(**request)

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        parts = getattr(self.clients.sync, self._method)(**request, stream=True)
        try:
            with _shape_errors():
                yield from parts
        finally:
            parts.close()

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        parts = await getattr(self.clients.async_, self._method)(**request, stream=True)
        try:
            with _shape_errors():
                async for part in parts:
                    yield part
        finally:
            await parts.aclose()

    def _text(self, reply: Any) -> str | None:
        """The generated text of one reply or stream part."""
        raise NotImplementedError

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        try:
            return ModelResponse(
                text=self._text(reply) or "",
                raw=reply.model_dump(exclude_none=True),
                usage=Usage.of(reply.prompt_eval_count, reply.eval_count),
                model_name=reply.model or self.model_name,
                finish_reason=reply.done_reason,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"Ollama's reply does not have the expected shape: {exc}"
            ) from exc

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """One NDJSON line; the stream is complete only at the ``done: true`` line."""
        try:
            done = event.done is True
            return ModelChunk(
                text=self._text(event) or "",
                raw=event.model_dump(exclude_none=True),
                usage=Usage.of(event.prompt_eval_count, event.eval_count) if done else None,
                model_name=event.model or self.model_name,
                finish_reason=(event.done_reason or "stop") if done else None,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"Ollama's stream line does not have the expected shape: {exc}"
            ) from exc

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc, model=self.model, host=self.host)


#: httpx's defaults for what configures the connection; given to the transport, since a
#: client given a transport ignores them.
_TRANSPORT_OPTIONS: dict[str, Any] = {"verify": True, "trust_env": True}


@contextmanager
def _shape_errors() -> Iterator[None]:
    """The SDK builds its reply with ``Model(**json)``: a non-object reply fails with a
    bare TypeError (or AttributeError in a stream), which is a parse error here."""
    try:
        yield
    except (TypeError, AttributeError) as exc:
        raise ResponseParseError(f"Ollama's reply is not a JSON object: {exc}") from exc


def images_of(urls: list[str]) -> list[str]:
    """Images as the base64 Ollama takes; it never fetches a URL, so a web URL is refused."""
    try:
        return [read_media(url).base64 for url in urls]
    except (ValueError, OSError) as exc:
        raise BadRequestError(
            f"Ollama takes images as local files or data: URLs, not this one: {exc}"
        ) from exc
