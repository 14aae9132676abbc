"""The record types are dataclasses: ==, repr, hash where frozen, pickling and copying."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from modelwire import ConfigIssue, ModelChunk, ModelResponse, Msg, Pricing, RetryPolicy, Usage


def test_usage_is_an_immutable_hashable_value() -> None:
    usage = Usage(1, 2, 3)
    assert usage == Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    assert usage != Usage(1, 2, 4)
    assert hash(usage) == hash(Usage(1, 2, 3))
    assert repr(usage).startswith("Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.total_tokens = 9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del usage.total_tokens
    assert usage + Usage(1, 1, 2) == Usage(2, 3, 5)


@pytest.mark.parametrize("count", [-5, 1.5, True, "7", float("inf"), 10**16])
def test_usage_refuses_impossible_counts(count: object) -> None:
    with pytest.raises(ValueError, match="tokens"):
        Usage.of(count, 1)


@pytest.mark.parametrize(
    "value",
    [
        Usage(1, 2, 3),
        ConfigIssue("cfg", "key", "bad"),
        RetryPolicy(max_retries=1, initial_delay=0.1, max_delay=2.0),
        Pricing(0.5, 1.5),
    ],
    ids=type,
)
def test_frozen_values_survive_pickle_and_copy(value: object) -> None:
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value
    assert copy.copy(value) == value


def test_retry_policy_still_rejects_negative_settings() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize(
    "value",
    [
        ModelResponse(text="hi", usage=Usage(1, 1, 2), extra={"a": 1}),
        ModelChunk(text="x", finish_reason="stop"),
        Msg("user", "Hi", role="user", url="a.png"),
    ],
    ids=type,
)
def test_mutable_records_compare_by_value_pickle_and_are_unhashable(value: object) -> None:
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value
    with pytest.raises(TypeError):
        hash(value)


def test_records_of_different_types_or_fields_differ() -> None:
    assert ModelChunk(text="a") != ModelChunk(text="b")
    assert ModelResponse(text="a") != ModelChunk(text="a")  # type: ignore[comparison-overlap]
    assert ModelResponse(text="a") != ModelResponse(text="b")
    assert ModelResponse().extra == {} and ModelResponse().extra is not ModelResponse().extra
    assert repr(ModelChunk(text="a")).startswith("ModelChunk(text='a', raw=None")


def test_msg_keeps_the_seed_signature_and_makes_ids() -> None:
    first, second = Msg("user", "Hi", "user"), Msg("user", "Hi", "user")
    assert first.id != second.id and len(first.id) == 32
    assert first.timestamp
    assert Msg("a", "b", id="fixed", timestamp="t").id == "fixed"
    with pytest.raises(ValueError, match="role"):
        Msg("user", "Hi", role="robot")
