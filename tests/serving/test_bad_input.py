"""Bad input over raw HTTP: always a 4xx with a JSON reason, never a 500 or a traceback."""

from __future__ import annotations

import json
import socket
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
    assert_error(http.post("/v1/completion", json={}), 404)
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
        ({"inputs": [{"role": "user", "content": "x"}], "raw": True}, "'raw' applies to a string"),
        ({"inputs": "x", "raw": "yes"}, "'raw' must be true or false"),
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
        ({"model": "m", "messages": MESSAGES, "response_format": {"type": "xml"}}, "json_schema"),
        (
            {"model": "m", "messages": MESSAGES, "response_format": {"type": "json_schema"}},
            "needs {'json_schema'",
        ),
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


# -- text no tokenizer can encode -------------------------------------------------------------

LONE = "\\ud800"  # JSON's spelling of a lone UTF-16 surrogate


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/llm/", '{"inputs": "hi ' + LONE + '"}', "'inputs'"),
        ("/llm/", '{"inputs": [{"role": "user", "content": "' + LONE + '"}]}', "inputs[0].content"),
        ("/llm/", '{"inputs": [{"role": "' + LONE + '", "content": "hi"}]}', "inputs[0].role"),
        (
            "/v1/chat/completions",
            '{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", '
            '"text": "' + LONE + '"}]}]}',
            "messages[0].content[0].text",
        ),
        ("/v1/embeddings", '{"input": ["fine", "' + LONE + 'x"]}', "input[1]"),
        ("/llm/", '{"inputs": "hi", "' + LONE + '": 1}', "(a key)"),
    ],
)
def test_lone_surrogates_are_a_400_naming_the_field(
    http: httpx.Client, path: str, body: str, where: str
) -> None:
    reply = http.post(path, content=body.encode(), headers={"Content-Type": "application/json"})
    assert_error(reply, 400, where)
    assert "lone UTF-16 surrogate" in reply.json()["error"]["message"]


def test_surrogate_encoded_as_utf8_bytes_is_a_400_too(http: httpx.Client) -> None:
    # json.loads accepts the (invalid) UTF-8 form of a surrogate, b"\xed\xa0\x80", as "\ud800".
    body = b'{"inputs": "a\xed\xa0\x80b"}'
    reply = http.post("/llm/", content=body, headers={"Content-Type": "application/json"})
    assert_error(reply, 400, "lone UTF-16 surrogate")


def test_valid_surrogate_pairs_are_fine(http: httpx.Client) -> None:
    body = '{"inputs": [{"role": "user", "content": "Hi \\ud83d\\ude00"}], "max_new_tokens": 2}'
    reply = http.post("/llm/", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text


# -- sampling settings that divide by (almost) zero -----------------------------------------------


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"temperature": 1e-300}, "'temperature' must be 0 (greedy) or at least 0.01"),
        ({"temperature": 5e-324}, "'temperature' must be 0 (greedy) or at least 0.01"),
        ({"temperature": 0.001, "do_sample": True}, "at least 0.01 when sampling"),
        (
            {"temperature": 0.7, "repetition_penalty": 1e-300},
            "'repetition_penalty' must be >= 0.01",
        ),
        ({"temperature": 0, "repetition_penalty": 5e-324}, "'repetition_penalty' must be >= 0.01"),
    ],
)
def test_tiny_temperature_or_penalty_is_a_400(
    http: httpx.Client, settings: dict[str, Any], fragment: str
) -> None:
    assert_error(http.post("/llm/", json={"inputs": "x", **settings}), 400, fragment)
    chat = {"model": "m", "messages": MESSAGES, "max_tokens": 2, **settings}
    assert_error(http.post("/v1/chat/completions", json=chat), 400, fragment)


def test_the_lowest_accepted_settings_still_generate(http: httpx.Client) -> None:
    body = {"inputs": "Hi", "max_new_tokens": 3, "temperature": 0.01, "repetition_penalty": 0.01}
    reply = http.post("/llm/", json=body)
    assert reply.status_code == 200, reply.text
    tiny_top_p = {"inputs": "Hi", "max_new_tokens": 3, "temperature": 0.5, "top_p": 5e-324}
    assert http.post("/llm/", json=tiny_top_p).status_code == 200


def test_openai_sdk_sees_a_bad_request_for_a_tiny_temperature(server: Any) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
    with client, pytest.raises(openai.BadRequestError, match=r"at least 0\.01"):
        client.chat.completions.create(model="m", messages=MESSAGES, temperature=1e-300)  # type: ignore[arg-type]


# -- bodies far over the limit ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/llm/", "/v1/chat/completions", "/v1/embeddings"])
def test_an_8_mb_body_is_a_413_not_a_connection_reset(server: Any, path: str) -> None:
    body = b'{"inputs": "' + b"x" * (8 << 20) + b'"}'
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as client:
        reply = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_error(reply, 413, f"the limit is {server.max_body_bytes} bytes")


def test_an_oversized_chunked_body_is_a_413(server: Any) -> None:
    def chunks() -> Any:
        for _ in range(4):
            yield b"x" * server.max_body_bytes

    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as client:
        reply = client.post("/llm/", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(reply, 413, "--max-body-bytes")


def test_expect_100_continue_gets_the_413_before_sending_the_body(server: Any) -> None:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /llm/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + server.api_key.encode() + b"\r\n"
            b"Content-Length: 8388608\r\nExpect: 100-continue\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"100 Continue" not in head
    assert "--max-body-bytes" in json.loads(body)["error"]["message"]


# -- the API key ----------------------------------------------------------------------------


def test_the_key_from_the_environment_stays_out_of_ps_and_the_log(server: Any) -> None:
    # The fixture passes the key only as MODELWIRE_SERVE_API_KEY; the 401 tests prove it is used.
    with open(f"/proc/{server.pid}/cmdline", "rb") as cmdline:
        assert server.api_key.encode() not in cmdline.read()
    log = server.log()
    assert server.api_key not in log
    configs = [json.loads(line.strip()) for line in log.splitlines() if line.startswith("  {")]
    assert {config["config_name"] for config in configs} >= {"flask_llm", "local_openai"}
    for config in configs:
        assert "not-needed" not in json.dumps(config), config
        placeholder = config.get("api_key") or config["headers"]["Authorization"]
        assert "--api-key" in placeholder and "MODELWIRE_SERVE_API_KEY" in placeholder
