"""DashScope list prices in USD per 1,000 (prompt, completion) tokens.

International (Singapore) list prices of Alibaba Cloud Model Studio; regional and
tiered prices differ, so set ``pricing`` in a config to charge what you pay.
Model names match exactly or by prefix (the longest prefix wins).
"""

from __future__ import annotations

__all__ = ["CHAT_PRICES", "EMBEDDING_PRICES"]

CHAT_PRICES: dict[str, tuple[float, float]] = {
    "qwen-max": (0.0016, 0.0064),
    "qwen-plus": (0.0004, 0.0012),
    "qwen-turbo": (0.00005, 0.0002),
    "qwen-vl-max": (0.0008, 0.0032),
    "qwen-vl-plus": (0.00021, 0.00063),
}

EMBEDDING_PRICES: dict[str, tuple[float, float]] = {
    "text-embedding-v1": (0.0001, 0.0),
    "text-embedding-v2": (0.0001, 0.0),
    "text-embedding-v3": (0.00007, 0.0),
    "text-embedding-v4": (0.00007, 0.0),
}
