"""Bad input over raw HTTP: always a 4xx with a JSON reason, never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Hi"}]


def assert_error(reply: httpx.Response, status: int, fragment: str = "") -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert "Traceback" not in reply.text
    error = reply.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert fragment in error["message"], error["message"]
    return error


# -- authentication ---------------------------------------------------------------------------


def test_missing_or_wrong_bearer_token_is_401(server: Any) -> None:
    url = f"{server.base_url}/llm/"
    error = assert_error(httpx.post(url, json={"inputs": "x"}), 401, "missing API key")
    assert error["type"] == "authentication_error"
    wrong = {"Authorization": "Bearer nope"}
    assert_error(httpx.post(url, json={"inputs": "x"}, headers=wrong), 401, "invalid API key")
    assert_error(httpx.get(f"{server.base_url}/v1/models", headers=wrong), 401)


def test_openai_sdk_sees_authentication_and_bad_request_errors(server: Any) -> None:
    base_url = f"{server.base_url}/v1"
    wrong = openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    right = openai.OpenAI(base_url=base_url, api_key=server.api_key, max_retries=0)
    with right, pytest.raises(openai.BadRequestError, match="n=1"):
        right.chat.completions.create(model="m", messages=MESSAGES, n=2)  # type: ignore[arg-type]


# -- body and route -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 12_000 + b"]" * 12_000, "nested too deeply"),
    ],
)
def test_malformed_bodies(http: httpx.Client, content: bytes, fragment: str) -> None:
    for path in ("/llm/", "/v1/chat/completions", "/v1/embeddings"):
        reply = http.post(path, content=content, headers={"Content-Type": "application/json"})
        assert_error(reply, 400, fragment)


def test_non_finite_numbers_are_rejected(http: httpx.Client) -> None:
    reply = http.post("/llm/", content=b'{"inputs": "x", "temperature": NaN}')
    assert_error(reply, 400, "'temperature' must be a number")


def test_oversized_body_is_413(server: Any, http: httpx.Client) -> None:
    reply = http.post("/llm/", json={"inputs": "x" * (server.max_body_bytes + 10)})
    assert_error(reply, 413, f"limit is {server.max_body_bytes} bytes")


def test_unknown_route_and_wrong_method(http: httpx.Client) -> None:
    assert_error(http.get("/nope"), 404, "unknown route: GET /nope")
    assert_error(http.post("/v1/completions", json={}), 404)
    assert_error(http.get("/llm/"), 405, "GET not allowed")
    assert_error(http.delete("/v1/models"), 405)


# -- /llm/ parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"max_new_tokens": 4}, "missing 'inputs'"),
        ({"inputs": 42}, "must be a string or a list of messages"),
        ({"inputs": [{"role": "user"}, "x"]}, "inputs[1]"),
        ({"inputs": "x", "max_tokens": 4}, "unknown generation parameter(s) 'max_tokens'"),
        ({"inputs": "x", "return_full_text": True}, "'return_full_text'"),
        ({"inputs": "x", "num_beams": 4}, "beam search is not supported"),
        ({"inputs": "x", "max_new_tokens": "many"}, "'max_new_tokens' must be an integer"),
        ({"inputs": "x", "temperature": "hot"}, "'temperature' must be a number"),
        ({"inputs": "x", "top_k": -1}, "'top_k' must be >= 0"),
        ({"inputs": "x", "do_sample": True, "temperature": 0}, "temperature must be > 0"),
        ({"inputs": "x", "max_new_tokens": 10_000}, "--max-new-tokens"),
        ({"inputs": "x", "seed": 2**70}, "'seed' must be <="),
        ({"inputs": "one two three four", "max_length": 2}, "'max_length'=2 leaves no room"),
        ({"inputs": [{"role": "user", "content": "x"}], "stream": True}, "/v1/chat/completions"),
    ],
)
def test_llm_bad_parameters(http: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    assert_error(http.post("/llm/", json=body), 400, fragment)


def test_prompt_over_the_input_cap(server: Any, http: httpx.Client) -> None:
    reply = http.post("/llm/", json={"inputs": "hello " * (server.max_input_tokens + 50)})
    assert_error(reply, 400, "--max-input-tokens")


# -- /v1 parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m"}, "missing 'messages'"),
        ({"model": "m", "messages": "hi"}, "non-empty list"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 10_000}, "'max_tokens'=10000"),
        ({"model": "m", "messages": MESSAGES, "max_completion_tokens": 0}, ">= 1"),
        ({"model": "m", "messages": MESSAGES, "tools": [{"type": "function"}]}, "tool"),
        ({"model": "m", "messages": MESSAGES, "logprobs": True}, "logprobs"),
        ({"model": "m", "messages": MESSAGES, "frequency_penalty": 1.0}, "repetition_penalty"),
        ({"model": "m", "messages": MESSAGES, "temperature": 5000}, "temperature"),
        ({"model": "m", "messages": MESSAGES, "best_of": 2}, "'best_of'"),
        ({"model": 3, "messages": MESSAGES}, "'model' must be a string"),
    ],
)
def test_chat_bad_parameters(http: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    assert_error(http.post("/v1/chat/completions", json=body), 400, fragment)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m"}, "missing 'input'"),
        ({"model": "m", "input": [[1, 2, 3]]}, "token-id input is not supported"),
        ({"model": "m", "input": ""}, "must not be empty"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "'encoding_format'"),
        ({"model": "m", "input": "x", "dimensions": 64}, "'dimensions' must be 384"),
    ],
)
def test_embedding_bad_parameters(http: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    assert_error(http.post("/v1/embeddings", json=body), 400, fragment)


def test_server_is_still_healthy_afterwards(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "ok"
    reply = http.post("/llm/", json={"inputs": "Hi", "max_new_tokens": 2})
    assert reply.status_code == 200
