"""``Call``: one invocation of a wrapper, and the state machine every call path shares.

``ModelWrapper`` has four entry points (``__call__``, ``acall``, ``stream``,
``astream``); each is a short loop that does only its own kind of I/O (a blocking
or an awaited send, ``time.sleep`` or ``asyncio.sleep``) and asks its ``Call``
what to do next. Admission, lifecycle hooks, retry decisions, error mapping,
usage and spend are here, written once.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, NoReturn

from modelwire.errors import (
    BadRequestError,
    ConfigError,
    ConfigIssue,
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
    scrubbed_chain,
)
from modelwire.limits import AttemptLimits, attempt_limits
from modelwire.redact import modelwire_logger
from modelwire.response import ModelChunk, ModelResponse, Usage, content_of, merge_block_fields

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from pluggy import HookRelay

    from modelwire.wrapper import ModelWrapper

__all__ = ["AGENT_ARGUMENTS", "Call", "Stream", "reading_the_reply"]

#: The chat call arguments modelwire defines (blocks, tools, structured output); a
#: wrapper names those it takes in ``agent_arguments``.
AGENT_ARGUMENTS = frozenset({"tools", "tool_choice", "structured_model"})


class Call:
    """One invocation: which config, which operation, its arguments, its timing.

    Lifecycle hooks receive it; they may attach attributes of their own. ``request``
    is what the wrapper built from the arguments, ``attempts`` counts requests sent.
    """

    def __init__(
        self,
        wrapper: ModelWrapper,
        operation: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        hooks: HookRelay | None,
    ) -> None:
        self.wrapper = wrapper
        self.operation = operation
        self.args = args
        self.kwargs = kwargs
        self.hooks = hooks
        self.request: Any = None
        self.reserved = 0.0
        self.attempts = 0
        #: The limits of the attempt (or the stream's wait for a chunk) under way.
        self.limits: AttemptLimits | None = None
        self.admitted = False
        self.ended = False
        self.started_at = time.time()
        self._started = time.perf_counter()
        self._id: str | None = None

    # -- what hooks read ---------------------------------------------------------
    @property
    def id(self) -> str:
        """A random id, made on first use (most calls are never recorded)."""
        if self._id is None:
            self._id = os.urandom(16).hex()
        return self._id

    @property
    def config_name(self) -> str:
        return self.wrapper.config_name

    @property
    def model_type(self) -> str:
        return self.wrapper.model_type

    @property
    def model_name(self) -> str | None:
        return self.wrapper.model_name

    @property
    def tracker(self) -> Any:
        return self.wrapper.tracker

    @property
    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.perf_counter() - self._started

    def __repr__(self) -> str:
        return (
            f"Call(id={self.id!r}, config_name={self.config_name!r},"
            f" model_type={self.model_type!r}, operation={self.operation!r},"
            f" attempts={self.attempts})"
        )

    # -- the state machine ---------------------------------------------------------
    def prepare(self) -> None:
        """Build the request from the call's arguments; nothing is reserved yet."""
        wrapper = self.wrapper
        if wrapper.budget is not None and wrapper.pricing is None:
            self._refuse(
                ConfigError(
                    [
                        ConfigIssue(
                            wrapper.config_name, "budget", "a budget needs a price: set `pricing`"
                        )
                    ]
                )
            )
        refused = AGENT_ARGUMENTS.intersection(self.kwargs).difference(wrapper.agent_arguments)
        if refused:
            self._refuse(_refused_arguments(wrapper.model_type, refused, wrapper.agent_arguments))
        try:
            _check_input([*self.args, *self.kwargs.values()])
            self.request = wrapper._request(*self.args, **self.kwargs)
        except (TypeError, ValueError) as exc:  # arguments the model type cannot take
            self._refuse(BadRequestError(f"invalid call arguments: {exc}; nothing was sent"))
        except BaseException as exc:
            self._refuse(exc)

    def _worst_case(self) -> float:
        wrapper = self.wrapper
        return 0.0 if wrapper.budget is None else wrapper.worst_case_cost(self.request)

    def admit(self) -> None:
        """Build the SDK clients (importing an SDK is not the service's time, so it is not
        counted against ``timeout``), then reserve this call's worst-case cost, blocking
        while calls in flight settle."""
        try:
            self.wrapper._open_clients(asynchronous=False)
            self.reserved = self.wrapper.tracker.reserve(self._worst_case())
        except BaseException as exc:
            self._refuse(exc)
        self._admitted()

    async def aadmit(self) -> None:
        """``admit`` without blocking the event loop."""
        try:
            self.wrapper._open_clients(asynchronous=True)
            self.reserved = await self.wrapper.tracker.areserve(self._worst_case())
        except BaseException as exc:
            self._refuse(exc)
        self._admitted()

    def _admitted(self) -> None:
        self.admitted = True
        self._dispatch("on_call_start", call=self)

    def _refuse(self, exc: BaseException) -> NoReturn:
        """End a call that was never sent: hooks hear of it, the error is raised."""
        error = self.map(exc) if isinstance(exc, Exception) else exc
        self._end_with_error(error)
        if error is exc:
            raise exc
        raise error from _cause(exc, error)

    def attempt(self, seconds: float) -> attempt_limits:
        """One attempt: counted, and bounded by ``seconds`` (the config's ``timeout``)."""
        self.attempts += 1
        return self.limited(seconds, "timeout")

    def limited(self, seconds: float, setting: str) -> attempt_limits:
        """A context in which the deadline is ``seconds`` away (``setting`` names it)."""
        self.limits = AttemptLimits(
            time.monotonic() + seconds, seconds, setting, self.wrapper.max_response_bytes
        )
        return attempt_limits(self.limits)

    def retry_delay(self, exc: BaseException) -> float:
        """Seconds to wait before the next attempt after ``exc``, or raise the call's error.

        Anything but an ``Exception`` (cancellation, ``KeyboardInterrupt``) ends the call
        at once, releasing its reservation, and is raised as it is.
        """
        if not isinstance(exc, Exception):
            self._end_with_error(exc)
            raise exc
        error = self.map(exc)
        delay = self.wrapper.retry_policy.delay(self.attempts - 1, error)
        if delay is None:
            self._end_with_error(error)
            raise error from _cause(exc, error)
        return delay

    def finish(self, response: ModelResponse) -> ModelResponse:
        """Book a successful call's usage and spend, and tell the hooks."""
        self.ended = True
        wrapper = self.wrapper
        wrapper.tracker.settle(self.reserved, response.usage, wrapper.cost_of(response.usage))
        self._dispatch("on_call_end", call=self, response=response)
        return response

    def fail(self, exc: BaseException, stream: Stream | None = None) -> NoReturn:
        """End the call with ``exc`` (no retry), annotated with what a stream delivered."""
        error = self.map(exc) if isinstance(exc, Exception) else exc
        if stream is not None and isinstance(error, ProviderError) and stream.text:
            error.partial_text = error.partial_text or stream.text
        self._end_with_error(error, stream)
        if error is exc:
            raise exc
        raise error from _cause(exc, error)

    def abandon(self, stream: Stream) -> None:
        """The caller stopped reading a stream: book what it received."""
        if self.ended:
            return
        self.finish(stream.response(finish_reason="cancelled"))

    def _end_with_error(self, error: BaseException, stream: Stream | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        if self.admitted:
            usage = stream.usage if stream is not None else None
            self.wrapper.tracker.release(self.reserved, usage, self.wrapper.cost_of(usage))
        else:
            self.wrapper.tracker.refused(error)
        if not isinstance(error, ModelWireError):
            error = ProviderError(f"call interrupted: {type(error).__name__}")
        self._dispatch("on_call_error", call=self, error=error)

    def map(self, exc: Exception) -> ModelWireError:
        """The modelwire error for any exception met while making this call."""
        wrapper = self.wrapper
        # e.g. by the transport, under the SDK's own error
        own = _raised_by_modelwire(exc) or _redirect_loop(exc)
        if own is not None:
            error = own
        else:
            try:
                error = wrapper._map_error(exc) or _generic_error(exc)
            except Exception as mapper_failure:  # a mapper must never raise in its place
                message = (
                    f"{type(exc).__name__}: {exc} (and the error mapper of"
                    f" {wrapper.model_type!r} failed on it:"
                    f" {type(mapper_failure).__name__}: {mapper_failure})"
                )
                status = _http_status(exc)  # still typed (and retried) by its HTTP status
                error = (
                    ProviderError(message) if status is None else error_for_status(status, message)
                )
        limits = self.limits
        if (
            limits is not None
            and isinstance(error, ProviderError)
            and (error.retryable or error.status is None)
            and not isinstance(error, ResponseParseError)
            and time.monotonic() >= limits.deadline
        ):
            # the deadline cut the attempt short (no HTTP status came back): whatever the
            # SDK made of the cut connection or the cancelled task, it timed out
            error = limits.expired()
        if isinstance(error, ProviderError):
            error.config_name = error.config_name or wrapper.config_name
            error.model_type = error.model_type or wrapper.model_type
        return error

    def _dispatch(self, hook: str, **kwargs: Any) -> None:
        """Call a lifecycle hook that some plugin implements (one that none does is not
        called, so ``pm.trace`` shows only hooks with a listener); an observer that
        fails is logged, never fails the call."""
        if self.hooks is None:
            return
        caller = getattr(self.hooks, hook)
        if not caller.get_hookimpls():
            return
        try:
            caller(**kwargs)
        except Exception:
            modelwire_logger().exception("a modelwire %s hook failed", hook)


class Stream:
    """What a stream delivered so far; ``state`` is the wrapper's per-stream scratch space.

    A plugin hands tool-call fragments to ``tool_call_delta`` in ``_parse_chunk``;
    from the chunk that brings the ``finish_reason`` on, every chunk carries the
    complete ``tool_calls``. A plugin that sets ``structured_model`` gets the
    validated object in that chunk's ``parsed`` (and the response's).
    """

    def __init__(self, wrapper: ModelWrapper, request: Any) -> None:
        self.wrapper = wrapper
        self.request = request
        self.state: dict[str, Any] = {}
        self.parts: list[str] = []
        self.thinking_parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model_name: str | None = None
        self.chunks = 0
        self.structured_model: Any = None
        self.parsed: Any = None
        self._assembler: Any = None
        self._tool_calls: list[dict[str, Any]] | None = None
        #: The chunks' ``block_fields``, merged: kept on the response's blocks.
        self.block_fields: dict[str, dict[str, Any]] = {}

    def tool_call_delta(
        self,
        *,
        index: int | None = None,
        id: str | None = None,
        name: str | None = None,
        arguments: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Add one fragment of a tool call (see ``modelwire.ToolCallAssembler``)."""
        if self._assembler is None:
            from modelwire.tools import ToolCallAssembler

            self._assembler = ToolCallAssembler()
        self._assembler.add(index=index, id=id, name=name, arguments=arguments, extra=extra)
        self._tool_calls = None

    def add(self, chunk: ModelChunk) -> ModelChunk:
        self.chunks += 1
        if chunk.text:
            self.parts.append(chunk.text)
        if chunk.thinking:
            self.thinking_parts.append(chunk.thinking)
        if chunk.block_fields:
            merge_block_fields(self.block_fields, chunk.block_fields)
        self.usage = chunk.usage or self.usage
        newly_finished = chunk.finish_reason is not None and self.finish_reason is None
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.model_name = chunk.model_name or self.model_name
        if self.finish_reason is not None:
            if self._assembler and chunk.tool_calls is None:
                chunk.tool_calls = self.tool_calls()
            if newly_finished and self.structured_model is not None and chunk.parsed is None:
                from modelwire.structured import parse_structured

                self.parsed = parse_structured(self.text, self.structured_model)
            if chunk.parsed is None:
                chunk.parsed = self.parsed
        return chunk

    def tool_calls(self, *, lenient: bool = False) -> list[dict[str, Any]] | None:
        """The assembled calls (``ResponseParseError`` for unreadable arguments, unless
        ``lenient``: then ``None``)."""
        if self._assembler is None:
            return None
        if self._tool_calls is None:
            try:
                self._tool_calls = self._assembler.result()
            except ResponseParseError:
                if lenient:
                    return None
                raise
        return self._tool_calls

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def thinking(self) -> str | None:
        return "".join(self.thinking_parts) or None

    def check_complete(self) -> None:
        """A stream that ends before the service said it was done is an error."""
        if self.finish_reason is None:
            raise ResponseParseError(
                "the stream ended before the service said it was complete"
                f" ({self.chunks} chunk(s) received, no finish reason)"
            )

    def response(self, finish_reason: str | None = None) -> ModelResponse:
        tool_calls = self.tool_calls(lenient=True)
        content = None
        if self.block_fields:
            content = content_of(self.text, tool_calls, self.thinking, self.block_fields)  # type: ignore[arg-type]
        return ModelResponse(
            text=self.text,
            usage=self.usage,
            model_name=self.model_name or self.wrapper.model_name,
            finish_reason=finish_reason or self.finish_reason,
            tool_calls=tool_calls,  # type: ignore[arg-type]
            thinking=self.thinking,
            parsed=self.parsed,
            content=content,
        )


def _refused_arguments(
    model_type: str, refused: Iterable[str], taken: Iterable[str]
) -> BadRequestError:
    """The error for agent arguments a type does not take, saying what it does take."""
    names = " or ".join(f"`{name}`" for name in sorted(refused))
    takes = sorted(taken)
    fix = (
        f"it takes {', '.join(f'`{name}`' for name in takes)} only"
        if takes
        else "tools and structured output need a chat model type"
    )
    return BadRequestError(f"model_type {model_type!r} takes no {names} ({fix}); nothing was sent")


#: How deep a call's input may nest: far beyond any real message list, well short of
#: the recursion limit of the JSON encoders the SDKs use.
MAX_INPUT_DEPTH = 64


def _check_input(arguments: list[Any]) -> None:
    """Refuse call arguments no service could be sent: nested past ``MAX_INPUT_DEPTH``,
    holding themselves, or text with a lone surrogate (which no UTF-8 encoder takes).

    Walks one nesting level at a time, so that the depth is the level's and no
    recursion limit is met, and enters a list or dict once however often it is held.
    """
    level = arguments
    entered: set[int] = set()
    met_twice = False
    depth = 0
    while level:
        below: list[Any] = []
        for item in level:
            if isinstance(item, str):
                if not item.isascii():
                    _check_text(item)
            elif isinstance(item, (dict, list, tuple)):
                if id(item) in entered:
                    met_twice = True
                    continue
                entered.add(id(item))
                below.extend(item.values() if isinstance(item, dict) else item)
        if below and depth >= MAX_INPUT_DEPTH:
            raise BadRequestError(
                f"the call's input nests deeper than {MAX_INPUT_DEPTH} levels; nothing was sent"
            )
        level = below
        depth += 1
    if met_twice and _holds_itself(arguments):
        raise BadRequestError(
            "the call's input holds itself (a list or dict inside its own items), which no"
            " JSON can say; nothing was sent"
        )


def _holds_itself(value: Any) -> bool:
    """Whether a list or dict in ``value`` holds itself, or merely appears twice (a
    depth-first walk that enters each once: linear, however much is shared)."""
    open_: set[int] = set()
    done: set[int] = set()
    pending: list[tuple[Any, bool]] = [(value, False)]
    while pending:
        item, leaving = pending.pop()
        key = id(item)
        if leaving:
            open_.discard(key)
            done.add(key)
        elif isinstance(item, (dict, list, tuple)) and key not in done:
            if key in open_:
                return True
            open_.add(key)
            pending.append((item, True))
            items = item.values() if isinstance(item, dict) else item
            pending.extend((child, False) for child in items)
    return False


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            f"the call's input holds a lone surrogate ({text[exc.start]!r}), which"
            " is not valid Unicode text; nothing was sent"
        ) from None


#: What goes wrong while reading a reply's data: a missing key, a wrong type, a nesting
#: too deep, a number too large.
_DATA_ERRORS = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
    OverflowError,
)


class _ReadingTheReply:
    """``with reading_the_reply:`` turns a data error into ``ResponseParseError``; network
    errors that a lazily read body raises pass through to the error mapping."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if kind is not None and issubclass(kind, _DATA_ERRORS):
            raise ResponseParseError(
                f"the service's reply could not be read ({kind.__name__}: {exc})"
            ) from exc


reading_the_reply = _ReadingTheReply()


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, where it says (``status_code``,
    ``status``, or its ``response``'s)."""
    for holder in (exc, getattr(exc, "response", None)):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
                return value
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during (at most 16)."""
    current: BaseException | None = exc
    for _ in range(16):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def _raised_by_modelwire(exc: BaseException) -> ModelWireError | None:
    """``exc`` itself or the first modelwire error in the chain an SDK wrapped it in."""
    return next((e for e in _chain(exc) if isinstance(e, ModelWireError)), None)


def _redirect_loop(exc: BaseException) -> ProviderError | None:
    """httpx's or httpx2's ``TooManyRedirects``, however an SDK wrapped it (openai's
    ``APIConnectionError``): no broken connection, so never retried as one."""
    for current in _chain(exc):
        if type(current).__name__ == "TooManyRedirects":
            return ProviderError(
                f"the service redirects in a loop ({current}); check the configured URL"
            )
    return None


def _generic_error(exc: Exception) -> ModelWireError:
    """Map exceptions no plugin recognised, by what they are rather than who raised them."""
    name = f"{type(exc).__name__}: {exc}"
    status = _http_status(exc)
    if status is not None:  # an SDK's HTTP error the plugin left unmapped
        return error_for_status(status, name)
    if isinstance(exc, TimeoutError):  # socket.timeout and asyncio's are aliases of it
        return ModelTimeoutError(f"the service did not answer in time ({name})")
    if isinstance(exc, ConnectionError):
        return ServiceUnavailableError(f"could not reach the service ({name})")
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)):
        return ResponseParseError(f"the service's reply could not be read ({name})")
    return ProviderError(f"unexpected {name}")


def _cause(exc: BaseException, error: BaseException) -> BaseException | None:
    """The exception to chain: the SDK's (a modelwire error raised as is keeps its own
    cause), as a scrubbed copy so that no traceback prints a secret it holds."""
    return scrubbed_chain(error.__cause__ if exc is error else exc)
