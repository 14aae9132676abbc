"""Turning ``Msg`` contents and media into what Ollama accepts.

Ollama wants images as bytes (base64 on the wire) and never fetches a URL, so a
``Msg.url`` must be a local file or a ``data:`` URI. Local paths are kept as paths:
the SDK reads and encodes them when it sends, so formatted messages stay small
enough to show in records.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["image_of", "text_of"]


def text_of(content: Any) -> str:
    """Message text; structured content is sent as JSON rather than a Python repr."""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def image_of(url: str) -> str:
    """An image reference the SDK can send: a local path or a base64 string."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if not header.endswith(";base64") or not data:
            raise ValueError(f"image data URI must be base64-encoded: {url[:40]!r}...")
        return data
    if url.startswith(("http://", "https://")):
        raise ValueError(
            f"Ollama does not fetch image URLs ({url!r}): download the image and pass its"
            " local path, or a data: URI"
        )
    from pathlib import Path  # only for messages carrying local images

    path = Path(url.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ValueError(f"image {url!r} is not a file")
    return str(path)
