"""Message content for plugins: the text of a ``Msg``, and media as data URLs or base64.

Written once here so that every provider reads content and local files by the
same rules: web URLs pass through (never fetched), ``data:`` URLs are decoded,
local paths and ``file://`` URLs are read, and the MIME type comes from the
data URL or the file's extension.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = [
    "Media",
    "blocks_of",
    "data_url",
    "image_media",
    "image_url",
    "is_web_url",
    "read_media",
    "summarized",
    "text_of",
    "thinking_of",
]


def text_of(content: Any) -> str:
    """The text of a message's content.

    A string as is; ``None`` as ``""``; a list of content blocks as the
    concatenation of its text blocks and of the text of ``tool_result`` outputs (what
    a tool said is a tool message's text), leaving out images, ``tool_use`` and
    ``thinking`` blocks; anything else as JSON (never a Python repr).
    """
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and content and all(_is_block(part) for part in content):
        return "".join(_block_text(part) for part in content)
    return json.dumps(content, ensure_ascii=False, default=str)


def thinking_of(blocks: list[dict[str, Any]]) -> str | None:
    """The text of the ``thinking`` blocks among ``blocks``, joined (``None`` when there
    are none): what a provider that takes reasoning back is sent of it."""
    thoughts = [block for block in blocks if block.get("type") == "thinking"]
    if not thoughts:
        return None
    return "".join(str(block.get("thinking") or "") for block in thoughts)


def blocks_of(content: Any) -> list[dict[str, Any]]:
    """The content blocks of a message's content (none for text content), each of a
    known type checked for the fields it needs: ``BadRequestError`` naming the block,
    before anything is sent, rather than a ``KeyError`` in a plugin's ``format``."""
    if not isinstance(content, list):
        return []
    blocks = [part for part in content if _is_block(part)]
    for block in blocks:
        _check_block(block)
    return blocks


#: The fields each known block type needs, and the types they may have.
_BLOCK_FIELDS: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "text": (("text", str),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "tool_result": (("id", str), ("name", str), ("output", (str, list))),
    "thinking": (("thinking", str),),
}


def _check_block(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "image":
        try:
            _image_source(block)
        except ValueError as exc:
            raise _bad_block(kind, str(exc)) from None
        return
    for name, expected in _BLOCK_FIELDS.get(kind, ()):
        if not isinstance(block.get(name), expected):
            names = (
                " or ".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else expected.__name__
            )
            raise _bad_block(kind, f"its {name!r} must be a {names}, not {block.get(name)!r}")


def _bad_block(kind: str, why: str) -> Exception:
    from modelwire.errors import BadRequestError

    hint = {
        "tool_use": " (use response.to_msg() to send a reply's calls back)",
        "tool_result": " (build it with modelwire.tool_result(call, output))",
    }.get(kind, "")
    return BadRequestError(f"a {kind!r} content block cannot be sent: {why}{hint}"[:400])


def _block_text(block: dict[str, Any]) -> str:
    if block["type"] == "text":
        return block.get("text", "")
    if block["type"] == "tool_result":
        return text_of(block.get("output"))
    return ""


def _is_block(part: Any) -> bool:
    return isinstance(part, dict) and isinstance(part.get("type"), str)


def is_web_url(location: str) -> bool:
    """Whether a media location is an ``http(s)`` URL, which modelwire never fetches."""
    return location.startswith(("http://", "https://"))


class Media(NamedTuple):
    """Media bytes and their MIME type (``None`` when it cannot be told)."""

    data: bytes
    mime_type: str | None

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_url(self) -> str:
        return f"data:{self.mime_type or 'application/octet-stream'};base64,{self.base64}"


def read_media(source: str | os.PathLike[str] | bytes, mime_type: str | None = None) -> Media:
    """The bytes of a ``data:`` URL, a local path, a ``file://`` URL or raw bytes.

    Raises ``ValueError`` for a web URL (providers that take them get the URL
    itself) and for a malformed data URL, ``FileNotFoundError`` for a missing file.
    """
    if isinstance(source, (bytes, bytearray)):
        return Media(bytes(source), mime_type)
    location = os.fspath(source)
    if location.startswith("data:"):
        header, _, payload = location.partition(",")
        if not header.endswith(";base64") or not payload:
            raise ValueError(f"a data URL must be base64-encoded: {location[:40]!r}...")
        try:
            data = base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"the data URL's base64 is invalid: {exc}") from None
        return Media(data, mime_type or header[5:].removesuffix(";base64") or None)
    if is_web_url(location):
        raise ValueError(f"{location!r} is a web URL: modelwire does not download media")
    path = _local_path(location)
    if not path.is_file():
        raise FileNotFoundError(f"media {location!r} is neither a URL nor an existing file")
    return Media(path.read_bytes(), mime_type or mimetypes.guess_type(path.name)[0])


def data_url(source: str | os.PathLike[str] | bytes, mime_type: str | None = None) -> str:
    """A URL a provider can be sent: web and data URLs as they are, files inlined."""
    if isinstance(source, str) and (is_web_url(source) or source.startswith("data:")):
        return source
    return read_media(source, mime_type).data_url


def _local_path(location: str) -> Path:
    if location.startswith("file://"):
        location = unquote(urlsplit(location).path)
    return Path(location).expanduser()


def image_url(block: Mapping[str, Any]) -> str:
    """An image block as a URL to send: a web URL as it is, anything else a data URL."""
    source = _image_source(block)
    if source.get("type") == "base64":
        return f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data', '')}"
    try:
        return data_url(source["url"])
    except (OSError, ValueError) as exc:
        raise _bad_block("image", str(exc)) from None


def image_media(block: Mapping[str, Any]) -> Media:
    """An image block's bytes and MIME type, for services that take only inline images.

    Raises ``ValueError`` for a web URL (modelwire does not download media) and for
    a block without a usable source.
    """
    source = _image_source(block)
    if source.get("type") == "base64":
        return read_media(
            f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data', '')}"
        )
    return read_media(source["url"])


def _image_source(block: Mapping[str, Any]) -> Mapping[str, Any]:
    source = block.get("source")
    if not isinstance(source, Mapping) or not (
        (source.get("type") == "base64" and isinstance(source.get("data"), str))
        or isinstance(source.get("url"), str)
    ):
        raise ValueError(
            "an image block needs a source: {'type': 'url', 'url': ...} or"
            f" {{'type': 'base64', 'media_type': ..., 'data': ...}}, not {source!r}"[:200]
        )
    return source


#: Inline media shorter than this stays as it is in records and reprs.
_SHOWN_MEDIA = 256


def summarized(value: Any, depth: int = 0) -> Any:
    """``value`` with inline media replaced by a note of its type and size, for records
    and reprs: a data URL and a base64 source's ``data`` become ``"<image/png, 2048
    bytes>"``, so that neither holds megabytes of base64. Lists and dicts are copied;
    anything else is returned as it is."""
    if isinstance(value, str):
        return _data_url_note(value) or value
    if depth > 20:
        return value
    if isinstance(value, dict):
        copy = {k: summarized(v, depth + 1) for k, v in value.items()}
        data = value.get("data")
        if value.get("type") == "base64" and isinstance(data, str) and len(data) > _SHOWN_MEDIA:
            copy["data"] = _size_note(value.get("media_type"), data)
        return copy
    if isinstance(value, (list, tuple)):
        return [summarized(item, depth + 1) for item in value]
    return value


def _data_url_note(text: str) -> str | None:
    if len(text) <= _SHOWN_MEDIA or not text.startswith("data:"):
        return None
    header, comma, payload = text.partition(",")
    if not comma or not header.endswith(";base64"):
        return None
    return _size_note(header[5:].removesuffix(";base64").split(";")[0] or None, payload)


def _size_note(mime_type: Any, data: str) -> str:
    size = len(data) * 3 // 4 - data[-2:].count("=")
    return f"<{mime_type or 'media'}, {size} bytes>"
