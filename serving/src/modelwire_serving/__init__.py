"""Serve a Hugging Face model over HTTP so that modelwire wrappers can call it.

Importing this package is cheap on purpose: torch, transformers and Flask are
imported only when a server actually starts, so `modelwire` plugin discovery
stays fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
