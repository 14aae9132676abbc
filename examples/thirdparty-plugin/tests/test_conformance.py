"""The example plugin runs modelwire's conformance suite, as any plugin should."""

from __future__ import annotations

from typing import Any

from modelwire import Usage
from modelwire.testing import FakeServer, Reply, Request
from modelwire.testing.conformance import ConformanceSuite

USAGE = {"input_tokens": 5, "output_tokens": 5}


def reverse_service(request: Request) -> Reply:
    """Speaks the reverse_echo wire format: JSON, or NDJSON when streaming."""
    body = request.json()
    output = body["text"][::-1]
    if body.get("stream"):
        half = len(output) // 2
        return Reply.ndjson(
            [{"delta": output[:half]}, {"delta": output[half:]}, {"delta": "", "usage": USAGE}]
        )
    return Reply.json({"output": output, "usage": USAGE})


class TestReverseEchoConformance(ConformanceSuite):
    model_type = "reverse_echo"
    distribution = "modelwire-reverse-echo"
    output = "text"
    streams = True
    expected_text = "olleH"
    expected_usage = Usage(5, 5, 10)
    routes = [("POST", "/v1/reverse")]
    env_secret_var = "REVERSE_ECHO_API_KEY"
    # What it takes beyond text: nothing. The suite then checks that a call with
    # `tools` or `structured_model` is refused before anything is sent.
    supports_tools = False
    supports_structured_output = False
    supports_images = False
    supports_thinking = False

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": "reverse",
            "model_type": "reverse_echo",
            "model_name": "reverse-1",
            "base_url": server.url,
            "api_key": self.secret,
        }

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", "/v1/reverse", reverse_service)
