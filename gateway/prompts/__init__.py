"""Managed prompts: the template language, request-time assembly, and the resolved-version
cache (prompts-and-peer-apis.md parts D and E). The store is :mod:`gateway.store._prompts`."""
