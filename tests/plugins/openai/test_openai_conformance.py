"""modelwire's conformance suite for each OpenAI model type, through the real SDK."""

from __future__ import annotations

from typing import Any

import pytest

from modelwire import Usage
from modelwire.testing import FakeServer, Reply
from modelwire.testing.conformance import ConformanceSuite


class _OpenAISuite(ConformanceSuite):
    distribution = "modelwire-openai"
    sdk_modules = ("openai",)
    model_name = ""
    env_secret_var = "OPENAI_API_KEY"

    @pytest.fixture(autouse=True)
    def _wire(self, wire: Any) -> None:
        self.wire = wire

    def config(self, server: FakeServer) -> dict[str, Any]:
        return {
            "config_name": f"conformance-{self.model_type}",
            "model_type": self.model_type,
            "model_name": self.model_name,
            "api_key": self.secret,
            "client_args": {"base_url": server.url + "/v1"},
        }

    def error_reply(self, status: int, headers: dict[str, str]) -> Reply:
        return self.wire.error(status, f"scripted {status}", headers=headers)


class TestOpenAIChatConformance(_OpenAISuite):
    model_type = "openai"
    model_name = "gpt-4o"
    output = "text"
    streams = True
    expected_text = "Hi there, how can I help?"
    expected_usage = Usage(9, 7, 16)
    routes = [("POST", "/v1/chat/completions")]
    generation_config = {"generate_args": {"temperature": 0.25}}

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.chat_path, self.wire.chat())


class TestOpenAIEmbeddingConformance(_OpenAISuite):
    model_type = "openai_embedding"
    model_name = "text-embedding-3-small"
    output = "embedding"
    expected_embedding_count = 2
    expected_usage = Usage(2, 0, 2)
    routes = [("POST", "/v1/embeddings")]
    generation_config = {"generate_args": {"dimensions": 64}}
    generation_on_wire = ("dimensions", 64)

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.embeddings_path, self.wire.embeddings())


class TestOpenAIDallEConformance(_OpenAISuite):
    model_type = "openai_dall_e"
    model_name = "dall-e-3"
    output = "image"
    reports_usage = False
    expected_image_urls = ["https://images.example.test/img-0.png"]
    routes = [("POST", "/v1/images/generations")]
    generation_config = {"generate_args": {"size": "1024x1024"}}
    generation_on_wire = ("size", "1024x1024")

    def script_success(self, server: FakeServer) -> None:
        server.route("POST", self.wire.images_path, self.wire.images())
