"""``reverse_echo``: sends text to a reversing service over plain HTTP.

A stand-in for any in-house model API: the model type supplies the provider step
(build the request, send it, parse the reply and the stream's events, map errors);
modelwire's base class drives call, acall, stream and astream from them.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

from modelwire import (
    ModelChunk,
    ModelResponse,
    ModelWireError,
    ModelWrapper,
    Msg,
    ResponseParseError,
    Stream,
    Usage,
    iter_msgs,
    text_of,
)
from modelwire_reverse_echo.errors import map_error
from modelwire_reverse_echo.pricing import PRICES


class ReverseEchoWrapper(ModelWrapper):
    """Reverses its input text. Config keys: ``model_name``, ``base_url``, ``api_key``."""

    model_type = "reverse_echo"
    pricing_table = PRICES

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
        return "\n".join(text_of(msg.content) for msg in iter_msgs(*args))

    def _request(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError(f"reverse_echo takes a string, not {type(text).__name__}")
        return {"model": self.model_name, "text": text}

    def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._post({**request, "stream": False}) as reply:
            return json.loads(reply.read())

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        try:
            return ModelResponse(
                text=reply["output"],
                raw=reply,
                usage=_usage(reply["usage"]),
                model_name=self.model_name,
                finish_reason="stop",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"unexpected reply shape: {exc!r}") from exc

    def _send_stream(self, request: dict[str, Any]) -> Iterator[Any]:
        with self._post({**request, "stream": True}) as reply:
            for line in reply:
                if line.strip():
                    yield json.loads(line)

    def _parse_chunk(self, event: Any, stream: Stream) -> ModelChunk | None:
        if not isinstance(event, dict):
            raise ResponseParseError(f"a stream event is a JSON object, not {event!r}")
        usage = event.get("usage")
        try:
            return ModelChunk(
                text=str(event.get("delta", "")),
                raw=event,
                usage=None if usage is None else _usage(usage),
                model_name=self.model_name,
                # the service's last event carries the usage: that is the stream's end
                finish_reason=None if usage is None else "stop",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseParseError(f"unexpected stream event: {exc!r}") from exc

    def _map_error(self, exc: Exception) -> ModelWireError | None:
        return map_error(exc)

    def _token_bounds(self, request: dict[str, Any]) -> tuple[int, int]:
        # What a budget reserves: the service counts a token per byte, both ways.
        size = len(request["text"].encode())
        return size, size

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(  # noqa: S310 - the configured service URL
            f"{self.base_url}/v1/reverse",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310


def _usage(usage: Any) -> Usage:
    return Usage.of(usage["input_tokens"], usage["output_tokens"])
