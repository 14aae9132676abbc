"""The fake server itself: what plugin tests rely on must be right."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from modelwire.testing import FakeServer, RawEvent, Reply


def post(server: FakeServer, path: str, body: object = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("POST", path, body=json.dumps(body or {}), headers={"X-Key": "v"})
    return connection.getresponse()


def test_json_route_records_request(server: FakeServer) -> None:
    server.route("POST", "/v1/{model}:generate", Reply.json({"ok": True}, headers={"X-A": "1"}))
    reply = post(server, "/v1/gemini-pro:generate?alt=sse", {"q": 1})
    assert reply.status == 200 and json.loads(reply.read()) == {"ok": True}
    assert reply.getheader("X-A") == "1"
    request = server.requests[0]
    assert request.params == {"model": "gemini-pro"}
    assert request.query == {"alt": ["sse"]} and request.json() == {"q": 1}
    assert request.header("x-key") == "v"


def test_sequences_once_and_unknown_routes(server: FakeServer) -> None:
    server.route("POST", "/a", Reply.json(1), Reply.json(2))
    server.once("POST", "/a", Reply.error(503))
    statuses = [post(server, "/a") for _ in range(4)]
    assert [r.status for r in statuses] == [503, 200, 200, 200]
    assert [json.loads(r.read()) for r in statuses[1:]] == [1, 2, 2]
    missing = post(server, "/nowhere")
    assert missing.status == 404 and b"no route for POST /nowhere" in missing.read()
    assert len(server.requests_to("/a")) == 4


def test_sse_ndjson_and_raw_events(server: FakeServer) -> None:
    server.route(
        "POST",
        "/sse",
        Reply.sse([{"a": 1}, "text", RawEvent("id:1\nevent:result\ndata:{}")], done="[DONE]"),
    )
    body = post(server, "/sse").read().decode()
    assert body == 'data: {"a": 1}\n\ndata: text\n\nid:1\nevent:result\ndata:{}\n\ndata: [DONE]\n\n'
    server.route("POST", "/nd", Reply.ndjson([{"x": 1}, {"x": 2}]))
    assert post(server, "/nd").read() == b'{"x": 1}\n{"x": 2}\n'


def test_cut_stream_and_truncated_body(server: FakeServer) -> None:
    server.route("POST", "/cut", Reply.ndjson([{"x": i} for i in range(5)], cut_after=2))
    reply = post(server, "/cut")
    with pytest.raises(http.client.IncompleteRead) as info:
        reply.read()
    assert info.value.partial == b'{"x": 0}\n{"x": 1}\n'
    server.route("POST", "/trunc", Reply.json({"long": "x" * 100}, truncate_to=10))
    with pytest.raises(http.client.IncompleteRead):
        post(server, "/trunc").read()


def test_delay_and_reset(server: FakeServer) -> None:
    server.route("POST", "/slow", Reply.json({}, delay=0.3))
    started = time.perf_counter()
    post(server, "/slow").read()
    assert time.perf_counter() - started >= 0.3
    server.route("POST", "/reset", Reply.connection_reset())
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, socket.error)):
        post(server, "/reset").read()


def test_callable_responder_and_failure(server: FakeServer) -> None:
    server.route("POST", "/echo", lambda request: Reply.json(request.json()))
    assert json.loads(post(server, "/echo", {"e": 1}).read()) == {"e": 1}
    server.route("POST", "/bad", lambda request: 1 / 0)  # type: ignore[arg-type, return-value]
    reply = post(server, "/bad")
    assert reply.status == 599 and b"ZeroDivisionError" in reply.read()


def test_keep_alive_is_fast(server: FakeServer) -> None:
    server.route("POST", "/k", Reply.json({}))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    started = time.perf_counter()
    for _ in range(50):
        connection.request("POST", "/k", body=b"{}")
        connection.getresponse().read()
    assert (time.perf_counter() - started) / 50 < 0.02  # no ~40 ms delayed-ACK stalls
