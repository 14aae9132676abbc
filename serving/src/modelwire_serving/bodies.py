"""Reading a request body: one JSON object, well-formed Unicode, within the size cap.

Shared by the OpenAI, seed and Ollama routes, so every route rejects the same
bad bodies with the same 400 (and Flask's 413 past `MAX_CONTENT_LENGTH`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from modelwire_serving.errors import RequestError


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, whatever the Content-Type says."""
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        raise RequestError("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RequestError("the request body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _check_unicode(body)
    return body


def _check_unicode(body: dict[str, Any]) -> None:
    """Reject lone UTF-16 surrogates (JSON's "\\ud800"): no tokenizer can encode them.

    One C-speed serialisation finds out whether there is one; only then is the
    body walked to name the field.
    """
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        where = _surrogate_path(body)
        raise RequestError(
            f"'{where}' is not valid Unicode: it holds a lone UTF-16 surrogate "
            "(such as \\ud800); send well-formed text",
            param=where.split(".")[0].split("[")[0] or None,
        ) from None


def _surrogate_path(body: dict[str, Any]) -> str:
    """Where the first lone surrogate is, as `inputs[0].content` (iterative: no recursion)."""

    def bad(text: str) -> bool:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    stack: list[tuple[str, object]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and bad(value):
            return path or "body"
        if isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                child = f"{path}.{key}" if path else key
                if bad(key):
                    return f"{path}.{key!r}" if path else f"{key!r} (a key)"
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend(
                (f"{path}[{index}]", item) for index, item in reversed(list(enumerate(value)))
            )
    return "body"
