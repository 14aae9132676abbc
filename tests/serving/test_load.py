"""Reliability under load: 32 concurrent clients mixing good and bad requests.

Every request must get the right status, the service must stay healthy, and its
resident memory must not keep growing from one round of load to the next.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

CLIENTS = 32
ROUND_SECONDS = 20.0  # a bound, not a target: a round ends earlier when its work is done


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def _cases(server) -> list[tuple[str, Callable[[httpx.Client], httpx.Response], int]]:  # type: ignore[no-untyped-def]
    good_chat = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 3,
        "temperature": 0,
    }
    return [
        ("llm", lambda c: c.post("/llm/", json={"inputs": "Hello", "max_new_tokens": 3}), 200),
        ("chat", lambda c: c.post("/v1/chat/completions", json=good_chat), 200),
        ("embed", lambda c: c.post("/v1/embeddings", json={"input": ["a", "b"]}), 200),
        ("models", lambda c: c.get("/v1/models"), 200),
        (
            "bad-json",
            lambda c: c.post(
                "/llm/", content=b"{nope", headers={"Content-Type": "application/json"}
            ),
            400,
        ),
        ("wrong-type", lambda c: c.post("/llm/", json={"inputs": 42}), 400),
        (
            "huge-max-new-tokens",
            lambda c: c.post("/llm/", json={"inputs": "x", "max_new_tokens": 10**9}),
            400,
        ),
        (
            "oversized",
            lambda c: c.post("/llm/", json={"inputs": "x" * (server.max_body_bytes + 10)}),
            413,
        ),
        ("unknown-route", lambda c: c.get("/nowhere"), 404),
        (
            "no-token",
            lambda c: c.post("/llm/", json={"inputs": "x"}, headers={"Authorization": ""}),
            401,
        ),
        (
            "wrong-token",
            lambda c: c.post(
                "/llm/", json={"inputs": "x"}, headers={"Authorization": "Bearer nope"}
            ),
            401,
        ),
    ]


def _round(server) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    """Each client runs every case once; returns (case, expected, got) for mismatches."""
    cases = _cases(server)
    deadline = time.monotonic() + ROUND_SECONDS
    mismatches: list[tuple[str, int, int]] = []

    def client(index: int) -> None:
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as c:
            for offset in range(len(cases)):
                if time.monotonic() > deadline:
                    return
                name, send, expected = cases[(index + offset) % len(cases)]
                response = send(c)
                if response.status_code != expected:
                    mismatches.append((name, expected, response.status_code))
                elif expected != 200 and "json" in response.headers.get("content-type", ""):
                    assert "error" in response.json(), name
                if response.status_code >= 500:
                    mismatches.append((name, expected, response.status_code))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return mismatches


def test_32_clients_get_the_right_status_and_the_service_stays_healthy(server) -> None:  # type: ignore[no-untyped-def]
    assert _round(server) == []  # warm-up round: also fills allocator caches
    before = _rss_kib(server.pid)
    assert _round(server) == []
    after = _rss_kib(server.pid)
    health = httpx.get(f"{server.base_url}/health", timeout=10)
    assert health.status_code == 200, health.text
    assert json.loads(health.text)
    # A second identical round must not grow memory materially (a leak grows every round).
    assert after <= before * 1.15 + 64 * 1024, (before, after)
    assert "Traceback" not in server.log()


# -- idle and slow clients ---------------------------------------------------------------------

IDLE_SOCKETS = 150  # more than waitress's default connection limit of 100
HALF_SENT = 20


def _address(server) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds`, and what it sent before."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    received = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def test_idle_and_half_open_connections_do_not_take_the_service_offline(server) -> None:  # type: ignore[no-untyped-def]
    address = _address(server)
    idle = [socket.create_connection(address, timeout=5) for _ in range(IDLE_SOCKETS)]
    half = [socket.create_connection(address, timeout=5) for _ in range(HALF_SENT)]
    try:
        for sock in half:
            sock.sendall(b"POST /llm/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        started = time.monotonic()
        health = httpx.get(f"{server.base_url}/health", timeout=5)
        assert health.status_code == 200
        assert time.monotonic() - started < 3.0
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as c:
            assert c.get("/v1/models").status_code == 200
            reply = c.post("/llm/", json={"inputs": "Hi", "max_new_tokens": 2})
            assert reply.status_code == 200, reply.text
        # The server reclaims them: half-sent requests after --read-timeout (shorter than
        # --idle-timeout here), with a 408, then idle ones after --idle-timeout.
        assert server.read_timeout < server.idle_timeout
        bound = server.read_timeout + 3.0
        closed_half = [_closed_within(sock, 1.0 if i else bound) for i, sock in enumerate(half)]
        assert all(closed for closed, _ in closed_half)
        assert all(sent.startswith(b"HTTP/1.1 408") for _, sent in closed_half), closed_half[0]
        assert b"--read-timeout" in closed_half[0][1]
        bound = server.idle_timeout + 3.0
        closed_idle = [_closed_within(sock, 1.0 if i else bound) for i, sock in enumerate(idle)]
        assert all(closed for closed, _ in closed_idle)
        assert all(sent == b"" for _, sent in closed_idle)
    finally:
        for sock in idle + half:
            sock.close()


def test_a_client_trickling_its_headers_is_cut_off(server) -> None:  # type: ignore[no-untyped-def]
    """Bytes that keep arriving do not keep a request alive past --read-timeout."""
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.5)
        started = time.monotonic()
        received = b""
        while time.monotonic() - started < server.read_timeout + 8:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - started
    assert server.read_timeout - 0.5 < elapsed < server.read_timeout + 8, elapsed
    assert not received or received.startswith(b"HTTP/1.1 408"), received[:100]
