"""``Msg``: the seed's message type, and flattening of the ways callers pass messages."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ROLES", "Msg", "iter_msgs"]

ROLES = ("system", "user", "assistant", "tool")


def _new_id() -> str:
    return os.urandom(16).hex()


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(slots=True, repr=False)
class Msg:
    """A message: who said it, what, in which role, and optional media ``url``(s).

    ``Msg("user", "Hi", role="user")`` as in the seed. ``content`` is a string or a
    list of content blocks (``{"type": "text", "text": ...}`` and so on).
    """

    name: str
    content: Any
    role: str = "assistant"
    url: str | list[str] | None = None
    metadata: dict[str, Any] | None = None
    id: str = field(default_factory=_new_id)  # the seed's field name
    timestamp: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(
                f"Msg role must be one of {', '.join(map(repr, ROLES))}, not {self.role!r}"
            )

    def __repr__(self) -> str:
        from modelwire.content import summarized  # inline images are shown by size

        return (
            f"Msg(name={self.name!r}, content={summarized(self.content)!r},"
            f" role={self.role!r}, url={summarized(self.url)!r}, metadata={self.metadata!r},"
            f" id={self.id!r}, timestamp={self.timestamp!r})"
        )

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
