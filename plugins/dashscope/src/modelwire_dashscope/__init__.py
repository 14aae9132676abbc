"""modelwire-dashscope: Alibaba Cloud DashScope (Qwen, Wanx) for modelwire.

Nothing is imported here: modelwire imports ``plugin`` at discovery and a
wrapper module only when a config of its type is loaded; the ``dashscope`` SDK
itself is imported on the first call.
"""

__version__ = "0.1.0"
