"""modelwire-gemini: Google Gemini for modelwire (``gemini_chat``, ``gemini_embedding``).

Nothing is imported here: modelwire imports ``plugin`` at discovery and a wrapper
module only when a config of its type is loaded; ``google.genai`` itself is
imported only when the first call builds the client.
"""

__version__ = "0.1.0"
