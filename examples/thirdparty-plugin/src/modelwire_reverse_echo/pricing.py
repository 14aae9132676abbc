"""USD per 1,000 (prompt, completion) tokens, by model name or name prefix."""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {"reverse-1": (0.001, 0.002)}
