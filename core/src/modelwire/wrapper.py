"""``ModelWrapper``: the base class of every model type.

The base class owns everything that must behave the same for every provider:
budget admission, lifecycle hooks (usage, records, tracing), retries and the
mapping of SDK exceptions onto modelwire errors. A subclass supplies only the
provider-specific parts:

* ``__init__(self, config_name, *, <its parameters>, **kwargs)`` — its keyword
  parameters, with types and defaults, are the config schema; pass ``**kwargs``
  (the core-owned ``retry``, ``timeout``, ``budget``, ``pricing``) to ``super()``;
* ``_call`` (required), and ``_acall``, ``_stream``, ``_astream`` where the service
  offers them;
* ``_map_error(exc)`` turning the SDK's exceptions into modelwire errors;
* ``format(*msgs)`` turning ``Msg``s into the provider's input.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from modelwire.calls import Call
from modelwire.errors import (
    ConfigError,
    ConfigIssue,
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    ResponseParseError,
    ServiceUnavailableError,
    UnsupportedOperationError,
)
from modelwire.message import Msg, iter_msgs
from modelwire.redact import register_secret
from modelwire.response import ModelChunk, ModelResponse, Usage
from modelwire.retry import RetryConfig, RetryPolicy
from modelwire.spend import Pricing, PricingConfig, SpendTracker

if TYPE_CHECKING:
    from modelwire.plugins import PluginManager

__all__ = ["ModelWrapper"]

DEFAULT_TIMEOUT = 120.0


class ModelWrapper:
    """Calls one configured model; see the module docstring for what subclasses add."""

    #: The ``model_type`` this class implements (set by every subclass).
    model_type: ClassVar[str] = ""
    #: Which ``__init__`` parameter names the model (``model`` for Ollama).
    model_name_param: ClassVar[str] = "model_name"
    #: USD per 1,000 (prompt, completion) tokens, by model name or name prefix.
    pricing_table: ClassVar[Mapping[str, tuple[float, float]]] = {}
    #: Seconds before a call times out when the config sets no ``timeout``.
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT

    model_name: str | None = None

    def __init__(
        self,
        config_name: str,
        *,
        retry: RetryConfig | RetryPolicy | None = None,
        timeout: float | None = None,
        budget: float | None = None,
        pricing: PricingConfig | None = None,
    ) -> None:
        self.config_name = config_name
        self.retry_policy = RetryPolicy.from_config(retry)
        self.timeout = float(timeout) if timeout is not None else self.default_timeout
        self.budget = None if budget is None else float(budget)
        self._pricing = Pricing.from_config(pricing) if pricing is not None else None
        self.tracker = SpendTracker(config_name, self.budget)
        self._priced = False

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
            if self._pricing is None:
                self._pricing = self.price_for(self.model_name)
            self._priced = True
        return self._pricing

    def cost_of(self, usage: Usage | None) -> float | None:
        """USD for a usage, or ``None`` when no price is known."""
        pricing = self._pricing if self._priced else self.pricing
        return None if pricing is None else pricing.cost(usage)

    @property
    def usage(self) -> dict[str, Any]:
        """Calls, tokens and spend of this wrapper so far."""
        return self.tracker.snapshot()

    # -- what subclasses implement -------------------------------------------------
    def format(self, *args: Msg | list[Msg] | None) -> Any:
        """OpenAI-style ``[{"role", "content"}]`` messages; providers override."""
        return [{"role": msg.role, "content": _text_of(msg.content)} for msg in iter_msgs(*args)]

    def _call(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise NotImplementedError(f"{type(self).__name__} must implement _call")

    async def _acall(self, *args: Any, **kwargs: Any) -> ModelResponse:
        import asyncio  # on first async use: importing it costs ~15 ms at start-up

        return await asyncio.to_thread(self._call, *args, **kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ModelChunk]:
        raise UnsupportedOperationError(f"model_type {self.model_type!r} does not stream")

    def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ModelChunk]:
        return _thread_stream(lambda: self._stream(*args, **kwargs))

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        """Translate an SDK exception; ``None`` falls back to the generic mapping."""
        return None

    @property
    def supports_stream(self) -> bool:
        """Whether ``stream``/``astream`` work; by default, whether ``_stream`` is implemented."""
        return type(self)._stream is not ModelWrapper._stream

    def stream_unsupported_reason(self) -> str:
        """Why ``stream()`` is refused; override when streaming depends on the config."""
        return f"model_type {self.model_type!r} does not stream; call the model instead"

    def close(self) -> None:
        """Release pooled connections; wrappers holding SDK clients override this."""

    async def aclose(self) -> None:
        """Release pooled connections, async ones included; defaults to ``close()``."""
        self.close()

    def __enter__(self) -> ModelWrapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ModelWrapper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public API ------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> ModelResponse:
        hooks = _get_manager()
        call = self._begin(hooks, "call", args, kwargs)
        retries = 0
        while True:
            call.attempts += 1
            try:
                response = self._call(*args, **kwargs)
                break
            except Exception as exc:
                error = self._mapped(exc)
                delay = self.retry_policy.delay(retries, error)
                if delay is None:
                    _fail(hooks, call, error)
                    raise error from _cause(exc, error)
            except BaseException as exc:
                _fail(hooks, call, exc)
                raise
            retries += 1
            time.sleep(delay)
        hooks.dispatch("on_call_end", call=call, response=response)
        return response

    async def acall(self, *args: Any, **kwargs: Any) -> ModelResponse:
        hooks = _get_manager()
        if self.tracker.budget is None:  # admission never waits: no coroutine for it
            call = self._begin(hooks, "acall", args, kwargs)
        else:
            call = await self._abegin(hooks, "acall", args, kwargs)
        retries = 0
        while True:
            call.attempts += 1
            try:
                response = await self._acall(*args, **kwargs)
                break
            except Exception as exc:
                error = self._mapped(exc)
                delay = self.retry_policy.delay(retries, error)
                if delay is None:
                    _fail(hooks, call, error)
                    raise error from _cause(exc, error)
            except BaseException as exc:
                _fail(hooks, call, exc)
                raise
            retries += 1
            await _asleep(delay)
        hooks.dispatch("on_call_end", call=call, response=response)
        return response

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[ModelChunk]:
        """Yield chunks as they arrive; retries happen only before the first chunk."""
        if not self.supports_stream:
            raise UnsupportedOperationError(self.stream_unsupported_reason())
        return self._stream_chunks(args, kwargs)

    def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ModelChunk]:
        if not self.supports_stream:
            raise UnsupportedOperationError(self.stream_unsupported_reason())
        return self._astream_chunks(args, kwargs)

    # -- streaming machinery ------------------------------------------------------------
    def _stream_chunks(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[ModelChunk]:
        hooks = _get_manager()
        call = self._begin(hooks, "stream", args, kwargs)
        collected = _Collected()
        retries = 0
        while True:
            call.attempts += 1
            iterator: Iterator[ModelChunk] | None = None
            try:
                iterator = iter(self._stream(*args, **kwargs))
                chunk = next(iterator, None)
                break
            except Exception as exc:
                _close(iterator)
                error = self._mapped(exc)
                delay = self.retry_policy.delay(retries, error)
                if delay is None:
                    _fail(hooks, call, error)
                    raise error from _cause(exc, error)
            except BaseException as exc:
                _fail(hooks, call, exc)
                raise
            retries += 1
            time.sleep(delay)
        try:
            while chunk is not None:
                collected.add(chunk)
                try:
                    yield chunk
                except GeneratorExit:  # the consumer stopped early: book what it got
                    hooks.dispatch(
                        "on_call_end",
                        call=call,
                        response=collected.response(self, finish_reason="cancelled"),
                    )
                    _close(iterator)
                    raise
                chunk = next(iterator, None)
        except GeneratorExit:
            raise
        except Exception as exc:
            _close(iterator)
            error = collected.annotate(self._mapped(exc))
            _fail(hooks, call, error)
            raise error from _cause(exc, error)
        except BaseException as exc:
            _fail(hooks, call, exc)
            raise
        hooks.dispatch("on_call_end", call=call, response=collected.response(self))

    async def _astream_chunks(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[ModelChunk]:
        import asyncio  # on first async use: importing it costs ~15 ms at start-up

        hooks = _get_manager()
        if self.tracker.budget is None:  # admission never waits: no coroutine for it
            call = self._begin(hooks, "astream", args, kwargs)
        else:
            call = await self._abegin(hooks, "astream", args, kwargs)
        collected = _Collected()
        retries = 0
        while True:
            call.attempts += 1
            iterator: AsyncIterator[ModelChunk] | None = None
            try:
                iterator = aiter(self._astream(*args, **kwargs))
                chunk = await anext(iterator, None)
                break
            except Exception as exc:
                await _aclose(iterator)
                error = self._mapped(exc)
                delay = self.retry_policy.delay(retries, error)
                if delay is None:
                    _fail(hooks, call, error)
                    raise error from _cause(exc, error)
            except BaseException as exc:
                _fail(hooks, call, exc)
                raise
            retries += 1
            await asyncio.sleep(delay)
        try:
            while chunk is not None:
                collected.add(chunk)
                try:
                    yield chunk
                except (GeneratorExit, asyncio.CancelledError):
                    # The consumer stopped early (an abandoned generator is closed by a task
                    # that asyncio.run may cancel): book what it got.
                    collected.ended = True
                    hooks.dispatch(
                        "on_call_end",
                        call=call,
                        response=collected.response(self, finish_reason="cancelled"),
                    )
                    await _aclose(iterator)
                    raise
                chunk = await anext(iterator, None)
        except (GeneratorExit, asyncio.CancelledError) as exc:
            if not collected.ended:  # cancelled while waiting for the service, not at a yield
                _fail(hooks, call, exc)
            raise
        except Exception as exc:
            await _aclose(iterator)
            error = collected.annotate(self._mapped(exc))
            _fail(hooks, call, error)
            raise error from _cause(exc, error)
        except BaseException as exc:
            _fail(hooks, call, exc)
            raise
        hooks.dispatch("on_call_end", call=call, response=collected.response(self))

    # -- lifecycle ------------------------------------------------------------------------
    # Every call's path: one manager lookup per call, handed on (see _get_manager).
    def _begin(
        self, hooks: PluginManager, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Call:
        call = self._new_call(operation, args, kwargs)
        try:
            call.reserved = self.tracker.reserve()
        except ModelWireError as error:
            call.admitted = False
            hooks.dispatch("on_call_error", call=call, error=error)
            raise
        hooks.dispatch("on_call_start", call=call)
        return call

    async def _abegin(
        self, hooks: PluginManager, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Call:
        call = self._new_call(operation, args, kwargs)
        try:
            call.reserved = await self.tracker.areserve()
        except ModelWireError as error:
            call.admitted = False
            hooks.dispatch("on_call_error", call=call, error=error)
            raise
        hooks.dispatch("on_call_start", call=call)
        return call

    def _new_call(self, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        if self.budget is not None and self.pricing is None:
            raise ConfigError(
                [ConfigIssue(self.config_name, "budget", "a budget needs a price: set `pricing`")]
            )
        return Call(self, operation, args, kwargs, self.tracker)

    def _mapped(self, exc: Exception) -> ModelWireError:
        """The modelwire error for any exception raised while calling the service."""
        if isinstance(exc, ModelWireError):
            error = exc
        else:
            error = self._map_error(exc) or _generic_error(exc)
        if isinstance(error, ProviderError):
            error.config_name = error.config_name or self.config_name
            error.model_type = error.model_type or self.model_type
        return error

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} config_name={self.config_name!r}"
            f" model_type={self.model_type!r} model_name={self.model_name!r}>"
        )


class _Collected:
    """What a stream delivered so far: its text, last usage and finish reason."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model_name: str | None = None
        self.ended = False

    def add(self, chunk: ModelChunk) -> None:
        if chunk.text:
            self.parts.append(chunk.text)
        self.usage = chunk.usage or self.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.model_name = chunk.model_name or self.model_name

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def annotate(self, error: ModelWireError) -> ModelWireError:
        if isinstance(error, ProviderError) and self.parts and error.partial_text is None:
            error.partial_text = self.text
        return error

    def response(self, wrapper: ModelWrapper, finish_reason: str | None = None) -> ModelResponse:
        return ModelResponse(
            text=self.text,
            usage=self.usage,
            model_name=self.model_name or wrapper.model_name,
            finish_reason=finish_reason or self.finish_reason,
        )


