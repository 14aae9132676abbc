"""Gemini API list prices, USD per 1,000 (prompt, completion) tokens.

Paid tier, standard context length (the first tier where a model charges more
for long prompts), as published by Google in 2025. Names are matched exactly,
then by the longest prefix, so ``gemini-1.5-flash-002`` costs what
``gemini-1.5-flash`` costs. A config's ``pricing`` key overrides this table;
a model it does not know can only have a ``budget`` together with ``pricing``.
"""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {
    # chat
    "gemini-pro": (0.0005, 0.0015),
    "gemini-1.0-pro": (0.0005, 0.0015),
    "gemini-1.5-flash": (0.000075, 0.0003),
    "gemini-1.5-flash-8b": (0.0000375, 0.00015),
    "gemini-1.5-pro": (0.00125, 0.005),
    "gemini-2.0-flash": (0.0001, 0.0004),
    "gemini-2.0-flash-lite": (0.000075, 0.0003),
    "gemini-2.5-flash": (0.0003, 0.0025),
    "gemini-2.5-flash-lite": (0.0001, 0.0004),
    "gemini-2.5-pro": (0.00125, 0.01),
    # embeddings (completion tokens are never charged)
    "embedding-001": (0.0, 0.0),
    "text-embedding-004": (0.0, 0.0),
    "gemini-embedding-001": (0.00015, 0.0),
}
