"""Price tables of the POST API types: empty on purpose.

A ``post_api`` service is the user's own (a local model, an in-house endpoint), so
modelwire cannot know what a token costs there. A config that sets a ``budget``
must give its ``pricing`` (USD per 1,000 prompt and completion tokens).
"""

from __future__ import annotations

#: USD per 1,000 (prompt, completion) tokens, by model name: none are known.
PRICING: dict[str, tuple[float, float]] = {}
