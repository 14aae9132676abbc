"""What every Ollama model type shares: its common config keys and its SDK clients.

The ``ollama`` SDK (and httpx under it) is imported only when a call is made, never
at module level, so validating a config, which reads the wrapper's signature, never
loads it. The SDK's httpx clients run on modelwire's transport
(``modelwire.GuardedTransport``), which keeps each attempt's deadline, the
``max_response_bytes`` cap and the configured origin.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

from modelwire import (
    BadRequestError,
    ConfigIssue,
    ModelChunk,
    ModelResponse,
    ModelWireError,
    ModelWrapper,
    ResponseParseError,
    SDKClients,
    Stream,
    Usage,
    is_secret_key,
    parse_structured,
    read_media,
    structured_schema,
)
from modelwire_ollama.errors import map_error
from modelwire_ollama.pricing import PRICES

if TYPE_CHECKING:
    from ollama import AsyncClient, Client

__all__ = [
    "DEFAULT_HOST",
    "OllamaOptions",
    "OllamaWrapper",
    "OutputFormat",
    "images_of",
    "parsed_of",
    "put_structured",
    "reply_fields",
]

DEFAULT_HOST = "http://127.0.0.1:11434"
HOST_ENV = "OLLAMA_HOST"
API_KEY_ENV = "OLLAMA_API_KEY"

#: Structured output: ``"json"`` for any JSON, or a JSON schema the reply must follow.
OutputFormat = Literal["json"] | dict[str, Any]

#: The request key holding a call's ``structured_model``, for ``_parse``; never sent.
_STRUCTURED = "structured_model"


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
    the keyword arguments of one SDK method (``_method`` names it), plus the call's
    ``structured_model`` (see ``put_structured``), which is kept for ``_parse`` and
    never sent.
    """

    model_name_param = "model"
    pricing_table = PRICES
    #: The ``ollama.Client`` method this type calls (``chat``, ``generate``, ``embed``).
    _method = ""
    #: The call arguments a type's ``generate_args`` config key may hold, checked at load
    #: by ``_put_call_args``; empty for a type without that key.
    _call_arg_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """The call arguments in ``generate_args`` are checked at load: a bad one fails
        the config, not its first call."""
        issues = super().validate_params(params)
        generate_args = params.get("generate_args")
        if cls._call_arg_names and isinstance(generate_args, Mapping):
            try:
                # unknown keys are the schema's to report (with a did-you-mean)
                known = {
                    key: generate_args[key] for key in cls._call_arg_names if key in generate_args
                }
                cls._put_call_args({}, known)
            except (BadRequestError, TypeError) as exc:
                message = exc.message if isinstance(exc, BadRequestError) else str(exc)
                issues.append(ConfigIssue("?", "generate_args", message))
        return issues

    @classmethod
    def _put_call_args(cls, request: dict[str, Any], args: dict[str, Any]) -> None:
        """Put a call's arguments (``_call_arg_names`` ones) into ``request`` as Ollama takes
        them; ``BadRequestError`` (or ``TypeError``) for what it cannot take."""
        raise NotImplementedError

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
            return getattr(self.clients.sync, self._method)(**_sent(request))

    async def _asend(self, request: dict[str, Any]) -> Any:
        with _shape_errors():
            return await getattr(self.clients.async_, self._method)(**_sent(request))

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        parts = getattr(self.clients.sync, self._method)(**_sent(request), stream=True)
        try:
            with _shape_errors():
                yield from parts
        finally:
            parts.close()

    async def _asend_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        parts = await getattr(self.clients.async_, self._method)(**_sent(request), stream=True)
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
        """The reply's text and usage, and ``parsed`` when the call gave a
        ``structured_model``."""
        try:
            text = self._text(reply) or ""
            fields = reply_fields(reply, self.model_name)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ResponseParseError(
                f"Ollama's reply does not have the expected shape: {exc}"
            ) from exc
        return ModelResponse(text=text, parsed=parsed_of(text, request), **fields)

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        """One NDJSON line; the stream is complete only at the ``done: true`` line, whose
        chunk the core gives the validated ``parsed`` of a structured call."""
        if stream.structured_model is None and _STRUCTURED in stream.request:
            stream.structured_model = stream.request[_STRUCTURED]
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


def reply_fields(reply: Any, model_name: str | None) -> dict[str, Any]:
    """What every Ollama reply gives a ``ModelResponse`` besides its content."""
    return {
        "raw": reply.model_dump(exclude_none=True),
        "usage": Usage.of(reply.prompt_eval_count, reply.eval_count),
        "model_name": reply.model or model_name,
        "finish_reason": reply.done_reason,
    }


# -- structured output: Ollama's ``format`` takes a JSON schema on /api/chat and /api/generate
def put_structured(request: dict[str, Any], structured_model: Any) -> None:
    """Ask for ``structured_model`` (a pydantic class or a JSON-schema dict) as Ollama's
    ``format`` schema, replacing the config's ``format``, and keep it for ``_parse``;
    ``BadRequestError`` for anything else."""
    request["format"] = structured_schema(structured_model)[1]
    request[_STRUCTURED] = structured_model


def parsed_of(text: str, request: dict[str, Any]) -> Any:
    """The reply validated against the call's ``structured_model`` (``None`` without
    one); ``ResponseParseError`` with ``.text`` and ``.validation_errors`` otherwise."""
    structured_model = request.get(_STRUCTURED)
    return None if structured_model is None else parse_structured(text, structured_model)


def _sent(request: dict[str, Any]) -> dict[str, Any]:
    """The SDK's arguments: the request without the private ``structured_model``."""
    if _STRUCTURED not in request:
        return request
    return {key: value for key, value in request.items() if key != _STRUCTURED}


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
