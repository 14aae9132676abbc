"""``PostAPIWrapper``: what ``post_api`` and ``post_api_chat`` share.

Both types POST ``{messages_key: input, **json_args, **per-call kwargs}`` as JSON to
``api_url`` and read the answer out of whatever the service replies (see
``parsing``). They differ only in what they send (``format``) and what a reply may
hold (text, or also embeddings and image URLs).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypedDict

from modelwire import (
    BadRequestError,
    ConfigIssue,
    ModelChunk,
    ModelResponse,
    ModelWireError,
    ModelWrapper,
    ResponseParseError,
    RetryPolicy,
    SDKClients,
    Stream,
    is_secret_key,
    parse_structured,
)
from modelwire_postapi.errors import map_error
from modelwire_postapi.parsing import Path, ReplyParser
from modelwire_postapi.pricing import PRICING
from modelwire_postapi.streaming import EventDecoder, is_stream_type

if TYPE_CHECKING:
    import httpx

__all__ = ["PostAPIWrapper", "PostArgs", "PostRequest"]

_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_PRINTABLE = r"^[\t\x20-\x7e]*$"
#: What ``_send_stream`` yields after the last event: the body ended cleanly, or ``[DONE]``.
END = object()
DONE_MARKER = object()


class PostArgs(TypedDict, total=False):
    """The ``post_args`` key: connection options, named as in ``httpx`` (mostly ``requests``)."""

    params: dict[str, str | int | float | bool]
    cookies: dict[str, str]
    auth: list[str]
    verify: bool | str
    cert: str | list[str]
    proxy: str
    follow_redirects: bool
    trust_env: bool


class PostAPIWrapper(ModelWrapper):
    """POSTs JSON to a user's own service and finds the answer in its reply."""

    pricing_table = PRICING

    #: What a reply may carry; ``post_api`` also takes embeddings and image URLs.
    outputs: ClassVar[frozenset[str]] = frozenset({"text"})
    #: Config keys holding paths into the reply, checked when configs load.
    path_params: ClassVar[tuple[str, ...]] = ("response_path", "usage_path", "stream_path")

    def __init__(
        self,
        config_name: str,
        *,
        api_url: str,
        model_name: str | None = None,
        headers: dict[str, str] | None = None,
        json_args: dict[str, Any] | None = None,
        post_args: PostArgs | None = None,
        messages_key: str = "inputs",
        max_length: int | None = None,
        response_path: str | None = None,
        usage_path: str | None = None,
        stream: bool = False,
        stream_args: dict[str, Any] | None = None,
        stream_path: str | None = None,
        max_retries: int | None = None,
        retry_interval: float | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        retry = kwargs.pop("retry", None)
        if retry is None and (max_retries is not None or retry_interval is not None):
            retry = _retry_policy(max_retries, retry_interval)
        super().__init__(config_name, retry=retry, timeout=timeout, **kwargs)
        self.api_url = api_url
        self.model_name = model_name
        self.messages_key = messages_key
        self.max_length = max_length
        self.json_args: dict[str, Any] = dict(json_args or {})
        self.post_args: PostArgs = PostArgs(**(post_args or {}))
        self.streaming = bool(stream)
        self.stream_args: dict[str, Any] = {"stream": True} if stream_args is None else stream_args
        self.response_path = response_path
        self.usage_path = usage_path
        self.stream_path = stream_path
        self.parser = self._make_parser()
        self._headers = self._secret_headers(headers or {})
        for value in (self.json_args, self.stream_args, self.post_args.get("params")):
            self._register_secrets(value)
        for cookie in (self.post_args.get("cookies") or {}).values():
            self.secret(cookie)
        if self.post_args.get("auth"):
            user, password = self.post_args["auth"][0], self.post_args["auth"][-1]
            self.secret(password)
            # what a server echoing the Authorization header back would show
            self.secret(base64.b64encode(f"{user}:{password}".encode()).decode())
        self.clients: SDKClients[httpx.Client, httpx.AsyncClient] = SDKClients(
            self._build_client, self._build_async_client, close_async=_aclose
        )
        # A wrapper dropped without close() still closes its pool's sockets.
        weakref.finalize(self, self.clients.close)

    def _make_parser(self) -> ReplyParser:
        return ReplyParser(
            response_path=self.response_path,
            usage_path=self.usage_path,
            stream_path=self.stream_path,
            outputs=self.outputs,
        )

    # -- config checks ---------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        """Catch at load time what would otherwise fail on the first call."""
        issues = super().validate_params(params)

        def problem(key: str, message: str) -> None:
            issues.append(ConfigIssue("?", key, message))

        url = params.get("api_url")
        if isinstance(url, str) and not _is_url(url, ("http", "https")):
            problem(
                "api_url", "must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/llm/"
            )
        for key in cls.path_params:
            if isinstance(params.get(key), str):
                try:
                    Path.parse(params[key])
                except ValueError as exc:
                    problem(key, str(exc))
        key = params.get("messages_key", "inputs")
        if isinstance(key, str):
            if not key.strip():
                problem("messages_key", "must name the body key that carries the input")
            for section in ("json_args", "stream_args"):
                if isinstance(params.get(section), dict) and key in params[section]:
                    problem(
                        f"{section}.{key}",
                        f"would replace the input, which is sent as {key!r} (`messages_key`)",
                    )
        for key, minimum in (("max_length", 1), ("max_retries", 0), ("retry_interval", 0)):
            value = params.get(key)
            if _number(value) and (value < minimum or not math.isfinite(value)):
                problem(key, f"must be a finite number of at least {minimum}")
        if _number(params.get("timeout")) and not math.isfinite(params["timeout"]):
            problem("timeout", "must be a finite number of seconds")
        headers = params.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                if not re.match(_HEADER_NAME, str(name)):
                    problem(f"headers.{name}", "is not a valid HTTP header name")
                elif isinstance(value, str) and not re.match(_PRINTABLE, value):
                    problem(f"headers.{name}", "HTTP header values must be printable ASCII")
        if isinstance(params.get("post_args"), dict):
            issues += _post_args_issues(params["post_args"])
        return issues

    # -- secrets ---------------------------------------------------------------------------
    def _secret_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers to send; credential values are remembered so they are never shown."""
        for name, value in headers.items():
            if is_secret_key(name) and isinstance(value, str):
                self.secret(value)
                scheme_and_token = value.split()
                if len(scheme_and_token) > 1:  # "Basic <token>", "Token <token>"
                    self.secret(scheme_and_token[-1])
        sent = dict(headers)
        if not any(name.lower() == "content-type" for name in sent):
            sent["Content-Type"] = "application/json"
        return sent

    def _register_secrets(self, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if is_secret_key(key) and isinstance(item, str):
                    self.secret(item)
                else:
                    self._register_secrets(item)
        elif isinstance(value, list):
            for item in value:
                self._register_secrets(item)

    # -- clients ---------------------------------------------------------------------------
    def _client_options(self, httpx: Any) -> dict[str, Any]:
        args = self.post_args
        options: dict[str, Any] = {
            "timeout": httpx.Timeout(self.network_timeout),
            "headers": self._headers,
            "follow_redirects": args.get("follow_redirects", False),
            "trust_env": args.get("trust_env", True),
        }
        for key in ("params", "cookies"):
            if args.get(key) is not None:
                options[key] = args[key]
        if args.get("auth"):
            user, password = args["auth"]
            options["auth"] = httpx.BasicAuth(user, password)
        return options

    def _transport_options(self) -> dict[str, Any]:
        """What configures the connection itself: given to modelwire's transport (which
        keeps the call's deadline, size cap and origin), not to the client."""
        args = self.post_args
        options: dict[str, Any] = {
            "verify": _verify(args),
            "trust_env": args.get("trust_env", True),
        }
        if args.get("proxy") is not None:
            options["proxy"] = args["proxy"]
        return options

    def _build_client(self) -> httpx.Client:
        import httpx

        from modelwire import GuardedTransport

        options = self._transport_options()
        return httpx.Client(
            transport=GuardedTransport(**options),
            mounts=GuardedTransport.proxy_mounts(**options) if options["trust_env"] else None,
            **self._client_options(httpx),
        )

    def _build_async_client(self) -> httpx.AsyncClient:
        import httpx

        from modelwire import AsyncGuardedTransport

        options = self._transport_options()
        return httpx.AsyncClient(
            transport=AsyncGuardedTransport(**options),
            mounts=AsyncGuardedTransport.proxy_mounts(**options) if options["trust_env"] else None,
            **self._client_options(httpx),
        )

    # -- the provider step ---------------------------------------------------------------
    def _request(self, inputs: Any, **kwargs: Any) -> PostRequest:
        """The JSON bodies of a call and, when the config streams, of a stream."""
        return self._bodies(inputs, self.json_args, kwargs)

    def _bodies(
        self,
        inputs: Any,
        json_args: Mapping[str, Any],
        kwargs: Mapping[str, Any],
        structured_model: Any = None,
    ) -> PostRequest:
        """``{messages_key: inputs, max_length, **json_args, **stream_args (streams),
        **kwargs}`` encoded, for a plain call and for a stream."""
        body: dict[str, Any] = {self.messages_key: inputs}
        if self.max_length is not None:
            body["max_length"] = self.max_length
        body.update(json_args)
        stream_body = {**body, **self.stream_args, **kwargs} if self.streaming else None
        body.update(kwargs)
        return PostRequest(
            _encode(body),
            None if stream_body is None else _encode(stream_body),
            structured_model,
        )

    def _send(self, request: PostRequest) -> httpx.Response:
        return self.clients.sync.post(self.api_url, content=request.body)

    async def _asend(self, request: PostRequest) -> httpx.Response:
        return await self.clients.async_.post(self.api_url, content=request.body)

    def _parse(self, reply: httpx.Response, request: PostRequest) -> ModelResponse:
        if not reply.is_success:
            reply.raise_for_status()
        content_type = reply.headers.get("content-type")
        if is_stream_type(content_type):
            return self._assembled(reply, request)
        payload = _json(reply)
        answer = self.parser.parse(payload)
        parsed = None
        if request.structured_model is not None:
            if answer.refusal:
                raise ResponseParseError(
                    f"the model refused to answer in the schema: {answer.refusal}",
                    body=reply.text,
                )
            parsed = parse_structured(answer.text, request.structured_model)
        return ModelResponse(
            text=answer.text,
            embedding=answer.embedding,
            image_urls=answer.image_urls,
            raw=payload,
            usage=answer.usage,
            model_name=answer.model_name or self.model_name,
            finish_reason=answer.finish_reason,
            extra={} if answer.raw_tool_calls is None else {"tool_calls": answer.raw_tool_calls},
            tool_calls=answer.tool_calls,  # type: ignore[arg-type]
            thinking=answer.thinking,
            parsed=parsed,
        )

    def _send_stream(self, request: PostRequest) -> Iterator[Any]:
        with self.clients.sync.stream("POST", self.api_url, content=request.stream_body) as reply:
            if not reply.is_success:
                reply.read()
                reply.raise_for_status()
            decoder = EventDecoder(reply.headers.get("content-type"))
            for line in reply.iter_lines():
                yield from decoder.feed(line)
                if decoder.done:
                    break
            yield from decoder.close()
            yield DONE_MARKER if decoder.done else END

    async def _asend_stream(self, request: PostRequest) -> AsyncIterator[Any]:
        client = self.clients.async_
        async with client.stream("POST", self.api_url, content=request.stream_body) as reply:
            if not reply.is_success:
                await reply.aread()
                reply.raise_for_status()
            decoder = EventDecoder(reply.headers.get("content-type"))
            async for line in reply.aiter_lines():
                for event in decoder.feed(line):
                    yield event
                if decoder.done:
                    break
            for event in decoder.close():
                yield event
            yield DONE_MARKER if decoder.done else END

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        if event is DONE_MARKER:
            stream.state["done"] = True
        if event is END or event is DONE_MARKER:
            chunk = self.parser.end(stream.state)
        else:
            # the stream validates its text against this once it is complete
            stream.structured_model = stream.request.structured_model
            chunk = self.parser.chunk(event, stream.state, stream.tool_call_delta)
        if chunk is not None:
            chunk.model_name = chunk.model_name or self.model_name
        return chunk

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)

    def _token_bounds(self, request: PostRequest) -> tuple[int, int]:
        """A budget's worst case, read from the JSON body (the request holds it encoded)."""
        return super()._token_bounds(json.loads(request.body))

    def _assembled(self, reply: httpx.Response, request: PostRequest) -> ModelResponse:
        """The reply of a service that always streams, as one response."""
        stream = Stream(self, request)
        decoder = EventDecoder(reply.headers.get("content-type"))
        events: list[Any] = []
        for line in reply.text.splitlines():
            events += decoder.feed(line)
            if decoder.done:
                break
        events += decoder.close()
        for event in [*events, DONE_MARKER if decoder.done else END]:
            chunk = self._parse_chunk(event, stream)
            if chunk is not None:
                stream.add(chunk)
        response = stream.response()
        response.raw = [event.data for event in events]
        return response

    # -- streaming is a config choice ------------------------------------------------------
    @property
    def supports_stream(self) -> bool:
        return self.streaming

    def stream_unsupported_reason(self) -> str:
        return (
            f"config {self.config_name!r} does not stream: if the service at `api_url`"
            ' streams (SSE or NDJSON), set "stream": true (and "stream_args" if it'
            ' needs more than {"stream": true} in the body); else call the model'
        )


