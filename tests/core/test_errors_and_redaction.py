"""Error helpers, retry policy and secret redaction."""

from __future__ import annotations

import pickle
import time
from email.utils import formatdate

import pytest

from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConfigIssue,
    ModelTimeoutError,
    ModelWireError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ServiceUnavailableError,
    error_for_status,
    parse_retry_after,
)
from modelwire.redact import redacted, register_secret, scrub
from modelwire.retry import RetryPolicy


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, BadRequestError),
        (408, ModelTimeoutError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, ServiceUnavailableError),
        (502, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (504, ServiceUnavailableError),
    ],
)
def test_error_for_status(status: int, cls: type[ProviderError]) -> None:
    error = error_for_status(status, "boom", body="details")
    assert type(error) is cls
    assert error.status == status
    assert str(error) == f"HTTP {status}: boom -- response body: details"


def test_hierarchy() -> None:
    assert issubclass(ConfigError, ModelWireError) and issubclass(ConfigError, ValueError)
    for cls in (AuthenticationError, RateLimitError, BadRequestError, ModelTimeoutError):
        assert issubclass(cls, ProviderError)
    assert issubclass(ServiceUnavailableError, ProviderError)
    assert issubclass(ResponseParseError, ProviderError)
    assert RateLimitError.retryable and ServiceUnavailableError.retryable
    assert not AuthenticationError.retryable and not ModelTimeoutError.retryable


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "-4"}) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    http_date = formatdate(time.time() + 20, usegmt=True)
    assert 17 <= parse_retry_after({"Retry-After": http_date}) <= 20  # type: ignore[operator]


def test_rate_limit_error_carries_retry_after() -> None:
    error = error_for_status(429, "slow down", headers={"Retry-After": "12"})
    assert isinstance(error, RateLimitError) and error.retry_after == 12.0


def test_provider_error_str_names_config_and_truncates_body() -> None:
    error = ProviderError("x", status=500, config_name="c", model_type="t", body="y" * 5000)
    text = str(error)
    assert text.startswith("[c (t)] HTTP 500: x -- response body: yyy")
    assert "[3000 more characters]" in text


def test_provider_error_pickles() -> None:
    error = RateLimitError("r", status=429, retry_after=2.0, config_name="c")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitError and copy.retry_after == 2.0 and copy.config_name == "c"


def test_config_error_lists_issues() -> None:
    error = ConfigError([ConfigIssue("a", "k", "bad"), ConfigIssue("b", None, "worse")], source="f")
    assert str(error) == "2 problems in f:\n  - config 'a', key 'k': bad\n  - config 'b': worse"


def test_retry_policy_backoff_and_retry_after() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay=1.0, max_delay=4.0)
    server_error = ServiceUnavailableError("x")
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0)]:
        delay = policy.delay(attempt, server_error)
        assert delay is not None and ceiling / 2 <= delay <= ceiling
    assert policy.delay(3, server_error) is None
    assert policy.delay(0, RateLimitError("r", retry_after=3.5)) == 3.5
    assert policy.delay(0, RateLimitError("r", retry_after=4.5)) is None
    assert policy.delay(0, AuthenticationError("a")) is None
    assert policy.delay(0, ModelTimeoutError("t")) is None
    assert policy.delay(0, ValueError("not a provider error")) is None
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(max_retries=-1)


def test_scrub_known_and_generic_secrets() -> None:
    register_secret("my-private-key-0001")
    text = (
        "key my-private-key-0001; Authorization: Bearer abcdef123456;"
        " sk-live12345678; ?key=zzzzzz12"
    )
    cleaned = scrub(text)
    assert "my-private-key-0001" not in cleaned
    assert "abcdef123456" not in cleaned and "sk-live12345678" not in cleaned
    assert "zzzzzz12" not in cleaned
    assert cleaned.count("***") == 4


def test_a_secret_registered_after_a_scrub_is_scrubbed_too() -> None:
    register_secret("first-secret-value-aa")
    assert scrub("first-secret-value-aa") == "***"  # the pattern is built here
    register_secret("second-secret-value-bb")  # and must be rebuilt, not reused
    assert scrub("first-secret-value-aa second-secret-value-bb") == "*** ***"
    register_secret("second-secret-value-bb-longer")  # longest match wins
    assert scrub("x second-secret-value-bb-longer x") == "x *** x"


def test_short_values_are_not_registered() -> None:
    register_secret("xxx")
    assert scrub("xxx marks the spot") == "xxx marks the spot"


def test_redacted_masks_secret_keys_recursively() -> None:
    value = {
        "api_key": "k1",
        "headers": {"Authorization": "Bearer t", "X-Goog-Api-Key": "g", "Accept": "json"},
        "list": [{"password": "p"}],
        "client_secret": None,
    }
    assert redacted(value) == {
        "api_key": "***",
        "headers": {"Authorization": "***", "X-Goog-Api-Key": "***", "Accept": "json"},
        "list": [{"password": "***"}],
        "client_secret": None,
    }


def test_errors_scrub_secrets_in_messages() -> None:
    register_secret("sdk-echoed-secret-42")
    error = AuthenticationError("Incorrect API key provided: sdk-echoed-secret-42", status=401)
    assert "sdk-echoed-secret-42" not in str(error)
    assert "sdk-echoed-secret-42" not in repr(error)
    assert "sdk-echoed-secret-42" not in str(ConfigError("bad key sdk-echoed-secret-42"))
