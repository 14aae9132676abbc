"""``GeminiWrapper``: what both Gemini types share — endpoint and credential keys, the SDK clients.

``google.genai.Client`` is built on the first call (importing the SDK only then),
with the SDK's own retries switched off and the config's ``timeout`` applied. The
sync calls share one client; each event loop gets its own, used through ``.aio``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from modelwire import (
    ConfigError,
    ConfigIssue,
    ModelWireError,
    ModelWrapper,
    Pricing,
    SDKClients,
    is_secret_key,
)
from modelwire_gemini.errors import map_error
from modelwire_gemini.pricing import PRICES

if TYPE_CHECKING:
    from google import genai

__all__ = ["API_KEY_ENV_VARS", "GeminiWrapper", "HttpOptions", "bare_model_name"]

#: Where a key left out of the config is read from, in this order.
API_KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


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
            **self._http_options,
            # HttpOptions.timeout is in milliseconds.
            timeout=max(1, math.ceil(self.timeout * 1000)),
            # One attempt: tenacity never retries, and the async (aiohttp) transport
            # skips its implicit reconnect-after-sleep once retry_options is set.
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

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)


async def _aclose(client: genai.Client) -> None:
    """An event loop's client: its async pool (``.aio``) and the sync pool it also holds."""
    try:
        await client.aio.aclose()
    finally:
        client.close()
