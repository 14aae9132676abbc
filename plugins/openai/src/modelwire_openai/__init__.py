"""modelwire-openai: the ``openai`` (alias ``openai_chat``), ``openai_embedding`` and
``openai_dall_e`` model types, on the official ``openai`` SDK.

Nothing is imported here: modelwire imports ``plugin`` at discovery and a wrapper
module (never the SDK) when a config of its type is loaded; the SDK is imported
when the first call builds a client.
"""

__version__ = "0.1.0"
