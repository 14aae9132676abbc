"""``dashscope_multimodal``: Qwen vision models (qwen-vl, qvq) at DashScope's
multimodal-generation endpoint, AgentScope's name for them.

This is the SDK 2.x's ``Client.multimodal.chat`` (what 1.x called
``dashscope.MultiModalConversation``: the same endpoint and wire format, on a client that
carries its own base URL, key and modelwire's transport). Every content is a list of
parts, ``[{"image": url}, {"text": ...}]``; local files and base64 image blocks are
inlined as data URLs, never uploaded to DashScope's storage. Tools, ``tool_choice``,
``structured_model`` and reasoning work as on ``dashscope_chat``.
"""

from __future__ import annotations

from modelwire_dashscope.chat import DashScopeConversationWrapper

__all__ = ["DashScopeMultiModalWrapper"]


class DashScopeMultiModalWrapper(DashScopeConversationWrapper):
    """Chat with a vision model: text and images in, text (and tool calls) out."""

    model_type = "dashscope_multimodal"
    multimodal = True
