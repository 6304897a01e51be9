"""The LLM gateway: an OpenAI-compatible, Helicone-compatible proxy.

The public entry points are :func:`gateway.app.create_app` and the ``gateway`` console script.
"""

__version__ = "0.1.0"
