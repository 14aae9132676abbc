"""``reverse_echo``: sends text to a reversing service over plain HTTP.

A stand-in for any in-house model API: the wrapper supplies the request, the
response parsing and the error mapping; modelwire's base class does the rest.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

from modelwire.errors import ModelWireError, ResponseParseError, ServiceUnavailableError
from modelwire.message import Msg, iter_msgs
from modelwire.response import ModelChunk, ModelResponse, Usage
from modelwire.wrapper import ModelWrapper
from modelwire_reverse_echo.errors import map_error


class ReverseEchoWrapper(ModelWrapper):
    """Reverses its input text. Config keys: ``model_name``, ``base_url``, ``api_key``."""

    model_type = "reverse_echo"
    pricing_table = {"reverse-1": (0.001, 0.002)}

    def __init__(
        self,
        config_name: str,
        *,
        model_name: str,
        base_url: str = "http://127.0.0.1:8765",
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_name, **kwargs)
        self.model_name = model_name
        self.base_url = base_url.rstrip("/")
        self._api_key = self.secret(api_key or os.environ.get("REVERSE_ECHO_API_KEY"))

    def format(self, *args: Msg | list[Msg] | None) -> str:
        return "\n".join(str(msg.content) for msg in iter_msgs(*args))

    def _request(self, text: str, stream: bool) -> Any:
        body = json.dumps({"model": self.model_name, "text": text, "stream": stream}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(  # noqa: S310 - the configured service URL
            f"{self.base_url}/v1/reverse", data=body, headers=headers, method="POST"
        )
        return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310

    def _call(self, text: str) -> ModelResponse:
        with self._request(text, stream=False) as reply:
            payload = json.loads(reply.read())
        try:
            output = payload["output"]
            usage = Usage.of(payload["usage"]["input_tokens"], payload["usage"]["output_tokens"])
        except (KeyError, TypeError) as exc:
            raise ResponseParseError(f"unexpected reply shape, missing {exc}") from exc
        return ModelResponse(text=output, raw=payload, usage=usage, model_name=self.model_name)

    def _stream(self, text: str) -> Iterator[ModelChunk]:
        finished = False
        with self._request(text, stream=True) as reply:
            for line in reply:
                if not line.strip():
                    continue
                event = json.loads(line)
                usage = event.get("usage")
                finished = usage is not None
                yield ModelChunk(
                    text=event.get("delta", ""),
                    raw=event,
                    usage=Usage.of(usage["input_tokens"], usage["output_tokens"])
                    if usage
                    else None,
                    model_name=self.model_name,
                )
        if not finished:
            # urllib ends a cut-off chunked body silently: the missing final event tells.
            raise ServiceUnavailableError("the stream ended before its final event")

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)
