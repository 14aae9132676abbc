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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

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

#: Substrings that make a header name a credential (``X-RapidAPI-Key``,
#: ``X-Authorization``, ``Subscription-Key``, ``X-DashScope-ApiKey``...).
SECRET_HEADER_PARTS = (
    "key",
    "token",
    "secret",
    "auth",
    "password",
    "credential",
    "signature",
    "session",
    "cookie",
)
#: Query parameters that carry credentials (``?api-key=``, ``?sig=``...); ``code``
#: (Azure Functions' key) only as a URL's parameter, not as a word in text.
_QUERY_NAMES = ["api[_-]?key", "key", "token", "access[_-]?token", "sig", "signature"]
_QUERY_NAMES += ["password", "secret", "auth", "session", "credential"]

_MIN_SECRET_LENGTH = 6
_known: set[str] = set()
#: Secrets too short to scrub from free text without masking ordinary words; they are
#: masked where they are a whole value.
_short: set[str] = set()
_known_lock = threading.Lock()
#: The known secrets as one pattern; rebuilt on first use after a secret is added,
#: so that loading many configs compiles it once, not once per key.
_pattern: re.Pattern[str] | None = None


@functools.cache
def _generic() -> re.Pattern[str]:
    """Bearer and basic credentials, ``sk-`` keys, URL userinfo and credential query
    values: compiled on first scrub."""
    return re.compile(
        r"(?i)((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"
        r"|\b(sk-[A-Za-z0-9_-]{8,})"
        rf"|((?:\b(?:{'|'.join(_QUERY_NAMES)})|(?<=[?&])code)=)[^&\s\"'<>]+"
        r"|(\b[a-z][a-z0-9+.-]*://[^/@\s:\"']*:)[^/@\s\"']+(?=@)"
    )


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential."""
    if not isinstance(key, str):
        return False
    folded = key.lower().replace("-", "_")
    return folded in SECRET_KEYS or folded.endswith(("_api_key", "_token", "_secret", "_password"))


def is_secret_header(name: object) -> bool:
    """Whether a header's value is a credential: its name contains a credential word."""
    return isinstance(name, str) and any(part in name.lower() for part in SECRET_HEADER_PARTS)


def _is_headers(key: object) -> bool:
    return isinstance(key, str) and "header" in key.lower()


def register_secret(value: object) -> None:
    """Remember a credential so that it is scrubbed from any text modelwire emits."""
    global _pattern
    if not isinstance(value, str):
        return
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() in ("bearer", "basic") and rest.strip():
        value = rest.strip()
        if scheme.lower() == "basic":
            _register_basic_decoded(value)
    if not value or value in _known or value in _short:
        return
    with _known_lock:
        if len(value) < _MIN_SECRET_LENGTH:
            _short.add(value)
            return
        _known.add(value)
        _pattern = None


def register_basic_auth(user: str, password: str) -> None:
    """Remember a user/password pair and the base64 form a server may echo back."""
    import base64

    register_secret(password)
    register_secret(base64.b64encode(f"{user}:{password}".encode()).decode())


def _register_basic_decoded(encoded: str) -> None:
    import base64
    import binascii

    try:
        _user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return
    if sep:
        register_secret(password)


def register_url_credentials(url: str) -> None:
    """Remember the password of a URL's userinfo (``http://bob:PASS@host/``)."""
    if "@" not in url or "://" not in url:
        return
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_basic_auth(unquote(parts.username or ""), unquote(parts.password))
        register_secret(parts.password)


def mask_url(url: str) -> str:
    """``url`` with its userinfo password and credential query values masked."""
    return scrub(url)


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


def register_secrets_in(value: Any, *, headers: bool = False) -> None:
    """Register every credential in a nested value: values under credential-like keys
    (any header whose name holds a credential word) and URL userinfo."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if is_secret_key(key) or (headers and is_secret_header(key)):
                register_secret(item)
            else:
                register_secrets_in(item, headers=_is_headers(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            register_secrets_in(item)
    elif isinstance(value, str):
        register_url_credentials(value)


def scrub(text: str) -> str:
    """Mask every known secret and anything shaped like a credential."""
    if text in _short:
        return MASK
    pattern = _known_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _generic().sub(_mask_generic, text)


def _mask_generic(match: re.Match[str]) -> str:
    if match.group(2):
        return MASK
    prefix = match.group(1) or match.group(3) or match.group(4)
    return prefix + MASK


def redacted(value: Any, *, headers: bool = False) -> Any:
    """A copy of a nested value with credential values masked and text scrubbed."""
    if isinstance(value, Mapping):
        return {
            key: (
                MASK
                if (is_secret_key(key) or (headers and is_secret_header(key))) and item is not None
                else redacted(item, headers=_is_headers(key))
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redacted(item) for item in value)
    if isinstance(value, str):
        return scrub(value)
    return value


# -- the loggers of the libraries modelwire drives ------------------------------------------
#: Loggers whose records may carry a request's URL or headers.
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "openai",
    "dashscope",
    "google_genai",
    "ollama",
)


def modelwire_logger() -> logging.Logger:
    """The ``modelwire`` logger; ``logging`` is imported on the first message, not at
    start-up."""
    import logging

    return logging.getLogger("modelwire")


class ScrubbingFilter:
    """Scrubs credentials from a log record's message before any handler sees it (a
    logging filter: any object with ``filter(record)`` is one, so ``logging`` itself is
    imported only by ``install_log_filters``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = ScrubbingFilter()


def install_log_filters() -> None:
    """Put ``ScrubbingFilter`` on the library loggers and every child they have so far.

    A logger's filters see only records made on that logger, not its children's, so
    each existing child gets one; SDK clients are built after their SDK is imported
    (``SDKClients``), which is when this runs.
    """
    import logging

    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".", 1)[0] in LIBRARY_LOGGERS
    ]
    for name in {*LIBRARY_LOGGERS, *names}:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
