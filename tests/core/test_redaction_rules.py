"""Credentials under any header name, in URLs, base64-encoded or short never show: not in
``repr(config)``, errors, tracebacks, records, or the logs of the libraries modelwire drives."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import traceback
from pathlib import Path
from typing import Any

import pytest

from modelwire import ModelRegistry, ProviderError
from modelwire import records as records_module
from modelwire.redact import redacted, register_secret, scrub
from modelwire.testing import FakeServer, Reply, Request

HEADER_NAMES = [
    "X-RapidAPI-Key",
    "X-Authorization",
    "X-Auth-Key",
    "Authentication",
    "X-Functions-Key",
    "Subscription-Key",
    "X-Secret-Key",
    "X-Access-Key",
    "X-DashScope-ApiKey",
]


def echo_headers(request: Request) -> Reply:
    """A service that echoes every request header back in its error: the worst case."""
    return Reply.json({"error": {"message": json.dumps(dict(request.headers))}}, 400)


def post_api(server: FakeServer, **params: Any) -> dict[str, Any]:
    return {
        "config_name": "flask",
        "model_type": "post_api",
        "api_url": server.url + "/llm/",
        "retry": {"max_retries": 0},
        **params,
    }


@pytest.mark.parametrize("name", HEADER_NAMES)
def test_a_credential_under_any_header_name_never_shows(
    server: FakeServer, tmp_path: Path, name: str
) -> None:
    secret = f"hdr-{name.lower()}-0123456789"
    server.route("POST", "/llm/", echo_headers)
    path = tmp_path / "records.jsonl"
    records_module.configure(path)
    try:
        registry = ModelRegistry([post_api(server, headers={name: secret, "Accept": "*/*"})])
        model = registry.load_model("flask")
        with pytest.raises(ProviderError) as info:
            model("hi")
    finally:
        records_module.configure(None)
    assert server.requests[0].header(name) == secret  # it did reach the service
    shown = [
        repr(registry.config("flask")),
        repr(redacted({"headers": {name: secret}})),
        str(info.value),
        "".join(traceback.format_exception(info.value)),
        path.read_text(),
        # what a caller or a tool may read off the error object, not only print
        info.value.message,
        repr(info.value.args),
        info.value.body or "",
        pickle.dumps(info.value).decode("latin-1"),
    ]
    assert all(secret not in text for text in shown)


def test_a_short_secret_is_masked_where_it_is_a_whole_value() -> None:
    register_secret("k9Z")
    assert redacted({"x_custom": "k9Z", "other": "k9Z is a word here"}) == {
        "x_custom": "***",
        "other": "k9Z is a word here",
    }
    assert scrub("k9Z") == "***"


def test_a_basic_auth_echo_is_scrubbed_in_its_base64_form(server: FakeServer) -> None:
    server.route("POST", "/llm/", echo_headers)
    model = ModelRegistry(
        [post_api(server, post_args={"auth": ["bob", "basic-pass-4242"]})]
    ).load_model("flask")
    with pytest.raises(ProviderError) as info:
        model("hi")
    encoded = base64.b64encode(b"bob:basic-pass-4242").decode()
    assert encoded in server.requests[0].header("authorization")
    text = str(info.value) + "".join(traceback.format_exception(info.value))
    assert encoded not in text and "basic-pass-4242" not in text


def test_the_request_log_line_of_an_sdk_on_httpx2_is_masked_too(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    # openai builds its clients on httpx2, whose INFO line names the URL with its query
    server.route("POST", "/v1/chat/completions", Reply.error(400))
    config = {
        "config_name": "azure-style",
        "model_type": "openai_chat",
        "model_name": "gpt-4o-mini",
        "api_key": "sk-header-key-7777",
        "client_args": {
            "base_url": server.url + "/v1",
            "default_query": {"api-key": "query-key-6666"},
        },
    }
    model = ModelRegistry([config]).load_model("azure-style")
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError):
        model([{"role": "user", "content": "hi"}])
    assert server.requests[0].query == {"api-key": ["query-key-6666"]}
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpx2")]
    assert any("HTTP Request" in line for line in lines), "httpx2's own INFO line was captured"
    assert all("query-key-6666" not in line for line in lines)


def test_url_credentials_are_masked_in_repr_errors_and_library_logs(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("POST", "/llm/", Reply.error(500))
    url = (
        server.url.replace("http://", "http://bob:url-pass-9876@")
        + "/llm/?api-key=query-key-5555&code=functions-key-3333"  # code: Azure Functions'
    )
    registry = ModelRegistry([{**post_api(server), "api_url": url}])
    model = registry.load_model("flask")
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        model("hi")
    assert server.requests, "the call reached the service"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request" in logged, "httpx's own INFO line was captured"
    shown = [logged, str(info.value), "".join(traceback.format_exception(info.value))]
    shown.append(repr(registry.config("flask")))
    for text in shown:
        assert "url-pass-9876" not in text
        assert "query-key-5555" not in text
        assert "functions-key-3333" not in text
