"""Base classes for small record types: ``==``, ``repr`` (and for frozen ones ``hash``,
immutability and pickling) derived from ``__slots__``.

Why not dataclasses: creating a dataclass costs about 0.5 ms at import (it compiles
its methods), and the ~16 record types on the start-up path made up a sixth of
modelwire's start-up overhead (see benchmarks/bench_startup.py). A subclass lists its
fields in ``__slots__``, in constructor order, and writes an ordinary ``__init__``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FrozenStruct", "Struct"]


class Struct:
    """A mutable record: equal when the type and every field are equal; unhashable."""

    __slots__ = ()
    #: The fields ``==`` and ``repr`` use, in constructor order; ``None``: ``__slots__``.
    #: A subclass that shows a slot through a property lists the property's name.
    _public: tuple[str, ...] | None = None

    def _names(self) -> tuple[str, ...]:
        return self._public or self.__slots__

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"


class FrozenStruct(Struct):
    """An immutable, hashable record; ``__init__`` sets fields with ``_set``."""

    __slots__ = ()

    def _set(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._fields())

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), self._fields())  # pickle and copy rebuild through __init__
