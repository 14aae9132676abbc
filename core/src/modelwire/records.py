"""Built-in plugin: opt-in JSONL invocation records, one complete line per call.

Switched on by ``MODELWIRE_RECORDS=path`` or ``modelwire.init(records=path)``.
Every line is redacted: credentials under secret-like keys are masked and every
known secret is scrubbed from the serialized text before it is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from modelwire.content import summarized
from modelwire.hookspecs import hookimpl
from modelwire.redact import redacted, scrub

if TYPE_CHECKING:
    import pluggy

    from modelwire.calls import Call
    from modelwire.errors import ModelWireError
    from modelwire.response import ModelResponse

_MAX_TEXT = 20_000


#: The pluggy name of the records plugin while it listens.
PLUGIN_NAME = "modelwire.records:records"


class RecordsPlugin:
    """Appends one JSON object per call to a file; thread-safe, never loses a line.

    It listens on the plugin managers it is attached to only while records are on,
    so that calls pay nothing for hooks when no plugin listens.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: str | None = None
        self._file: Any = None
        self._managers: weakref.WeakSet[pluggy.PluginManager] = weakref.WeakSet()
        env = os.environ.get("MODELWIRE_RECORDS")
        if env:
            self.configure(env, setting="MODELWIRE_RECORDS")

    @property
    def path(self) -> str | None:
        return self._path

    def attach(self, manager: pluggy.PluginManager) -> None:
        """Listen on ``manager``'s lifecycle hooks whenever records are on."""
        with self._lock:
            self._managers.add(manager)
            self._listen()

    def _listen(self) -> None:
        for manager in list(self._managers):
            listening = manager.is_registered(self)
            if self._file is not None and not listening:
                manager.register(self, name=PLUGIN_NAME)
            elif self._file is None and listening:
                manager.unregister(self)

    def configure(self, path: str | os.PathLike[str] | None, *, setting: str = "records") -> None:
        """Start writing to ``path`` (appending), or stop with ``None``.

        A path that cannot be written is a ``ConfigError`` naming ``setting``.
        """
        with self._lock:
            try:
                self._reopen(path, setting)
            finally:
                self._listen()

    def _reopen(self, path: str | os.PathLike[str] | None, setting: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path = None
        if not path:
            return
        target = os.fspath(path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            # A lone surrogate in a call's text is written as its JSON escape.
            self._file = open(target, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        except OSError as exc:
            from modelwire.errors import ConfigError

            raise ConfigError(
                f"{setting}={target!r} cannot be written to ({exc.strerror}):"
                " give the path of a file in a writable folder"
            ) from None
        self._path = target

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            text = json.dumps(redacted(record), ensure_ascii=False, default=repr)
        except (RecursionError, ValueError):  # a value json cannot take: keep the line anyway
            record["request"] = "<not recordable>"
            text = json.dumps(redacted(record), ensure_ascii=False, default=repr)
        line = scrub(text) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    @hookimpl(tryfirst=True)  # first: a failing observer after it cannot lose a record
    def on_call_end(self, call: Call, response: ModelResponse) -> None:
        if self._file is None:
            return
        record = _base(call)
        record["status"] = "ok"
        record["response"] = {
            "text": _clip(response.text),
            "embedding_count": None if response.embedding is None else len(response.embedding),
            "image_urls": response.image_urls,
            "model_name": response.model_name,
            "finish_reason": response.finish_reason,
            "tool_calls": _tool_call_names(response.tool_calls),
            "thinking": _clip(response.thinking),
        }
        record["usage"] = response.usage.to_dict() if response.usage else None
        record["cost_usd"] = call.wrapper.cost_of(response.usage)
        self._write(record)

    @hookimpl(tryfirst=True)
    def on_call_error(self, call: Call, error: ModelWireError) -> None:
        if self._file is None:
            return
        record = _base(call)
        record["status"] = "error"
        record["error"] = {
            "type": type(error).__name__,
            "message": str(error),
            "status": getattr(error, "status", None),
            "partial_text": _clip(getattr(error, "partial_text", None)),
        }
        self._write(record)


def _base(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(call.started_at)) + "Z",
        "config_name": call.config_name,
        "model_type": call.model_type,
        "model_name": call.model_name,
        "operation": call.operation,
        "attempts": call.attempts,
        "duration_s": round(call.elapsed, 6),
        "request": {"args": _jsonable(call.args), "kwargs": _jsonable(call.kwargs)},
    }


def _tool_call_names(calls: list[Any] | None) -> list[dict[str, Any]] | None:
    """The calls a reply made, by id and name: their arguments are the model's own
    and may be large, so they stay in the response."""
    if not calls:
        return None
    return [{"id": call.get("id"), "name": call.get("name")} for call in calls]


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_TEXT:
        return text
    return text[:_MAX_TEXT] + f"... [{len(text) - _MAX_TEXT} more characters]"


#: How deep a call's arguments are recorded; deeper values are summarised.
_MAX_DEPTH = 20


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH} levels>"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return _clip(summarized(value)) if isinstance(value, str) else value
    if isinstance(value, (bytes, bytearray, memoryview)):  # e.g. an inline image
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        if value.get("type") == "base64":  # an image source: its data is summarised
            value = summarized(value)
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict(), depth + 1)
    return repr(value)


plugin = RecordsPlugin()


def configure(path: str | os.PathLike[str] | None) -> None:
    """Switch records on (to ``path``) or off (``None``)."""
    plugin.configure(path)
