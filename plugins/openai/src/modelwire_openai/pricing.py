"""OpenAI list prices in USD per 1,000 (prompt, completion) tokens, for budgets.

Keys are model names or name prefixes; the longest matching prefix wins, so
dated snapshots (``gpt-4o-2024-08-06``) share their family's price. Prices change:
a config's ``pricing`` overrides this table, and a model missing from it needs
``pricing`` before it can have a ``budget``.
"""

from __future__ import annotations

__all__ = ["CHAT_PRICES", "EMBEDDING_PRICES", "IMAGE_PRICES"]

CHAT_PRICES: dict[str, tuple[float, float]] = {
    # GPT-5 family
    "gpt-5": (0.00125, 0.01),
    "gpt-5-mini": (0.00025, 0.002),
    "gpt-5-nano": (0.00005, 0.0004),
    # GPT-4.1 family
    "gpt-4.1": (0.002, 0.008),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-4.1-nano": (0.0001, 0.0004),
    # GPT-4o family
    "gpt-4o": (0.0025, 0.01),
    "gpt-4o-2024-05-13": (0.005, 0.015),
    "gpt-4o-mini": (0.00015, 0.0006),
    "chatgpt-4o-latest": (0.005, 0.015),
    # reasoning models
    "o1": (0.015, 0.06),
    "o1-mini": (0.0011, 0.0044),
    "o1-pro": (0.15, 0.6),
    "o3": (0.002, 0.008),
    "o3-mini": (0.0011, 0.0044),
    "o3-pro": (0.02, 0.08),
    "o4-mini": (0.0011, 0.0044),
    # GPT-4 and GPT-3.5
    "gpt-4": (0.03, 0.06),
    "gpt-4-32k": (0.06, 0.12),
    "gpt-4-turbo": (0.01, 0.03),
    "gpt-4-0125-preview": (0.01, 0.03),
    "gpt-4-1106-preview": (0.01, 0.03),
    "gpt-4-1106-vision-preview": (0.01, 0.03),
    "gpt-4-vision-preview": (0.01, 0.03),
    "gpt-3.5-turbo": (0.0005, 0.0015),
    "gpt-3.5-turbo-instruct": (0.0015, 0.002),
}

EMBEDDING_PRICES: dict[str, tuple[float, float]] = {
    "text-embedding-3-small": (0.00002, 0.0),
    "text-embedding-3-large": (0.00013, 0.0),
    "text-embedding-ada-002": (0.0001, 0.0),
}

#: GPT Image models report token usage (text in, image out). DALL·E models are
#: billed per image and report no tokens, so they are deliberately absent.
IMAGE_PRICES: dict[str, tuple[float, float]] = {
    "gpt-image-1": (0.005, 0.04),
    "gpt-image-1-mini": (0.002, 0.008),
}
