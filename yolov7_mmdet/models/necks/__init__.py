"""Registered on import; see the package docstring."""
