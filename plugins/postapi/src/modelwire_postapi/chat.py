"""``post_api_chat``: POST OpenAI-style messages to your own chat service.

``format(*msgs)`` gives ``[{"role", "content"}]`` dicts, the shape the seed's Flask
service, the serving distribution's ``/llm/``, vLLM and FastChat take; media URLs
attached to a message become OpenAI ``image_url`` parts.
"""

from __future__ import annotations

import json
import os
from typing import Any

from modelwire.message import Msg, iter_msgs
from modelwire_postapi.base import PostAPIBase

__all__ = ["PostAPIChatWrapper"]


class PostAPIChatWrapper(PostAPIBase):
    """A chat service taking message lists; see the README for every config key."""

    model_type = "post_api_chat"

    def format(self, *args: Msg | list[Msg] | None) -> list[dict[str, Any]]:
        return [_message(msg) for msg in iter_msgs(*args)]


def _message(msg: Msg) -> dict[str, Any]:
    text = (
        msg.content if isinstance(msg.content, str) else json.dumps(msg.content, ensure_ascii=False)
    )
    if not msg.urls:
        return {"role": msg.role, "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": _url(url)}} for url in msg.urls]
    return {"role": msg.role, "content": parts}


def _url(url: str) -> str:
    """URLs as they are; a local file as a ``data:`` URL, since the service cannot read it."""
    if url.startswith(("http://", "https://", "data:")):
        return url
    if not os.path.isfile(url):
        raise ValueError(f"Msg.url {url!r} is neither an http(s)/data URL nor an existing file")
    import base64  # only for local files
    import mimetypes

    mime = mimetypes.guess_type(url)[0] or "application/octet-stream"
    with open(url, "rb") as file:
        return f"data:{mime};base64,{base64.b64encode(file.read()).decode()}"
