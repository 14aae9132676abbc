"""The entry-point module: registers the DashScope model types, imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelwire import hookimpl

if TYPE_CHECKING:
    from modelwire.hookspecs import RegisterModelType


@hookimpl
def register_model_types(register: RegisterModelType) -> None:
    register("dashscope_chat", "modelwire_dashscope.chat:DashScopeChatWrapper")
    register(
        "dashscope_image_synthesis", "modelwire_dashscope.image:DashScopeImageSynthesisWrapper"
    )
    register(
        "dashscope_text_embedding", "modelwire_dashscope.embedding:DashScopeTextEmbeddingWrapper"
    )
