"""Keeping credentials out of everything modelwire prints, logs or records.

Two defences: values under credential-like keys are masked wherever a mapping is
shown, and every secret modelwire has seen (config values, keys read from the
environment) is scrubbed from free text such as SDK error messages.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"

#: Keys whose values are credentials, compared case-insensitively with ``-`` and ``_`` folded.
SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "api_token",
        "access_token",
        "authorization",
        "proxy_authorization",
        "x_api_key",
        "x_goog_api_key",
        "api_secret",
        "client_secret",
        "secret",
        "password",
        "token",
        "bearer",
        "cookie",
        "set_cookie",
        "ocp_apim_subscription_key",
    }
)

_MIN_SECRET_LENGTH = 6
_known: set[str] = set()
_known_lock = threading.Lock()
#: The known secrets as one pattern; rebuilt on first use after a secret is added,
#: so that loading many configs compiles it once, not once per key.
_pattern: re.Pattern[str] | None = None


@functools.cache
def _generic() -> re.Pattern[str]:
    """Bearer tokens, ``sk-`` keys and ``key=...`` query values: compiled on first scrub."""
    return re.compile(
        r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"
        r"|\b(sk-[A-Za-z0-9_-]{8,})"
        r"|((?:api[_-]?key|key|token|access_token)=)[A-Za-z0-9._~+/-]{6,}"
    )


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential."""
    if not isinstance(key, str):
        return False
    folded = key.lower().replace("-", "_")
    return folded in SECRET_KEYS or folded.endswith(("_api_key", "_token", "_secret", "_password"))


def register_secret(value: object) -> None:
    """Remember a credential so that it is scrubbed from any text modelwire emits."""
    global _pattern
    if not isinstance(value, str):
        return
    value = value.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    if len(value) < _MIN_SECRET_LENGTH or value in _known:
        return
    with _known_lock:
        _known.add(value)
        _pattern = None


def _known_pattern() -> re.Pattern[str] | None:
    global _pattern
    pattern = _pattern
    if pattern is None and _known:
        with _known_lock:
            if _pattern is None and _known:
                ordered = sorted(_known, key=len, reverse=True)  # longest first
                _pattern = re.compile("|".join(re.escape(s) for s in ordered))
            pattern = _pattern
    return pattern


def register_secrets_in(value: Any) -> None:
    """Register every credential found under credential-like keys of a nested value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if is_secret_key(key):
                register_secret(item)
            else:
                register_secrets_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            register_secrets_in(item)


def scrub(text: str) -> str:
    """Mask every known secret and anything shaped like a bearer token or API key."""
    pattern = _known_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _generic().sub(_mask_generic, text)


def _mask_generic(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + MASK
    if match.group(2):
        return MASK
    return match.group(3) + MASK


def redacted(value: Any) -> Any:
    """A copy of a nested value with credential values masked and text scrubbed."""
    if isinstance(value, Mapping):
        return {
            key: (MASK if is_secret_key(key) and item is not None else redacted(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redacted(item) for item in value)
    if isinstance(value, str):
        return scrub(value)
    return value
