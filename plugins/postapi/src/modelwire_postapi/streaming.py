"""Splitting a streamed reply into events: server-sent events, NDJSON, or one JSON document.

Services stream in whichever framing their framework makes easy, and often label it
loosely, so the framing is taken from the ``Content-Type`` when it is specific
(``text/event-stream``, ``application/x-ndjson``) and sniffed from the first line
otherwise. The decoder is fed lines, so the sync and async readers share it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from modelwire import ResponseParseError

__all__ = ["Event", "EventDecoder", "is_stream_type"]

_SSE_TYPES = frozenset({"text/event-stream"})
_NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl"}
)
#: How an SSE stream's first line starts (compiled on first use, by ``re``).
_SSE_LINE = r"^(?:data|event|id|retry)(?::|$)|^:"
#: The end-of-stream marker of OpenAI-style SSE streams.
DONE = "[DONE]"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_stream_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` announces a stream (SSE or NDJSON)."""
    media = _media_type(content_type)
    return media in _SSE_TYPES or media in _NDJSON_TYPES


@dataclass(slots=True)
class Event:
    """One event: its JSON payload (or the raw text of a non-JSON SSE ``data`` field)."""

    data: Any
    name: str | None = None


class EventDecoder:
    """Feed it the lines of a reply, get its events; ``close()`` flushes the last one."""

    def __init__(self, content_type: str | None = None) -> None:
        media = _media_type(content_type)
        self.framing: str | None = (
            "sse" if media in _SSE_TYPES else "ndjson" if media in _NDJSON_TYPES else None
        )
        #: Set once ``data: [DONE]`` arrived; later lines are ignored.
        self.done = False
        self._sniffed = self.framing is not None
        self._data: list[str] = []
        self._name: str | None = None
        self._document: list[str] | None = None
        self._events = 0

    def feed(self, line: str) -> list[Event]:
        if self.done:
            return []
        if self._document is not None:
            self._document.append(line)
            return []
        if self.framing is None:
            if not line.strip():
                return []
            self.framing = "sse" if re.match(_SSE_LINE, line) else "ndjson"
        events = self._feed_sse(line) if self.framing == "sse" else self._feed_ndjson(line)
        self._events += len(events)
        return events

    def close(self) -> list[Event]:
        if self._document is not None:
            text = "\n".join(self._document)
            self._document = None
            try:
                return [Event(json.loads(text))]
            except (ValueError, RecursionError) as exc:
                raise ResponseParseError(
                    f"the reply is neither JSON nor a stream of JSON lines ({exc}): {text[:200]!r}"
                ) from exc
        if self.framing == "sse" and not self.done and self._data:
            raise ResponseParseError(
                "the stream ended in the middle of an event (no blank line after its data):"
                " the body was cut off"
            )
        return []

    # -- SSE -------------------------------------------------------------------------------
    def _feed_sse(self, line: str) -> list[Event]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value or None
        return []

    def _dispatch(self) -> list[Event]:
        if not self._data:
            self._name = None
            return []
        data, name = "\n".join(self._data), self._name
        self._data, self._name = [], None
        if data.strip() == DONE:
            self.done = True
            return []
        return [Event(_sse_payload(data), name)]

    # -- NDJSON ----------------------------------------------------------------------------
    def _feed_ndjson(self, line: str) -> list[Event]:
        text = line.strip()
        if not text:
            return []
        try:
            return [Event(json.loads(text))]
        except (ValueError, RecursionError) as exc:
            if not self._sniffed and self._events == 0:
                # Not one JSON value per line: perhaps one pretty-printed document.
                self._document = [line]
                return []
            raise ResponseParseError(
                f"a line of the stream is not JSON ({exc}): {text[:200]!r}"
            ) from exc


def _sse_payload(data: str) -> Any:
    """JSON when the data looks like JSON; plain text otherwise (services that stream tokens)."""
    stripped = data.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            raise ResponseParseError(
                f"an event of the stream is not valid JSON ({exc}): {stripped[:200]!r}"
            ) from exc
    return data
