"""The record types keep the behaviour they had as dataclasses: ==, repr, hash, pickling."""

from __future__ import annotations

import copy
import pickle

import pytest

from modelwire import ModelChunk, ModelResponse, Msg, Usage
from modelwire.errors import ConfigIssue
from modelwire.response import LazyRaw
from modelwire.retry import RetryPolicy
from modelwire.spend import Pricing


def test_usage_is_an_immutable_hashable_value() -> None:
    usage = Usage(1, 2, 3)
    assert usage == Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    assert usage != Usage(1, 2, 4)
    assert hash(usage) == hash(Usage(1, 2, 3))
    assert repr(usage) == "Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)"
    with pytest.raises(AttributeError, match="immutable"):
        usage.total_tokens = 9  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del usage.total_tokens
    assert usage + Usage(1, 1, 2) == Usage(2, 3, 5)


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
    assert ModelResponse(text="a") != ModelChunk(text="a")
    assert ModelResponse().extra == {} and ModelResponse().extra is not ModelResponse().extra
    assert repr(ModelChunk(text="a")).startswith("ModelChunk(text='a', raw=None")


def test_msg_keeps_the_seed_signature_and_makes_ids() -> None:
    first, second = Msg("user", "Hi", "user"), Msg("user", "Hi", "user")
    assert first.id != second.id and len(first.id) == 32
    assert first.timestamp
    assert Msg("a", "b", id="fixed", timestamp="t").id == "fixed"
    with pytest.raises(ValueError, match="role"):
        Msg("user", "Hi", role="robot")


def _counting_build(payload: dict[str, object]) -> tuple[list[int], LazyRaw]:
    builds: list[int] = []

    def build() -> dict[str, object]:
        builds.append(1)
        return payload

    return builds, LazyRaw(build)


@pytest.mark.parametrize("kind", [ModelResponse, ModelChunk])
def test_lazy_raw_is_built_once_on_first_read(kind: type) -> None:
    builds, lazy = _counting_build({"id": "r1"})
    record = kind(text="hi", raw=lazy)
    assert builds == []  # making the response does not build raw
    assert record.raw == {"id": "r1"} and record.raw is record.raw
    assert builds == [1]
    record.raw = {"replaced": True}
    assert record.raw == {"replaced": True}


@pytest.mark.parametrize("kind", [ModelResponse, ModelChunk])
def test_lazy_raw_compares_copies_and_pickles_as_the_built_value(kind: type) -> None:
    _, lazy = _counting_build({"id": "r2"})
    record = kind(text="hi", raw=lazy)
    eager = kind(text="hi", raw={"id": "r2"})
    assert record == eager
    assert pickle.loads(pickle.dumps(kind(text="hi", raw=LazyRaw(lambda: {"id": "r2"})))) == eager
    assert copy.deepcopy(kind(text="hi", raw=LazyRaw(lambda: [1]))).raw == [1]
    assert "raw={'id': 'r2'}" in repr(record) or kind is ModelResponse
