"""``GeminiWrapper``: what both Gemini types share — endpoint and credential keys, the SDK clients.

``google.genai.Client`` is built on the first call (importing the SDK only then),
with the SDK's own retries switched off, the config's ``timeout`` applied, and
modelwire's transports (``modelwire.guarded_transports``) under both of its clients,
on the HTTP library the SDK picks (httpx2 unless ``GOOGLE_GENAI_HTTP_CLIENT=httpx``):
they keep each attempt's deadline, the ``max_response_bytes`` cap and the configured
origin. The sync calls share one client; each event loop gets its own, used through
``.aio`` (over that library, not aiohttp).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypedDict

from modelwire import (
    ConfigError,
    ConfigIssue,
    ModelWireError,
    ModelWrapper,
    Pricing,
    SDKClients,
    error_for_status,
    is_secret_key,
)
from modelwire_gemini.errors import map_error
from modelwire_gemini.pricing import PRICES

if TYPE_CHECKING:
    from google import genai

__all__ = [
    "API_KEY_ENV_VARS",
    "GeminiWrapper",
    "HttpOptions",
    "bare_model_name",
    "kept_replies",
]

#: Where a key left out of the config is read from, in this order.
API_KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

#: ``client_args`` that configure the connection: httpx reads them only from the transport.
_CONNECTION_ARGS = ("verify", "cert", "http1", "http2", "limits", "proxy")


class HttpOptions(TypedDict, total=False):
    """The ``http_options`` key: passed to ``google.genai.types.HttpOptions``.

    ``timeout`` and ``retry_options`` are listed only so that a config setting them
    is told to use modelwire's ``timeout`` and ``retry`` keys instead.
    """

    base_url: str
    api_version: str
    headers: dict[str, str]
    client_args: dict[str, Any]
    async_client_args: dict[str, Any]
    extra_body: dict[str, Any]
    timeout: Any
    retry_options: Any


#: The HTTP replies of the calls under way in this context, appended by the response
#: hook of the SDK's httpx clients (``kept_replies``).
_replies: ContextVar[list[Any] | None] = ContextVar("modelwire_gemini_replies", default=None)

#: What the SDK raises when a reply does not fit its model (``kept_replies``).
UNREADABLE_BY_THE_SDK = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


@contextmanager
def kept_replies() -> Iterator[list[Any]]:
    """The ``httpx.Response`` of each request the SDK sends inside the block.

    The SDK's reply model keeps only the fields it knows (a failed tool call's
    ``finishMessage`` is dropped) and refuses replies modelwire can still read (tool
    arguments as a string), so calls read Gemini's JSON from the HTTP reply, which the
    SDK has read in full by the time it returns. An error the SDK meets reading a
    successful reply is dropped here: the body is read again by the call's parser,
    which says what is wrong with it.
    """
    replies: list[Any] = []
    token = _replies.set(replies)
    try:
        yield replies
    except UNREADABLE_BY_THE_SDK:
        if not (replies and replies[-1].is_success):
            raise  # the SDK refused the request before sending it
    finally:
        _replies.reset(token)


def _keep_reply(response: Any) -> None:
    if _is_error(response):
        response.read()
        _refuse_unreadable_error(response)
    replies = _replies.get()
    if replies is not None:
        replies.append(response)


async def _akeep_reply(response: Any) -> None:
    if _is_error(response):
        await response.aread()
        _refuse_unreadable_error(response)
    replies = _replies.get()
    if replies is not None:
        replies.append(response)


def _is_error(response: Any) -> bool:
    return response.status_code >= 400


def _refuse_unreadable_error(response: Any) -> None:
    """An error reply whose body the SDK cannot read (not UTF-8, or JSON nested too deep)
    would reach the caller as the SDK's ``UnicodeDecodeError``/``RecursionError``,
    without its HTTP status (a 503 then not retried, a 401 not an authentication
    error): such a reply is typed here by its status. Any other body, JSON or text,
    is left to the SDK's own error, which ``errors.map_error`` reads."""
    try:
        json.loads(response.content)
    except (UnicodeDecodeError, RecursionError) as exc:
        status = response.status_code
        raise error_for_status(
            status,
            f"Gemini answered HTTP {status} with a body that cannot be read ({type(exc).__name__})",
            headers=response.headers,
            body=response.content.decode("utf-8", "replace"),
        ) from None
    except ValueError:
        return


def bare_model_name(name: str) -> str:
    """``models/gemini-pro`` and ``gemini-pro`` name the same model; keep the bare id."""
    return name.removeprefix("models/")


