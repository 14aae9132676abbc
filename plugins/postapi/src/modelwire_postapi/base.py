"""What ``post_api`` and ``post_api_chat`` share: config keys, request body, clients, reading.

Both types POST ``{messages_key: input, **json_args, **per-call kwargs}`` as JSON to
``api_url`` and read the answer out of whatever the service replies (see
``parsing``). They differ only in what they send (``format``) and what a reply may
hold (text, or also embeddings and image URLs).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from modelwire.clients import LazyClient, PerLoopClient
from modelwire.errors import (
    BadRequestError,
    ConfigIssue,
    ModelWireError,
    ResponseParseError,
)
from modelwire.redact import is_secret_key
from modelwire.response import ModelChunk, ModelResponse
from modelwire.retry import RetryPolicy
from modelwire.wrapper import ModelWrapper
from modelwire_postapi.errors import map_error
from modelwire_postapi.parsing import Path, ReplyParser
from modelwire_postapi.streaming import EventDecoder, is_stream_type

if TYPE_CHECKING:
    import httpx

__all__ = ["PostAPIBase", "PostArgs"]

# Header patterns, compiled by ``re`` (and cached) on first use: most configs set no headers.
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_PRINTABLE = r"^[\t\x20-\x7e]*$"
_INF = float("inf")


def _finite(value: float) -> bool:
    """``math.isfinite`` without loading ``math`` at start-up (NaN compares false)."""
    return -_INF < value < _INF


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


class PostAPIBase(ModelWrapper):
    """POSTs JSON to a user's own service and finds the answer in its reply."""

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
            self.secret(self.post_args["auth"][-1])
        self._sync: LazyClient[httpx.Client] = LazyClient(self._build_client, close=_close)
        self._async: PerLoopClient[httpx.AsyncClient] = PerLoopClient(self._build_async_client)

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
            if _number(value) and (value < minimum or not _finite(value)):
                problem(key, f"must be a finite number of at least {minimum}")
        if _number(params.get("timeout")) and not _finite(params["timeout"]):
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
            "timeout": httpx.Timeout(self.timeout),
            "headers": self._headers,
            "follow_redirects": args.get("follow_redirects", False),
            "trust_env": args.get("trust_env", True),
            "verify": _verify(args),
        }
        for key in ("params", "cookies", "proxy"):
            if args.get(key) is not None:
                options[key] = args[key]
        if args.get("auth"):
            user, password = args["auth"]
            options["auth"] = httpx.BasicAuth(user, password)
        return options

    def _sync_client(self) -> httpx.Client:
        """The wrapper's one ``httpx.Client``, built on first use: its pool is shared."""
        return self._sync.get()

    def _async_client(self) -> httpx.AsyncClient:
        """The wrapper's ``httpx.AsyncClient`` for the running loop."""
        return self._async.get()

    def _build_client(self) -> httpx.Client:
        import httpx

        return httpx.Client(**self._client_options(httpx))

    def _build_async_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(**self._client_options(httpx))

    def close(self) -> None:
        """Close the pooled connections; the next call opens new ones."""
        self._sync.close()
        self._async.clear()

    async def aclose(self) -> None:
        """``close()``, and close the async connections opened on the running loop."""
        aclient = self._async.pop_current()
        if aclient is not None:
            await aclient.aclose()
        self.close()

    # -- the request -----------------------------------------------------------------------
    def _body(self, inputs: Any, kwargs: Mapping[str, Any], *, streaming: bool) -> bytes:
        body: dict[str, Any] = {self.messages_key: inputs}
        if self.max_length is not None:
            body["max_length"] = self.max_length
        body.update(self.json_args)
        if streaming:
            body.update(self.stream_args)
        body.update(kwargs)
        try:
            return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise BadRequestError(
                f"the request body cannot be sent as JSON ({exc}): pass text, numbers,"
                " lists and dicts"
            ) from exc

    def _call(self, inputs: Any, **kwargs: Any) -> ModelResponse:
        content = self._body(inputs, kwargs, streaming=False)
        return self._response(self._sync_client().post(self.api_url, content=content))

    async def _acall(self, inputs: Any, **kwargs: Any) -> ModelResponse:
        content = self._body(inputs, kwargs, streaming=False)
        client = self._async_client()
        return self._response(await client.post(self.api_url, content=content))

    def _stream(self, inputs: Any, **kwargs: Any) -> Iterator[ModelChunk]:
        content = self._body(inputs, kwargs, streaming=True)
        with self._sync_client().stream("POST", self.api_url, content=content) as response:
            if not response.is_success:
                response.read()
                response.raise_for_status()
            reader = _StreamReader(self.parser, response.headers.get("content-type"))
            for line in response.iter_lines():
                yield from self._named(reader.feed(line))
            yield from self._named(reader.close())

    async def _astream(self, inputs: Any, **kwargs: Any) -> AsyncIterator[ModelChunk]:
        content = self._body(inputs, kwargs, streaming=True)
        client = self._async_client()
        async with client.stream("POST", self.api_url, content=content) as response:
            if not response.is_success:
                await response.aread()
                response.raise_for_status()
            reader = _StreamReader(self.parser, response.headers.get("content-type"))
            async for line in response.aiter_lines():
                for chunk in self._named(reader.feed(line)):
                    yield chunk
            for chunk in self._named(reader.close()):
                yield chunk

    # -- the reply -------------------------------------------------------------------------
    def _response(self, response: httpx.Response) -> ModelResponse:
        # Every reply's path: a plain JSON reply takes it without helper frames, which cost
        # several times their warm price between two HTTP calls (benchmarks/README.md).
        if response.status_code // 100 != 2:
            response.raise_for_status()
        content_type = _content_type(response)
        if is_stream_type(content_type):
            return self._assembled(response, content_type)
        try:  # JSON from the bytes (UTF-8/16/32): decoding text first costs a charset parse
            payload = json.loads(response.content)
        except ValueError:
            payload = _json(response)
        answer = self.parser.parse(payload)
        return ModelResponse(
            text=answer.text,
            embedding=answer.embedding,
            image_urls=answer.image_urls,
            raw=payload,
            usage=answer.usage,
            model_name=answer.model_name or self.model_name,
            finish_reason=answer.finish_reason,
        )

    def _assembled(self, response: httpx.Response, content_type: str | None) -> ModelResponse:
        """The reply of a service that always streams, as one response."""
        reader = _StreamReader(self.parser, content_type)
        chunks = [c for line in response.text.splitlines() for c in reader.feed(line)]
        chunks += reader.close()
        return ModelResponse(
            text="".join(chunk.text for chunk in chunks),
            raw=reader.raw,
            usage=next((c.usage for c in reversed(chunks) if c.usage), None),
            model_name=next((c.model_name for c in chunks if c.model_name), self.model_name),
            finish_reason=next(
                (c.finish_reason for c in reversed(chunks) if c.finish_reason), None
            ),
        )

    def _named(self, chunks: list[ModelChunk]) -> list[ModelChunk]:
        for chunk in chunks:
            chunk.model_name = chunk.model_name or self.model_name
        return chunks

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)

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


