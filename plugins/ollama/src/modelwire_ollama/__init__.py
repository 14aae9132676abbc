"""modelwire-ollama: the ``ollama_chat``, ``ollama_embedding`` and ``ollama_generate`` types.

Nothing is imported here: modelwire imports ``plugin`` at discovery, a wrapper
module when a config of its type is loaded, and the ``ollama`` SDK only when the
first call builds a client.
"""

__version__ = "0.1.0"
