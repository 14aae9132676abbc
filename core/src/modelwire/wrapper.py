"""``ModelWrapper``: the base class of every model type, and the one call path.

The base class owns everything that must behave the same for every provider:
budget admission, lifecycle hooks, retries, error mapping, usage and spend (see
``modelwire.calls``). A model type supplies only the provider step:

* ``__init__(self, config_name, *, <its parameters>, **kwargs)``: its keyword
  parameters, with types and defaults, are the config schema; pass ``**kwargs``
  (the core-owned keys) on to ``super().__init__``;
* ``_request(*args, **kwargs)``: the call's arguments turned into what is sent
  (no I/O); ``format(*msgs)``: ``Msg``s turned into the call's input;
* ``_send(request)`` and ``_asend(request)``: one request through the SDK, using
  ``self.clients`` (``_asend`` defaults to ``_send`` in a worker thread);
* ``_parse(reply, request)``: the reply turned into a ``ModelResponse``;
* for streams, ``_send_stream(request)``/``_asend_stream(request)`` yielding the
  SDK's events and ``_parse_chunk(event, stream)`` turning one into a
  ``ModelChunk`` (or ``None`` to skip it);
* ``_map_error(exc)``: the SDK's exceptions turned into modelwire errors.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from modelwire.calls import Call, Stream, reading_the_reply
from modelwire.content import text_of
from modelwire.errors import (
    BadRequestError,
    ConfigIssue,
    ModelWireError,
    UnsupportedOperationError,
)
from modelwire.message import Msg, iter_msgs
from modelwire.redact import register_secret
from modelwire.response import ModelChunk, ModelResponse, Usage
from modelwire.retry import RetryConfig, RetryPolicy
from modelwire.spend import (
    Pricing,
    PricingConfig,
    SpendTracker,
    output_token_cap,
    prompt_token_bound,
)

if TYPE_CHECKING:
    from pluggy import HookRelay

    from modelwire.clients import SDKClients

__all__ = ["ModelWrapper"]

DEFAULT_TIMEOUT = 120.0
#: The largest reply body read when the config sets no ``max_response_bytes``.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ModelWrapper:
    """Calls one configured model; see the module docstring for what subclasses add."""

    #: The ``model_type`` this class implements (the registration sets it when missing).
    model_type: ClassVar[str] = ""
    #: Which ``__init__`` parameter names the model (``model`` for Ollama).
    model_name_param: ClassVar[str] = "model_name"
    #: USD per 1,000 (prompt, completion) tokens, by model name or name prefix.
    pricing_table: ClassVar[Mapping[str, tuple[float, float]]] = {}
    #: Seconds before a call times out when the config sets no ``timeout``.
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    #: Output tokens a budget reserves for a call that sets no cap of its own
    #: (``max_tokens`` and its kin); 0 for types that generate no tokens (embeddings).
    default_output_cap: ClassVar[int] = 4096
    #: Which of modelwire's chat call arguments (``AGENT_ARGUMENTS``: ``tools``,
    #: ``tool_choice``, ``structured_model``) the type takes; a call giving any other
    #: is refused before anything is sent, rather than passed on to the service.
    agent_arguments: ClassVar[frozenset[str]] = frozenset()

    model_name: str | None = None
    #: The SDK clients, for wrappers that hold some; ``close``/``aclose`` close them.
    clients: SDKClients[Any, Any] | None = None
    #: The lifecycle hooks calls are reported to: a registry sets its plugin manager's
    #: (``manager.hook``); a wrapper built by hand reports to none until it is set.
    hooks: HookRelay | None = None

    def __init__(
        self,
        config_name: str,
        *,
        retry: RetryConfig | None = None,
        timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        budget: float | None = None,
        pricing: PricingConfig | None = None,
    ) -> None:
        self.config_name = config_name
        self.retry_policy = RetryPolicy.from_config(retry)
        #: Seconds one attempt may take, headers and body included; for a stream, the
        #: wait for its first chunk. ``stream_idle_timeout``: the wait for each next one.
        self.timeout = float(timeout) if timeout is not None else self.default_timeout
        self.stream_idle_timeout = (
            float(stream_idle_timeout) if stream_idle_timeout is not None else self.timeout
        )
        #: The largest reply body (decompressed) read before ``ResponseParseError``.
        self.max_response_bytes = int(max_response_bytes)
        self.budget = None if budget is None else float(budget)
        self._pricing = Pricing.from_config(pricing) if pricing is not None else None
        self._priced = pricing is not None
        self.tracker = SpendTracker(config_name, self.budget)

    # -- helpers for subclasses ------------------------------------------------
    @staticmethod
    def secret(value: str | None) -> str | None:
        """Remember a credential so that modelwire never prints it; returns it."""
        register_secret(value)
        return value

    @classmethod
    def price_for(cls, model_name: str | None) -> Pricing | None:
        """This plugin's price for a model: exact name first, then the longest prefix."""
        if not model_name:
            return None
        table = cls.pricing_table
        if model_name in table:
            return Pricing.from_config(table[model_name])
        prefixes = [name for name in table if model_name.startswith(name)]
        if prefixes:
            return Pricing.from_config(table[max(prefixes, key=len)])
        return None

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Checks beyond the signature's types; extend in a subclass, call ``super()``."""
        issues = []
        if params.get("budget") is not None and params.get("pricing") is None:
            model_name = params.get(cls.model_name_param)
            if cls.price_for(model_name if isinstance(model_name, str) else None) is None:
                issues.append(
                    ConfigIssue(
                        "?",
                        "budget",
                        f"no price is known for model {model_name!r}, so a budget cannot be"
                        ' enforced; add "pricing": {"prompt": <USD per 1K tokens>,'
                        ' "completion": <USD per 1K tokens>}',
                    )
                )
        return issues

    @property
    def pricing(self) -> Pricing | None:
        """The config's ``pricing``, else the plugin's price for this model."""
        if not self._priced:
            self._pricing = self.price_for(self.model_name)
            self._priced = True
        return self._pricing

    def cost_of(self, usage: Usage | None) -> float | None:
        """USD for a usage, or ``None`` when no price is known."""
        pricing = self.pricing
        return None if pricing is None else pricing.cost(usage)

    def worst_case_cost(self, request: Any) -> float:
        """USD a budget reserves before sending ``request``: its token bounds at this
        config's prices (0 when no price is known)."""
        pricing = self.pricing
        if pricing is None:
            return 0.0
        return pricing.cost_of_tokens(*self._token_bounds(request))

    @property
    def usage(self) -> dict[str, Any]:
        """Calls, tokens and spend of this wrapper so far."""
        return self.tracker.snapshot()

    # -- the provider step: what subclasses implement ---------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A plugin's ``format`` is wrapped once, here, so that messages it cannot turn
        into its service's shape raise ``BadRequestError``, never a bare ``KeyError``."""
        super().__init_subclass__(**kwargs)
        format = cls.__dict__.get("format")
        if format is not None and not getattr(format, "_refuses_cleanly", False):
            cls.format = _refusing_cleanly(format)  # type: ignore[method-assign]

    def format(self, *args: Msg | list[Msg] | None) -> Any:
        """OpenAI-style ``[{"role", "content"}]`` messages; providers override."""
        return [{"role": msg.role, "content": text_of(msg.content)} for msg in iter_msgs(*args)]

    def _request(self, *args: Any, **kwargs: Any) -> Any:
        """The call's arguments as the request ``_send`` takes (no I/O).

        By default the positional input and the keyword arguments as they came.
        """
        if len(args) != 1:
            raise TypeError(
                f"{type(self).__name__} takes one input (the output of format()),"
                f" not {len(args)} positional arguments"
            )
        return {"input": args[0], **kwargs}

    def _send(self, request: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _send")

    async def _asend(self, request: Any) -> Any:
        import asyncio

        return await asyncio.to_thread(self._send, request)

    def _parse(self, reply: Any, request: Any) -> ModelResponse:
        raise NotImplementedError(f"{type(self).__name__} must implement _parse")

    def _send_stream(self, request: Any) -> Iterator[Any]:
        raise UnsupportedOperationError(self.stream_unsupported_reason())

    def _asend_stream(self, request: Any) -> AsyncIterator[Any]:
        return _in_thread(lambda: iter(self._send_stream(request)))

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _parse_chunk")

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        """Translate an SDK exception; ``None`` falls back to the generic mapping."""
        return None

    def _token_bounds(self, request: Any) -> tuple[int, int]:
        """At most how many (prompt, completion) tokens ``request`` can use: what a
        budget reserves. By default every string in the request counts one token per
        byte, and the output is the request's own cap (``max_tokens``,
        ``max_new_tokens``, ``num_predict``, ``max_output_tokens``...) or
        ``default_output_cap``; override when the request holds its cap elsewhere."""
        cap = output_token_cap(request)
        return prompt_token_bound(request), self.default_output_cap if cap is None else cap

    @property
    def supports_stream(self) -> bool:
        """Whether ``stream``/``astream`` work; by default, whether ``_send_stream`` exists."""
        return type(self)._send_stream is not ModelWrapper._send_stream

    def stream_unsupported_reason(self) -> str:
        """Why ``stream()`` is refused; override when streaming depends on the config."""
        return f"model_type {self.model_type!r} does not stream; call the model instead"

    @property
    def network_timeout(self) -> float:
        """The per-operation timeout to give an SDK: the longest wait the call path allows
        (``modelwire.GuardedTransport`` cuts each operation to the attempt's deadline)."""
        return max(self.timeout, self.stream_idle_timeout)

    # -- connections ---------------------------------------------------------------------
    def _open_clients(self, *, asynchronous: bool) -> None:
        if self.clients is not None:
            self.clients.open(asynchronous=asynchronous)

    def close(self) -> None:
        """Close pooled connections; the next call opens new ones."""
        if self.clients is not None:
            self.clients.close()

    async def aclose(self) -> None:
        """Close pooled connections, the running loop's async ones included."""
        if self.clients is not None:
            await self.clients.aclose()
        self.close()

    def __enter__(self) -> ModelWrapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ModelWrapper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the public API: four short loops over one Call --------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> ModelResponse:
        call = self._new_call("call", args, kwargs)
        call.admit()
        delay = 0.0
        while True:
            try:
                if delay:
                    time.sleep(delay)
                with call.attempt(self.timeout):
                    response = self._parsed(self._send(call.request), call.request)
                return call.finish(response)
            except BaseException as exc:
                delay = call.retry_delay(exc)

    async def acall(self, *args: Any, **kwargs: Any) -> ModelResponse:
        import asyncio

        call = self._new_call("acall", args, kwargs)
        await call.aadmit()
        delay = 0.0
        while True:
            try:
                if delay:
                    await asyncio.sleep(delay)
                with call.attempt(self.timeout) as limits:
                    async with asyncio.timeout_at(limits.deadline):  # the loop's clock
                        reply = await self._asend(call.request)
                        response = self._parsed(reply, call.request)
                return call.finish(response)
            except BaseException as exc:
                delay = call.retry_delay(exc)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[ModelChunk]:
        """Yield chunks as they arrive; retries happen only before the first chunk."""
        if not self.supports_stream:
            raise UnsupportedOperationError(self.stream_unsupported_reason())
        return self._stream(self._new_call("stream", args, kwargs))

    def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ModelChunk]:
        """``stream`` for asyncio."""
        if not self.supports_stream:
            raise UnsupportedOperationError(self.stream_unsupported_reason())
        return self._astream(self._new_call("astream", args, kwargs))

    def _stream(self, call: Call) -> Iterator[ModelChunk]:
        call.admit()
        stream = Stream(self, call.request)
        delay = 0.0
        while True:
            events = None
            try:
                if delay:
                    time.sleep(delay)
                with call.attempt(self.timeout):
                    events = iter(self._send_stream(call.request))
                    chunk = self._next_chunk(events, stream)
                break
            except BaseException as exc:
                _close(events)
                delay = call.retry_delay(exc)
        try:
            while chunk is not None:
                try:
                    yield stream.add(chunk)
                except GeneratorExit:
                    call.abandon(stream)
                    raise
                with call.limited(self.stream_idle_timeout, "stream_idle_timeout"):
                    chunk = self._next_chunk(events, stream)
            stream.check_complete()
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.fail(exc, stream)
        finally:
            _close(events)
        call.finish(stream.response())

    async def _astream(self, call: Call) -> AsyncIterator[ModelChunk]:
        import asyncio

        await call.aadmit()
        stream = Stream(self, call.request)
        delay = 0.0
        while True:
            events = None
            try:
                if delay:
                    await asyncio.sleep(delay)
                with call.attempt(self.timeout) as limits:
                    async with asyncio.timeout_at(limits.deadline):
                        events = aiter(self._asend_stream(call.request))
                        chunk = await self._anext_chunk(events, stream)
                break
            except BaseException as exc:
                await _aclose(events)
                delay = call.retry_delay(exc)
        try:
            while chunk is not None:
                try:
                    yield stream.add(chunk)
                except (GeneratorExit, asyncio.CancelledError):
                    # The consumer stopped early (an abandoned generator is closed at
                    # loop shutdown, by a task that may be cancelled): book what it got.
                    call.abandon(stream)
                    raise
                with call.limited(self.stream_idle_timeout, "stream_idle_timeout") as limits:
                    async with asyncio.timeout_at(limits.deadline):
                        chunk = await self._anext_chunk(events, stream)
            stream.check_complete()
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.fail(exc, stream)
        finally:
            await _aclose(events)
        call.finish(stream.response())

    def _parsed(self, reply: Any, request: Any) -> ModelResponse:
        with reading_the_reply:
            return self._parse(reply, request)

    def _next_chunk(self, events: Iterator[Any], stream: Stream) -> ModelChunk | None:
        for event in events:
            with reading_the_reply:
                chunk = self._parse_chunk(event, stream)
            if chunk is not None:
                return chunk
        return None

    async def _anext_chunk(self, events: AsyncIterator[Any], stream: Stream) -> ModelChunk | None:
        async for event in events:
            with reading_the_reply:
                chunk = self._parse_chunk(event, stream)
            if chunk is not None:
                return chunk
        return None

    def _new_call(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        call = Call(self, operation, args, kwargs, self.hooks)
        call.prepare()
        return call

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} config_name={self.config_name!r}"
            f" model_type={self.model_type!r} model_name={self.model_name!r}>"
        )


def _refusing_cleanly(format: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(format)
    def checked(self: ModelWrapper, *args: Any, **kwargs: Any) -> Any:
        try:
            return format(self, *args, **kwargs)
        except ModelWireError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
            raise BadRequestError(
                f"the messages cannot be sent: {type(exc).__name__}: {exc}"[:400],
                config_name=self.config_name,
                model_type=self.model_type,
            ) from None

    checked._refuses_cleanly = True  # type: ignore[attr-defined]
    return checked


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


async def _aclose(iterator: Any) -> None:
    import asyncio

    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except (Exception, asyncio.CancelledError):  # closing at loop shutdown may be cancelled
            pass


async def _in_thread(open_stream: Any) -> AsyncIterator[Any]:
    """Drive a synchronous event iterator from worker threads, for wrappers without
    ``_asend_stream``."""
    import asyncio

    iterator = await asyncio.to_thread(open_stream)
    done = object()
    try:
        while (event := await asyncio.to_thread(next, iterator, done)) is not done:
            yield event
    finally:
        await asyncio.to_thread(_close, iterator)
