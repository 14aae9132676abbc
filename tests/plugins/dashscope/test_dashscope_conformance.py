"""modelwire's conformance suite for the four DashScope model types, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from modelwire import Usage
from modelwire.testing import FakeServer, Reply
from modelwire.testing.conformance import ConformanceSuite

API = "/api/v1"


class DashScopeSuite(ConformanceSuite):
    """What the four types share: the distribution, the SDK, DashScope-shaped errors."""

    distribution = "modelwire-dashscope"
    env_secret_var = "DASHSCOPE_API_KEY"
    sdk_modules = ("dashscope",)

    @pytest.fixture(autouse=True)
    def _wire_type(self, wire_type: type[Any]) -> None:
        self.wire_type = wire_type

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return self.wire_type.error(status, headers=headers)

    def base_config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": f"conformance-{self.model_type}",
            "model_type": self.model_type,
            "api_key": self.secret,
            "base_url": server.url + API,
        }


class TestDashScopeChatConformance(DashScopeSuite):
    model_type = "dashscope_chat"
    output = "text"
    streams = True
    expected_text = "Hello from Qwen"
    expected_usage = Usage(12, 5, 17)
    routes = [("POST", f"{API}/services/aigc/text-generation/generation")]
    generation_config = {"generate_args": {"temperature": 0.25}}

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "qwen-max",
            "generate_args": {"temperature": 0.5},
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).chat(self.expected_text, (12, 5))


class TestDashScopeMultiModalConformance(DashScopeSuite):
    """``dashscope_multimodal``: a vision model at the multimodal-generation endpoint."""

    model_type = "dashscope_multimodal"
    output = "text"
    streams = True
    expected_text = "Hello from Qwen-VL"
    expected_usage = Usage(12, 5, 17)
    routes = [("POST", f"{API}/services/aigc/multimodal-generation/generation")]
    generation_config = {"generate_args": {"temperature": 0.25}}

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "qwen-vl-max",
            "generate_args": {"temperature": 0.5},
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).chat(
            self.expected_text,
            (12, 5),
            path=f"{API}/services/aigc/multimodal-generation/generation",
        )


class TestDashScopeTextEmbeddingConformance(DashScopeSuite):
    model_type = "dashscope_text_embedding"
    output = "embedding"
    expected_embedding_count = 2
    expected_usage = Usage(6, 0, 6)
    routes = [("POST", f"{API}/services/embeddings/text-embedding/text-embedding")]
    generation_config = {"generate_args": {"dimension": 64}}
    generation_on_wire = ("dimension", 64)

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "text-embedding-v2",
            "generate_args": {"dimension": 8},
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).embeddings(tokens_per_text=3)


class TestDashScopeImageSynthesisConformance(DashScopeSuite):
    model_type = "dashscope_image_synthesis"
    output = "image"
    reports_usage = False
    expected_image_urls = ["https://dashscope-result.example/a-lighthouse-at-dawn/0.png"]
    routes = [("POST", f"{API}/services/aigc/text2image/image-synthesis")]
    generation_config = {"generate_args": {"seed": 7}}
    generation_on_wire = ("seed", 7)

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            **self.base_config(server),
            "model_name": "wanx-v1",
            "generate_args": {"n": 1},
            "poll_interval": 0.01,
            "max_poll_interval": 0.05,
            "wait_timeout": 5.0,
        }

    def script_success(self, server: FakeServer) -> None:
        self.wire_type(server).images(running_polls=2)
