"""What the three OpenAI wrappers share: config keys, credentials, SDK clients, request args.

The SDK (and httpx) is imported only when the first call builds a client, never at
module level: loading a config reads the wrapper's signature and must stay cheap.

The SDK's HTTP clients are its own (httpx2 clients for openai 2.x and later, httpx
ones before) on modelwire's transport for that library
(``modelwire.guarded_transports``), which keeps each attempt's deadline, the
``max_response_bytes`` cap and the configured origin under the SDK.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from modelwire import (
    BadRequestError,
    ConfigError,
    ConfigIssue,
    ModelWireError,
    ModelWrapper,
    PluginError,
    ProviderError,
    ResponseParseError,
    SDKClients,
    Usage,
    is_secret_key,
)
from modelwire_openai.errors import map_error

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = ["ClientArgs", "OpenAIWrapper", "body_of", "payload_of", "usage_of"]


class ClientArgs(TypedDict, total=False):
    """The ``client_args`` key: keyword arguments of ``openai.OpenAI(...)``.

    Typed so that a misspelt key (``base_uri``) is caught when the config loads.
    ``max_retries`` and ``timeout`` feed the core's retry policy and timeout; the
    SDK itself always runs with ``max_retries=0``.
    """

    base_url: str
    api_key: str
    organization: str
    project: str
    timeout: float
    max_retries: int
    default_headers: dict[str, str]
    default_query: dict[str, Any]


class OpenAIWrapper(ModelWrapper):
    """Config, credentials and clients common to the chat, embedding and image wrappers."""

    #: Request arguments the wrapper sets itself; refused in ``generate_args`` and calls.
    reserved_args: ClassVar[tuple[str, ...]] = ("model",)

    def __init__(
        self,
        config_name: str,
        *,
        model_name: str,
        api_key: str | None = None,
        organization: str | None = None,
        client_args: ClientArgs | None = None,
        generate_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        client_kwargs: dict[str, Any] = dict(client_args or {})
        # The SDK's retries stay off: the core retries, with these settings.
        max_retries = client_kwargs.pop("max_retries", None)
        if kwargs.get("retry") is None and max_retries is not None:
            kwargs["retry"] = {"max_retries": max_retries}
        sdk_timeout = client_kwargs.pop("timeout", None)
        if kwargs.get("timeout") is None and sdk_timeout is not None:
            kwargs["timeout"] = sdk_timeout
        super().__init__(config_name, **kwargs)
        self.model_name = model_name
        self.generate_args: dict[str, Any] = dict(generate_args or {})
        key = api_key or client_kwargs.pop("api_key", None) or os.environ.get("OPENAI_API_KEY")
        client_kwargs.pop("api_key", None)
        if not key:
            raise ConfigError(
                [
                    ConfigIssue(
                        config_name,
                        "api_key",
                        "no API key: set `api_key` in the config or the OPENAI_API_KEY"
                        ' environment variable (any value, e.g. "EMPTY", for a local'
                        " OpenAI-compatible server that does not check keys)",
                    )
                ]
            )
        self._api_key = self.secret(key)
        self.organization = (
            organization
            or client_kwargs.pop("organization", None)
            or os.environ.get("OPENAI_ORG_ID")
        )
        client_kwargs.pop("organization", None)
        for name, value in dict(client_kwargs.get("default_headers") or {}).items():
            if is_secret_key(name):
                self.secret(value)
        self._client_kwargs = client_kwargs
        self.clients: SDKClients[OpenAI, AsyncOpenAI] = SDKClients(
            self._build_client, self._build_async_client
        )

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        issues = super().validate_params(params)
        generate_args = params.get("generate_args")
        if isinstance(generate_args, Mapping):
            for key in cls.reserved_args:
                if key in generate_args:
                    issues.append(ConfigIssue("?", f"generate_args.{key}", _reserved(key)))
        client_args = params.get("client_args")
        if isinstance(client_args, Mapping):
            for key in ("max_retries", "timeout"):
                value = client_args.get(key)
                if isinstance(value, (int, float)) and value < 0:
                    issues.append(ConfigIssue("?", f"client_args.{key}", "must not be negative"))
        return issues

    @property
    def base_url(self) -> str | None:
        """The configured ``client_args.base_url`` (``None``: the SDK's default)."""
        value = self._client_kwargs.get("base_url")
        return None if value is None else str(value)

    # -- clients ----------------------------------------------------------------------
    def _sdk_kwargs(self) -> dict[str, Any]:
        return {
            **self._client_kwargs,
            "api_key": self._api_key,
            "organization": self.organization,
            "timeout": self.network_timeout,  # each read's; the transport keeps the deadline
            "max_retries": 0,
        }

    def _build_client(self) -> OpenAI:
        openai = _sdk()
        http_client = _guarded_client(openai, openai.DefaultHttpxClient, asynchronous=False)
        return openai.OpenAI(http_client=http_client, **self._sdk_kwargs())

    def _build_async_client(self) -> AsyncOpenAI:
        openai = _sdk()
        http_client = _guarded_client(openai, openai.DefaultAsyncHttpxClient, asynchronous=True)
        return openai.AsyncOpenAI(http_client=http_client, **self._sdk_kwargs())

    # -- requests ---------------------------------------------------------------------
    def call_args(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``generate_args`` overridden by the call's kwargs (refusing the reserved ones)."""
        for key in self.reserved_args:
            if key in kwargs:
                raise BadRequestError(_reserved(key))
        return {**self.generate_args, **kwargs}

    @staticmethod
    def sdk_args(method: Callable[..., Any], args: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments shaped for an SDK method: keys it does not know go into
        ``extra_body``, so that options of OpenAI-compatible servers (vLLM's
        ``top_k``, ...) reach the wire."""
        shaped = dict(args)
        accepted = _parameters(method)
        extra_body = dict(shaped.pop("extra_body", None) or {})
        for key in list(shaped):
            if key not in accepted:
                extra_body[key] = shaped.pop(key)
        if extra_body:
            _check_json(extra_body)
            shaped["extra_body"] = extra_body
        return shaped

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        error = map_error(exc)
        base_url = self.base_url
        if (
            isinstance(error, ProviderError)
            and error.status == 404
            and base_url
            and not base_url.rstrip("/").endswith("/v1")
        ):
            error.message += (
                f" (client_args.base_url is {base_url!r}: OpenAI-compatible"
                " servers usually serve the API under .../v1)"
            )
        return error


def _check_json(extra_body: dict[str, Any]) -> None:
    """Arguments the SDK does not know are sent as JSON: refuse those that cannot be."""
    for key, value in extra_body.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise BadRequestError(
                f"the call argument {key!r} cannot be sent ({exc}); nothing was sent"
            ) from None


def body_of(reply: Any) -> dict[str, Any]:
    """The JSON body of a ``with_raw_response`` reply, or a ``ResponseParseError``.

    Plain calls go through the SDK's ``with_raw_response`` (same request, same errors
    raised for non-2xx replies) and read the body straight into ``raw``: building the
    SDK's pydantic models only to dump them again cost ~15% of a chat call's client
    CPU (benchmarks/README.md). Streams still use the SDK's parsed events.
    """
    http = reply.http_response
    try:
        data = json.loads(http.content)
    except ValueError:
        raise ResponseParseError("the service did not answer with JSON", body=http.text) from None
    return _json_object(data, http.text)


def payload_of(result: Any) -> dict[str, Any]:
    """The reply as a plain JSON-like dict, or a ``ResponseParseError``.

    The SDK hands back text when the reply was not JSON (an HTML error page from a
    proxy, say), and builds its models without validating them.
    """
    if isinstance(result, str):
        raise ResponseParseError("the service did not answer with JSON", body=result)
    to_dict = getattr(result, "to_dict", None)
    data = to_dict(mode="json", warnings=False) if callable(to_dict) else result
    return _json_object(data, str(data))


def _json_object(data: Any, body: str) -> dict[str, Any]:
    """``data`` if the reply is a JSON object, else the ``ResponseParseError`` saying so."""
    if not isinstance(data, dict):
        raise ResponseParseError(
            f"the service answered a JSON {type(data).__name__}, not an object", body=body
        )
    return data


def usage_of(payload: Mapping[str, Any]) -> Usage | None:
    """Token usage of a reply (``prompt_tokens``/``completion_tokens`` or ``input_tokens``/...),
    with the reasoning and cached tokens OpenAI details where it reports them."""
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    details = {}
    for key, name in (("completion_tokens_details", "reasoning_tokens"),
                      ("prompt_tokens_details", "cached_tokens")):  # fmt: skip
        part = usage.get(key)
        if isinstance(part, Mapping) and part.get(name) is not None:
            details[name] = part[name]
    try:
        return Usage.of(prompt, completion, **details)
    except (TypeError, ValueError) as exc:
        raise ResponseParseError(f"unreadable token usage {dict(usage)!r}") from exc


def _sdk() -> Any:
    """The ``openai`` module, imported on the first call rather than at config loading."""
    try:
        import openai
    except ImportError as exc:
        raise PluginError(
            f"the openai SDK cannot be imported ({exc});"
            " reinstall it: pip install modelwire-openai",
            distribution="modelwire-openai",
        ) from exc
    return openai


def _guarded_client(openai: Any, client_class: type, *, asynchronous: bool) -> Any:
    """The SDK's own HTTP client class, on modelwire's transport for its library, with
    the SDK's connection limits and the environment's proxies."""
    from modelwire import guarded_transports

    library = _http_library(client_class)
    transport = guarded_transports(library.__name__)[asynchronous]
    options = _transport_options(openai, library)
    return client_class(
        transport=transport(**options),
        mounts=transport.proxy_mounts(**options),
        follow_redirects=True,  # the SDK's default; the transport refuses other origins
    )


def _http_library(sdk_client: type) -> Any:
    """The httpx library the SDK's default client class is built on: ``httpx2`` (openai
    2.x and later) or ``httpx``; the SDK takes a client of its own library best (its
    error handling names that library's exceptions)."""
    for cls in sdk_client.__mro__:
        package = cls.__module__.partition(".")[0]
        if package in ("httpx", "httpx2"):
            return importlib.import_module(package)
    raise PluginError(
        f"the installed openai SDK builds its HTTP clients on {sdk_client!r}, neither httpx"
        " nor httpx2, so modelwire cannot keep its deadlines: pip install modelwire-openai"
        " to get a supported openai",
        distribution="modelwire-openai",
    )


def _transport_options(openai: Any, library: Any) -> dict[str, Any]:
    """What configures the connections: httpx ignores it on a client given a transport,
    so it goes to the transport. The SDK's connection limits are kept."""
    limits = openai.DEFAULT_CONNECTION_LIMITS
    return {
        "limits": library.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        ),
        "trust_env": True,
    }


@functools.cache
def _parameters_of(function: Callable[..., Any]) -> frozenset[str]:
    import inspect  # on the first call, not at config loading

    return frozenset(inspect.signature(function).parameters)


def _parameters(method: Callable[..., Any]) -> frozenset[str]:
    """Keyword parameters of an SDK method, cached per class function.

    Never per bound method or per ``with_raw_response`` wrapper: those are made anew
    for every client (one per event loop, for async ones), and a cache keyed on them
    would keep every client alive.
    """
    wrapped = getattr(method, "__wrapped__", None)
    if wrapped is not None and hasattr(wrapped, "__func__"):  # with_raw_response's wrapper
        method = wrapped
    return _parameters_of(getattr(method, "__func__", method))


def _reserved(key: str) -> str:
    if key == "stream":
        return "`stream` is chosen by modelwire: call model.stream(...) or model.astream(...)"
    if key == "model":
        return "the model is set by `model_name`"
    return f"`{key}` is the call's input: pass it as the call's argument"
