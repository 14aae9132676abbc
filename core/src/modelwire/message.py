"""``Msg``: the seed's message type, and flattening of the ways callers pass messages."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from modelwire.structs import Struct

__all__ = ["Msg", "iter_msgs"]


class Msg(Struct):
    """A message: who said it, what, in which role, and optional media ``url``(s).

    ``Msg("user", "Hi", role="user")`` as in the seed; ``role`` is one of
    ``system``, ``user``, ``assistant``.
    """

    __slots__ = ("name", "content", "role", "url", "metadata", "id", "timestamp")

    def __init__(
        self,
        name: str,
        content: Any,
        role: str = "assistant",
        url: str | list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,  # the seed's field name
        timestamp: str | None = None,
    ) -> None:
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"Msg role must be 'system', 'user' or 'assistant', not {role!r}")
        self.name = name
        self.content = content
        self.role = role
        self.url = url
        self.metadata = metadata
        self.id = os.urandom(16).hex() if id is None else id
        self.timestamp = time.strftime("%Y-%m-%d %H:%M:%S") if timestamp is None else timestamp

    @property
    def urls(self) -> list[str]:
        """The media URLs or paths attached to this message, as a list."""
        if self.url is None:
            return []
        return [self.url] if isinstance(self.url, str) else list(self.url)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "content": self.content,
            "role": self.role,
            "url": self.url,
            "metadata": self.metadata,
        }


def iter_msgs(*args: Msg | Iterable[Msg] | None) -> Iterator[Msg]:
    """Yield the messages of ``format(*args)``: ``Msg``s, lists of them, or ``None``."""
    for arg in args:
        if arg is None:
            continue
        if isinstance(arg, Msg):
            yield arg
        elif isinstance(arg, Iterable) and not isinstance(arg, (str, bytes, dict)):
            yield from iter_msgs(*arg)
        else:
            raise TypeError(
                f"format() takes Msg objects or lists of them, not {type(arg).__name__};"
                " wrap text as modelwire.Msg('user', text, role='user')"
            )
