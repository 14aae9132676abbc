"""What every Ollama model type shares: its common config keys and its SDK clients.

The ``ollama`` SDK (and httpx under it) is imported only in the methods that build
clients, so validating a config, which reads the wrapper's signature, never loads it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from modelwire.clients import LazyClient, PerLoopClient
from modelwire.errors import ModelWireError, ResponseParseError
from modelwire.redact import is_secret_key
from modelwire.response import LazyRaw, ModelChunk, ModelResponse, Usage
from modelwire.wrapper import ModelWrapper
from modelwire_ollama.errors import map_error
from modelwire_ollama.pricing import PRICES

if TYPE_CHECKING:
    from ollama import AsyncClient, Client

__all__ = ["DEFAULT_HOST", "OllamaOptions", "OllamaWrapper", "OutputFormat"]

DEFAULT_HOST = "http://127.0.0.1:11434"
HOST_ENV = "OLLAMA_HOST"
API_KEY_ENV = "OLLAMA_API_KEY"
_UNFINISHED = "the stream ended before Ollama's final (done) message"

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
    """The config keys and clients the three Ollama types share.

    Keys: ``model``, ``host``, ``headers``, ``options``, ``keep_alive``.
    """

    model_name_param = "model"
    pricing_table = PRICES

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
        self._sync: LazyClient[Client] = LazyClient(self._build_client, close=_close)
        self._async: PerLoopClient[AsyncClient] = PerLoopClient(self._build_async_client)

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

    # -- clients ------------------------------------------------------------------------
    def _client(self) -> Client:
        """The sync client, built on first use; httpx pools its connections."""
        return self._sync.get()

    def _aclient(self) -> AsyncClient:
        """The async client of the running event loop."""
        return self._async.get()

    def _build_client(self) -> Client:
        from ollama import Client

        return Client(host=self.host, timeout=self.timeout, headers=self._headers)

    def _build_async_client(self) -> AsyncClient:
        from ollama import AsyncClient

        return AsyncClient(host=self.host, timeout=self.timeout, headers=self._headers)

    def _request_params(self) -> dict[str, Any]:
        """The keyword arguments every SDK call of this config carries."""
        return {"model": self.model, "options": self.options, "keep_alive": self.keep_alive}

    # -- replies --------------------------------------------------------------------------
    def _response(self, reply: Any, text: str | None) -> ModelResponse:
        return ModelResponse(
            text=text,
            raw=LazyRaw(partial(reply.model_dump, exclude_none=True)),
            usage=Usage.of(reply.prompt_eval_count, reply.eval_count),
            model_name=reply.model or self.model_name,
            finish_reason=reply.done_reason,
        )

    def _chunk(self, part: Any, text: str | None) -> ModelChunk:
        """One NDJSON line; only the final (``done``) line carries counts."""
        done = bool(part.done)
        return ModelChunk(
            text=text or "",
            raw=LazyRaw(partial(part.model_dump, exclude_none=True)),
            usage=Usage.of(part.prompt_eval_count, part.eval_count) if done else None,
            model_name=part.model or self.model_name,
            finish_reason=part.done_reason if done else None,
        )

    def _chunks(
        self, parts: Iterator[Any], text: Callable[[Any], str | None]
    ) -> Iterator[ModelChunk]:
        """Chunks of an SDK stream; the connection is released however the caller stops."""
        done = False
        try:
            for part in parts:
                done = bool(part.done)
                yield self._chunk(part, text(part))
        finally:
            close = getattr(parts, "close", None)
            if close is not None:
                close()
        if not done:
            raise ResponseParseError(_UNFINISHED)

    async def _achunks(
        self, parts: AsyncIterator[Any], text: Callable[[Any], str | None]
    ) -> AsyncIterator[ModelChunk]:
        """``_chunks`` for the async SDK stream."""
        done = False
        try:
            async for part in parts:
                done = bool(part.done)
                yield self._chunk(part, text(part))
        finally:
            aclose = getattr(parts, "aclose", None)
            if aclose is not None:
                await aclose()
        if not done:
            raise ResponseParseError(_UNFINISHED)

    def close(self) -> None:
        """Close the pooled connections of the sync client; the next call opens new ones."""
        self._sync.close()

    async def aclose(self) -> None:
        """Close the running loop's async client too, then the sync one."""
        client = self._async.pop_current()
        if client is not None:
            await client.close()
        self.close()

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc, model=self.model, host=self.host)


def _close(client: Client) -> None:
    client.close()
