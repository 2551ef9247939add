"""IterPref: focal preference learning for code generation from iterative debugging (arXiv 2503.02783)."""

__version__ = "0.1.0"