class _StreamReader:
    """Lines in, chunks out: the framing (``streaming``) and the shapes (``parsing``) joined."""

    def __init__(self, parser: ReplyParser, content_type: str | None) -> None:
        self._decoder = EventDecoder(content_type)
        self._events = parser.stream()
        #: Every event's payload, for ``ModelResponse.raw`` of an assembled stream.
        self.raw: list[Any] = []

    def feed(self, line: str) -> list[ModelChunk]:
        return self._chunks(self._decoder.feed(line))

    def close(self) -> list[ModelChunk]:
        return self._chunks(self._decoder.close()) + self._events.close()

    def _chunks(self, events: list[Any]) -> list[ModelChunk]:
        chunks = []
        for event in events:
            self.raw.append(event.data)
            chunk = self._events.chunk(event)
            if chunk is not None:
                chunks.append(chunk)
        return chunks


def _content_type(response: httpx.Response) -> str | None:
    """The reply's ``Content-Type``, read from the raw header list.

    ``headers.get`` first works out the encoding of every header of the reply: ~2 µs
    warm on each call, a tenth of the wrapper's own work on a plain JSON reply.
    """
    for key, value in response.headers.raw:
        if key.lower() == b"content-type":
            return value.decode("latin-1")
    return None


def _json(response: httpx.Response) -> Any:
    """The JSON of a reply whose bytes are not JSON (its declared charset, say); else a
    ``ResponseParseError`` that says what came instead."""
    text = response.text
    content_type = response.headers.get("content-type", "")
    where = f"HTTP {response.status_code}, Content-Type {content_type or 'none'!r}"
    if not text.strip():
        raise ResponseParseError(f"the service replied with an empty body ({where}); expected JSON")
    try:
        return json.loads(text)
    except ValueError as exc:
        html = "html" in content_type.lower() or text.lstrip()[:1] == "<"
        kind = "an HTML page" if html else "not valid JSON"
        raise ResponseParseError(
            f"the service's reply is {kind} ({where}): {exc}", body=text
        ) from exc


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
    # Not urllib.parse (it pulls in ipaddress) nor a regex (a compile): this runs at
    # config loading, on every post_api config.
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


def _close(client: httpx.Client) -> None:
    client.close()
