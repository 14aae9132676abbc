"""modelwire-postapi: the ``post_api`` and ``post_api_chat`` types, for your own HTTP services.

Nothing is imported here: modelwire imports ``plugin`` at discovery, a wrapper
module when a config of its type is loaded, and ``httpx`` only when the first
call builds a client.
"""

__version__ = "0.1.0"
