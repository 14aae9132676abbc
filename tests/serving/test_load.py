"""Reliability under load: 32 concurrent clients mixing good and bad requests.

Every request must get the right status, the service must stay healthy, and its
resident memory must not keep growing from one round of load to the next.
"""

from __future__ import annotations

import json
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
