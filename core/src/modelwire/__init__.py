"""modelwire: call any model service through one small, dependable interface.

``import modelwire`` is kept cheap: plugins and every SDK load on first need.
What this package exports is also the whole plugin API (``docs/plugins.md``):
plugins import nothing else from the core.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import TYPE_CHECKING, Any

from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ConfigIssue,
    ModelTimeoutError,
    ModelWireError,
    PluginError,
    ProviderError,
    RateLimitError,
    ResponseParseError,
    ScrubbedError,
    ServiceUnavailableError,
    UnknownModelTypeError,
    UnsupportedOperationError,
    body_text,
    error_for_status,
    parse_retry_after,
)
from modelwire.message import Msg, iter_msgs
from modelwire.response import ModelChunk, ModelResponse, Usage

if TYPE_CHECKING:
    from modelwire.blocks import (
        Base64Source,
        ContentBlock,
        ImageBlock,
        ImageSource,
        TextBlock,
        ThinkingBlock,
        ToolResultBlock,
        ToolUseBlock,
        URLSource,
        acollect,
        collect,
        content_of,
        tool_result,
    )
    from modelwire.calls import AGENT_ARGUMENTS, Call, Stream
    from modelwire.clients import SDKClients
    from modelwire.config import ConfigSource
    from modelwire.content import (
        Media,
        blocks_of,
        data_url,
        image_media,
        image_url,
        is_web_url,
        read_media,
        text_of,
        thinking_of,
    )
    from modelwire.hookspecs import hookimpl
    from modelwire.plugins import PluginManager, plugin_manager
    from modelwire.redact import is_secret_key, redacted
    from modelwire.registry import ModelRegistry
    from modelwire.retry import RetryPolicy
    from modelwire.schema import check_value, did_you_mean
    from modelwire.spend import Pricing
    from modelwire.structured import parse_structured, structured_schema
    from modelwire.tools import (
        ToolCallAssembler,
        ToolSpec,
        check_tool_choice,
        function_tool_call,
        function_tool_messages,
        function_tools,
        normalize_tools,
        parse_tool_arguments,
        reasoning_text,
        tool_use_blocks,
    )
    from modelwire.transport import AsyncGuardedTransport, GuardedTransport, guarded_transports
    from modelwire.wrapper import ModelWrapper

__version__ = "0.1.0"

#: Names loaded on first use, by the module that defines them: importing pluggy,
#: inspect and the wrapper machinery waits until something needs them.
_LAZY = {
    "Base64Source": "modelwire.blocks",
    "ContentBlock": "modelwire.blocks",
    "ImageBlock": "modelwire.blocks",
    "ImageSource": "modelwire.blocks",
    "TextBlock": "modelwire.blocks",
    "ThinkingBlock": "modelwire.blocks",
    "ToolCallAssembler": "modelwire.tools",
    "ToolResultBlock": "modelwire.blocks",
    "ToolSpec": "modelwire.tools",
    "ToolUseBlock": "modelwire.blocks",
    "URLSource": "modelwire.blocks",
    "acollect": "modelwire.blocks",
    "collect": "modelwire.blocks",
    "content_of": "modelwire.blocks",
    "check_tool_choice": "modelwire.tools",
    "function_tool_call": "modelwire.tools",
    "function_tool_messages": "modelwire.tools",
    "reasoning_text": "modelwire.tools",
    "function_tools": "modelwire.tools",
    "tool_use_blocks": "modelwire.tools",
    "normalize_tools": "modelwire.tools",
    "parse_structured": "modelwire.structured",
    "parse_tool_arguments": "modelwire.tools",
    "structured_schema": "modelwire.structured",
    "tool_result": "modelwire.blocks",
    "AGENT_ARGUMENTS": "modelwire.calls",
    "Call": "modelwire.calls",
    "Stream": "modelwire.calls",
    "SDKClients": "modelwire.clients",
    "Media": "modelwire.content",
    "blocks_of": "modelwire.content",
    "data_url": "modelwire.content",
    "image_media": "modelwire.content",
    "image_url": "modelwire.content",
    "is_web_url": "modelwire.content",
    "read_media": "modelwire.content",
    "text_of": "modelwire.content",
    "thinking_of": "modelwire.content",
    "hookimpl": "modelwire.hookspecs",
    "PluginManager": "modelwire.plugins",
    "plugin_manager": "modelwire.plugins",
    "is_secret_key": "modelwire.redact",
    "redacted": "modelwire.redact",
    "ModelRegistry": "modelwire.registry",
    "RetryPolicy": "modelwire.retry",
    "check_value": "modelwire.schema",
    "did_you_mean": "modelwire.schema",
    "Pricing": "modelwire.spend",
    "GuardedTransport": "modelwire.transport",
    "AsyncGuardedTransport": "modelwire.transport",
    "guarded_transports": "modelwire.transport",
    "ModelWrapper": "modelwire.wrapper",
}

__all__ = [
    "AGENT_ARGUMENTS",
    "AsyncGuardedTransport",
    "AuthenticationError",
    "BadRequestError",
    "Base64Source",
    "BudgetExceededError",
    "Call",
    "ConfigError",
    "ConfigIssue",
    "ContentBlock",
    "GuardedTransport",
    "ImageBlock",
    "ImageSource",
    "Media",
    "ModelChunk",
    "ModelRegistry",
    "ModelResponse",
    "ModelTimeoutError",
    "ModelWireError",
    "ModelWrapper",
    "Msg",
    "PluginError",
    "PluginManager",
    "Pricing",
    "ProviderError",
    "RateLimitError",
    "ResponseParseError",
    "RetryPolicy",
    "SDKClients",
    "ScrubbedError",
    "ServiceUnavailableError",
    "Stream",
    "TextBlock",
    "ThinkingBlock",
    "ToolCallAssembler",
    "ToolResultBlock",
    "ToolSpec",
    "ToolUseBlock",
    "URLSource",
    "UnknownModelTypeError",
    "UnsupportedOperationError",
    "Usage",
    "acollect",
    "blocks_of",
    "body_text",
    "check_tool_choice",
    "check_value",
    "collect",
    "content_of",
    "data_url",
    "default_registry",
    "did_you_mean",
    "error_for_status",
    "function_tool_call",
    "function_tool_messages",
    "function_tools",
    "guarded_transports",
    "hookimpl",
    "image_media",
    "image_url",
    "init",
    "is_secret_key",
    "is_web_url",
    "iter_msgs",
    "load_model",
    "load_model_by_config_name",
    "normalize_tools",
    "parse_retry_after",
    "parse_structured",
    "parse_tool_arguments",
    "plugin_manager",
    "read_media",
    "read_model_configs",
    "reasoning_text",
    "redacted",
    "structured_schema",
    "text_of",
    "thinking_of",
    "tool_result",
    "tool_use_blocks",
    "usage",
]

_registry: ModelRegistry | None = None
_registry_lock = threading.Lock()


def default_registry() -> ModelRegistry:
    """The registry behind ``init`` and ``load_model``."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                from modelwire.registry import ModelRegistry

                _registry = ModelRegistry()
    return _registry


def init(
    model_configs: ConfigSource | None = None,
    *,
    records: str | os.PathLike[str] | None = None,
    clear_existing: bool = False,
) -> None:
    """Load model configs (dict, list of dicts, or JSON/YAML path), as in the seed.

    ``records`` switches on JSONL invocation records at that path.
    """
    if records is not None:
        from modelwire import records as records_module

        records_module.configure(records)
    if clear_existing:
        default_registry().clear()
    if model_configs is not None:
        default_registry().add(model_configs)


def read_model_configs(model_configs: ConfigSource, clear_existing: bool = False) -> None:
    """The seed's name for ``init(model_configs=...)``."""
    init(model_configs, clear_existing=clear_existing)


def load_model(config_name: str) -> ModelWrapper:
    """The wrapper of a loaded config (one instance per config)."""
    return default_registry().load_model(config_name)


load_model_by_config_name = load_model


def usage() -> dict[str, dict[str, Any]]:
    """Calls, tokens and spend per config of the global registry."""
    return default_registry().usage()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelwire' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