def _get_manager() -> PluginManager:
    """``modelwire.plugins.get_manager``, imported on the first call (not at ``import
    modelwire``): this function then replaces itself with it, so that every later call
    costs one Python frame, not two."""
    global _get_manager
    from modelwire.plugins import get_manager

    _get_manager = get_manager
    return get_manager()


async def _asleep(seconds: float) -> None:
    import asyncio  # on a retry only: importing it costs ~15 ms at start-up

    await asyncio.sleep(seconds)


def _fail(hooks: PluginManager, call: Call, error: BaseException) -> None:
    if not isinstance(error, ModelWireError):
        error = ProviderError(f"call interrupted: {type(error).__name__}")
    hooks.dispatch("on_call_error", call=call, error=error)


def _generic_error(exc: Exception) -> ModelWireError:
    """Map exceptions no plugin recognised, by what they are rather than who raised them."""
    name = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):  # socket.timeout and asyncio's are aliases of it
        return ModelTimeoutError(f"the service did not answer in time ({name})")
    if isinstance(exc, ConnectionError):
        return ServiceUnavailableError(f"could not reach the service ({name})")
    if isinstance(exc, json.JSONDecodeError):
        return ResponseParseError(f"the service's reply is not valid JSON ({name})")
    return ProviderError(f"unexpected {name}")


def _cause(exc: BaseException, error: BaseException) -> BaseException | None:
    """Chain the SDK's exception; a modelwire error raised as is keeps its own cause."""
    return error.__cause__ if exc is error else exc


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


async def _aclose(iterator: Any) -> None:
    import asyncio  # on first async use: importing it costs ~15 ms at start-up

    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except (Exception, asyncio.CancelledError):  # closing at loop shutdown may be cancelled
            pass


def _text_of(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


async def _thread_stream(
    open_stream: Callable[[], Iterator[ModelChunk]],
) -> AsyncIterator[ModelChunk]:
    """Drive a synchronous stream from a worker thread, for wrappers without ``_astream``."""
    import asyncio  # on first async use: importing it costs ~15 ms at start-up

    iterator = await asyncio.to_thread(lambda: iter(open_stream()))
    sentinel = object()
    try:
        while True:
            chunk = await asyncio.to_thread(next, iterator, sentinel)
            if chunk is sentinel:
                return
            yield chunk  # type: ignore[misc]
    finally:
        await asyncio.to_thread(_close, iterator)
