"""The entry-point module: registers the DashScope model types, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


@hookimpl
def register_model_types(register: Any) -> None:
    register("dashscope_chat", "modelwire_dashscope.chat:DashScopeChatWrapper")
    register("dashscope_multimodal", "modelwire_dashscope.multimodal:DashScopeMultiModalWrapper")
    register(
        "dashscope_image_synthesis", "modelwire_dashscope.image:DashScopeImageSynthesisWrapper"
    )
    register(
        "dashscope_text_embedding", "modelwire_dashscope.embedding:DashScopeTextEmbeddingWrapper"
    )
