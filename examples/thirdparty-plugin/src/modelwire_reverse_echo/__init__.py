"""modelwire-reverse-echo: an example third-party modelwire plugin.

Nothing is imported here: modelwire imports ``plugin`` at discovery and the
wrapper module only when a ``reverse_echo`` config is used.
"""

__version__ = "0.1.0"