class PostRequest(NamedTuple):
    """What one call sends: the JSON body, and the body of a stream request; and the
    call's ``structured_model`` (never sent), which the reply is validated against."""

    body: bytes
    stream_body: bytes | None
    structured_model: Any = None


def _encode(body: dict[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise BadRequestError(
            f"the request body cannot be sent as JSON ({exc}): pass text, numbers, lists and dicts"
        ) from exc


def _json(response: httpx.Response) -> Any:
    """The JSON of a reply (its bytes as UTF-8, else its text in the charset it declares);
    else a ``ResponseParseError`` that says what came instead."""
    try:
        return _loads(response.content)
    except RecursionError as exc:
        raise ResponseParseError("the service's reply is nested too deeply to read") from exc
    except _NotFinite as exc:
        raise ResponseParseError(f"the service's reply holds {exc}, not a usable number") from exc
    except ValueError:
        pass
    content_type = response.headers.get("content-type", "")
    where = f"HTTP {response.status_code}, Content-Type {content_type or 'none'!r}"
    if response.charset_encoding is None:
        try:
            response.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResponseParseError(
                f"the service's reply is not UTF-8 text and declares no charset ({where})"
            ) from exc
    text = response.text
    if not text.strip():
        raise ResponseParseError(f"the service replied with an empty body ({where}); expected JSON")
    try:
        return _loads(text)
    except (ValueError, RecursionError) as exc:
        html = "html" in content_type.lower() or text.lstrip()[:1] == "<"
        kind = "an HTML page" if html else "not valid JSON"
        raise ResponseParseError(
            f"the service's reply is {kind} ({where}): {exc}", body=text
        ) from exc


class _NotFinite(ValueError):
    pass


def _finite(literal: str) -> float:
    """A JSON number as a float, refusing the ones beyond float's range (``1e400``)."""
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(literal)
    return value


#: One decoder for every reply (``json.loads`` given an option builds one per call).
_DECODER = json.JSONDecoder(parse_float=_finite)


def _loads(document: bytes | str) -> Any:
    """``json.loads(document, parse_float=_finite)``."""
    if isinstance(document, bytes):
        document = document.decode(json.detect_encoding(document), "surrogatepass")
    return _DECODER.decode(document)


def _retry_policy(max_retries: int | None, retry_interval: float | None) -> RetryPolicy:
    """The seed's ``max_retries``/``retry_interval`` as the core's backoff policy."""
    default = RetryPolicy()
    interval = default.initial_delay if retry_interval is None else float(retry_interval)
    return RetryPolicy(
        max_retries=default.max_retries if max_retries is None else int(max_retries),
        initial_delay=interval,
        max_delay=max(default.max_delay, interval),
    )


def _verify(args: PostArgs) -> Any:
    """``verify``/``cert`` as httpx 0.28 wants them: an ``SSLContext`` for files."""
    verify = args.get("verify", True)
    cert = args.get("cert")
    if not isinstance(verify, str) and not cert:
        return verify
    import ssl

    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(*([cert] if isinstance(cert, str) else cert))
    return context


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    value = value.strip()
    scheme, separator, rest = value.partition("://")
    if not separator or any(ch.isspace() for ch in value):
        return False
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return scheme.lower() in schemes and bool(netloc) and ("[" in netloc) == ("]" in netloc)


def _post_args_issues(args: Mapping[str, Any]) -> list[ConfigIssue]:
    issues = []

    def problem(key: str, message: str) -> None:
        issues.append(ConfigIssue("?", f"post_args.{key}", message))

    auth = args.get("auth")
    if isinstance(auth, list) and len(auth) != 2:
        problem("auth", 'must be ["user", "password"] (HTTP basic auth)')
    verify = args.get("verify")
    if isinstance(verify, str) and not os.path.isfile(verify):
        problem("verify", f"CA bundle {verify!r} does not exist")
    cert = args.get("cert")
    files = [cert] if isinstance(cert, str) else cert if isinstance(cert, list) else []
    if isinstance(cert, list) and len(cert) not in (1, 2):
        problem("cert", 'must be "cert.pem" or ["cert.pem", "key.pem"]')
    for file in files:
        if isinstance(file, str) and not os.path.isfile(file):
            problem("cert", f"{file!r} does not exist")
    proxy = args.get("proxy")
    if isinstance(proxy, str) and not _is_url(proxy, ("http", "https")):
        problem("proxy", "must be a proxy URL such as http://proxy:3128")
    for name, value in (args.get("cookies") or {}).items():
        if isinstance(value, str) and not re.match(_PRINTABLE, value):
            problem(f"cookies.{name}", "cookie values must be printable ASCII")
    return issues


def _aclose(client: httpx.AsyncClient) -> Any:
    return client.aclose()
