"""``openai_dall_e``: images from a prompt, via ``/v1/images/generations``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from modelwire import ConfigIssue, ModelResponse, Msg, ResponseParseError, iter_msgs, text_of
from modelwire_openai.client import OpenAIWrapper, body_of, usage_of
from modelwire_openai.pricing import IMAGE_PRICES

__all__ = ["OpenAIDallEWrapper", "default_save_dir"]

if TYPE_CHECKING:
    from pathlib import Path


def default_save_dir() -> Path:
    """Where base64 images go when a call names no ``save_dir``: a temporary folder."""
    import tempfile  # only when an image is saved: importing it slows config loading
    from pathlib import Path

    return Path(tempfile.gettempdir()) / "modelwire-openai-images"


_SIGNATURES = (
    (b"\x89PNG", "png"),
    (b"\xff\xd8", "jpg"),
    (b"GIF8", "gif"),
    (b"<svg", "svg"),
    (b"<?xml", "svg"),
)


class OpenAIDallEWrapper(OpenAIWrapper):
    """Image generation: ``model("a lighthouse at dawn").image_urls``.

    URLs come back as the service sent them. Images sent as base64 (``response_format:
    "b64_json"``, the only format of GPT Image models) are written to files under
    ``save_dir`` (a call argument; a temporary folder by default) and their paths
    returned instead, so ``image_urls`` is always something to open.
    """

    model_type = "openai_dall_e"
    default_output_cap = 0  # generates no tokens: a budget reserves the input only
    pricing_table = IMAGE_PRICES
    reserved_args: ClassVar[tuple[str, ...]] = ("model", "prompt", "stream")

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[ConfigIssue]:
        issues = super().validate_params(params)
        model_name = params.get("model_name")
        if (
            params.get("budget") is not None
            and isinstance(model_name, str)
            and model_name.startswith("dall-e")
        ):
            issues = [issue for issue in issues if issue.key != "budget"]
            issues.append(
                ConfigIssue(
                    "?",
                    "budget",
                    f"{model_name} is billed per image and reports no tokens, so a budget"
                    " (which modelwire counts in tokens) cannot be enforced; remove `budget`",
                )
            )
        return issues

    def format(self, *args: Msg | list[Msg] | None) -> str:
        """A prompt: the messages' texts, one per line."""
        return "\n".join(text_of(msg.content) for msg in iter_msgs(*args))

    def _request(
        self, prompt: str, *, save_dir: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return {"prompt": prompt, "save_dir": save_dir, "args": self.call_args(kwargs)}

    def _send(self, request: dict[str, Any]) -> Any:
        generate = self.clients.sync.images.with_raw_response.generate
        args = self.sdk_args(generate, request["args"])
        return generate(model=self.model_name, prompt=request["prompt"], **args)

    async def _asend(self, request: dict[str, Any]) -> Any:
        generate = self.clients.async_.images.with_raw_response.generate
        args = self.sdk_args(generate, request["args"])
        return await generate(model=self.model_name, prompt=request["prompt"], **args)

    def _parse(self, reply: Any, request: dict[str, Any]) -> ModelResponse:
        return self._response(body_of(reply), request["save_dir"])

    def _response(self, payload: dict[str, Any], save_dir: str | None) -> ModelResponse:
        data = payload.get("data")
        if not isinstance(data, list) or not data:
            raise ResponseParseError("the reply holds no images", body=_summary(payload))
        urls = []
        for item in data:
            if isinstance(item, Mapping) and isinstance(item.get("url"), str):
                urls.append(item["url"])
            elif isinstance(item, Mapping) and isinstance(item.get("b64_json"), str):
                urls.append(save_image(item["b64_json"], save_dir))
            else:
                raise ResponseParseError(
                    "an image has neither `url` nor `b64_json`", body=_summary(payload)
                )
        return ModelResponse(
            image_urls=urls,
            raw=payload,
            usage=usage_of(payload),
            model_name=payload.get("model") or self.model_name,
        )


def save_image(b64: str, save_dir: str | Path | None = None) -> str:
    """Write a base64 image to a new file under ``save_dir``; returns its absolute path."""
    import base64  # only when an image is saved
    from pathlib import Path

    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ResponseParseError(f"an image's b64_json is not valid base64: {exc}") from exc
    folder = Path(save_dir).expanduser() if save_dir is not None else default_save_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.urandom(16).hex()}.{_extension(data)}"
    path.write_bytes(data)
    return str(path.resolve())


def _extension(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for signature, extension in _SIGNATURES:
        if data.startswith(signature):
            return extension
    return "png"


def _summary(payload: Any) -> str:
    """The reply for an error message, without megabytes of base64."""
    text = json.dumps(payload, default=str)
    return text if len(text) <= 500 else text[:500] + "..."
