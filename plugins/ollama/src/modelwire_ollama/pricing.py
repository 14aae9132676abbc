"""Ollama runs models on hardware you own: there is no per-token price.

The table is empty on purpose. A config with a ``budget`` must therefore say what
a token costs to you (``pricing``); modelwire rejects it at load time otherwise.
"""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {}
