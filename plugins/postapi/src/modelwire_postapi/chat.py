"""``post_api_chat``: POST OpenAI-style messages to your own chat service.

``format(*msgs)`` gives ``[{"role", "content"}]`` dicts, the shape the seed's Flask
service, the serving distribution's ``/llm/``, vLLM and FastChat take; media URLs
attached to a message become OpenAI ``image_url`` parts.
"""

from __future__ import annotations

from typing import Any

from modelwire import Msg, data_url, iter_msgs, text_of
from modelwire_postapi.client import PostAPIWrapper

__all__ = ["PostAPIChatWrapper"]


class PostAPIChatWrapper(PostAPIWrapper):
    """A chat service taking message lists; see the README for every config key."""

    model_type = "post_api_chat"

    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        return [_message(msg) for msg in iter_msgs(*args)]


def _message(msg: Msg) -> dict[str, Any]:
    text = text_of(msg.content)
    if not msg.urls:
        return {"role": msg.role, "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": _url(url)}} for url in msg.urls]
    return {"role": msg.role, "content": parts}


def _url(url: str) -> str:
    """Web and data URLs as they are; a local file inlined, since the service cannot read it."""
    try:
        return data_url(url)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"Msg.url {url!r} is neither an http(s)/data URL nor a readable file"
        ) from exc