class GeminiWrapper(ModelWrapper):
    """Base of the Gemini wrappers: endpoint and credential keys, and ``self.clients``."""

    pricing_table = PRICES

    def __init__(
        self,
        config_name: str,
        *,
        model_name: str,
        api_key: str | None = None,
        base_url: str | None = None,
        http_options: HttpOptions | None = None,
        vertexai: bool = False,
        project: str | None = None,
        location: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.model_name = bare_model_name(model_name)
        self.vertexai = vertexai
        self.project = project
        self.location = location
        self._http_options: dict[str, Any] = dict(http_options or {})
        if base_url:
            self._http_options["base_url"] = base_url
        for key, value in (self._http_options.get("headers") or {}).items():
            if is_secret_key(key):
                self.secret(value)
        self._api_key = self._resolve_api_key(self.secret(api_key))
        self._ssl_contexts: dict[tuple[str, bool], Any] = {}  # built under the clients' lock
        self.clients: SDKClients[genai.Client, genai.Client] = SDKClients(
            self._build_client, self._build_client, close_async=_aclose
        )

    def _resolve_api_key(self, api_key: str | None) -> str | None:
        """The config's key, else the environment's; Vertex AI with a project uses ADC."""
        from_env = [self.secret(os.environ.get(name) or None) for name in API_KEY_ENV_VARS]
        if api_key:
            return api_key
        if self.vertexai and (self.project or self.location):
            return None
        key = next((value for value in from_env if value), None)
        if key is None and not self.vertexai:
            raise ConfigError(
                [
                    ConfigIssue(
                        self.config_name,
                        "api_key",
                        "no Gemini API key: set api_key in the config or the"
                        f" {' or '.join(API_KEY_ENV_VARS)} environment variable",
                    )
                ]
            )
        return key

    @classmethod
    def price_for(cls, model_name: str | None) -> Pricing | None:
        return super().price_for(bare_model_name(model_name) if model_name else model_name)

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        issues = super().validate_params(params)
        options = params.get("http_options") or {}
        if "timeout" in options:
            issues.append(
                ConfigIssue(
                    "?",
                    "http_options.timeout",
                    "set the config's `timeout` key (seconds) instead; modelwire passes it"
                    " to the SDK",
                )
            )
        if "retry_options" in options:
            issues.append(
                ConfigIssue(
                    "?",
                    "http_options.retry_options",
                    "set the config's `retry` key instead; modelwire retries, the SDK must not",
                )
            )
        base_url = params.get("base_url")
        if base_url and options.get("base_url") and options["base_url"] != base_url:
            issues.append(
                ConfigIssue("?", "base_url", "differs from http_options.base_url; set only one")
            )
        if not params.get("vertexai"):
            for key in ("project", "location"):
                if params.get(key):
                    issues.append(ConfigIssue("?", key, "only applies with `vertexai: true`"))
        return issues

    def _build_client(self) -> genai.Client:
        import math

        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            **self._guarded_http_options(),
            # HttpOptions.timeout is in milliseconds; the transport keeps the deadline.
            timeout=max(1, math.ceil(self.timeout * 1000)),
            # One attempt: tenacity never retries.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        try:
            return genai.Client(
                vertexai=self.vertexai,
                api_key=self._api_key,
                project=self.project if self.vertexai else None,
                location=self.location if self.vertexai else None,
                http_options=options,
            )
        except ValueError as exc:
            raise ConfigError(
                [ConfigIssue(self.config_name, None, f"the Gemini client cannot be built: {exc}")]
            ) from exc

    def _guarded_http_options(self) -> dict[str, Any]:
        """``http_options`` with modelwire's transports under the SDK's httpx clients.

        The SDK still builds its own clients (its headers, ``follow_redirects``,
        per-request timeouts) from ``client_args``/``async_client_args``; what
        configures the connection (``verify``, ``proxy``, ``http2``...) moves to the
        transport, since httpx ignores it on a client given a transport. A transport in
        ``async_client_args`` also makes the SDK use its library, not aiohttp,
        asynchronously. A config that brings its own ``transport`` or ``mounts`` keeps
        them, without modelwire's limits.
        """
        from modelwire import guarded_transports

        library = _http_library(self._http_options)
        sync_transport, async_transport = guarded_transports(library)
        options = dict(self._http_options)
        for key, transport, keep in (
            ("client_args", sync_transport, _keep_reply),
            ("async_client_args", async_transport, _akeep_reply),
        ):
            args = dict(options.get(key) or {})
            hooks = dict(args.get("event_hooks") or {})
            hooks["response"] = [*hooks.get("response", ()), keep]
            args["event_hooks"] = hooks
            if "transport" not in args and "mounts" not in args:
                connection = {k: args.pop(k) for k in _CONNECTION_ARGS if k in args}
                connection["trust_env"] = args.get("trust_env", True)
                if "verify" not in connection:
                    connection["verify"] = self._default_ssl_context(
                        library, connection["trust_env"]
                    )
                # The SDK reads `verify` from the client's arguments (and builds an SSL
                # context of its own without one); httpx ignores it there.
                args["verify"] = connection["verify"]
                args["transport"] = transport(**connection)
                if connection["trust_env"] and "proxy" not in connection:
                    args["mounts"] = transport.proxy_mounts(**connection)
            options[key] = args
        return options

    def _default_ssl_context(self, library: str, trust_env: bool) -> Any:
        """httpx's default SSL context (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
        built once per wrapper: every client and transport of it shares the one."""
        key = (library, trust_env)
        if key not in self._ssl_contexts:
            create = importlib.import_module(library).create_ssl_context
            self._ssl_contexts[key] = create(trust_env=trust_env)
        return self._ssl_contexts[key]

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)


def _http_library(http_options: Mapping[str, Any]) -> str:
    """The HTTP library the SDK builds its clients on, chosen as the SDK chooses it:
    ``GOOGLE_GENAI_HTTP_CLIENT`` (httpx or httpx2), else the library of what the config
    puts in ``client_args``/``async_client_args`` (its own transport, say), else httpx2
    when it is installed."""
    wanted = os.environ.get("GOOGLE_GENAI_HTTP_CLIENT", "").strip().lower()
    if wanted in ("httpx", "httpx2"):
        return wanted
    for key in ("client_args", "async_client_args"):
        for value in (http_options.get(key) or {}).values():
            for cls in type(value).__mro__:
                package = (cls.__module__ or "").partition(".")[0]
                if package in ("httpx", "httpx2"):
                    return package
    return "httpx2" if importlib.util.find_spec("httpx2") is not None else "httpx"


async def _aclose(client: genai.Client) -> None:
    """An event loop's client: its async pool (``.aio``) and the sync pool it also holds."""
    try:
        await client.aio.aclose()
    finally:
        client.close()
