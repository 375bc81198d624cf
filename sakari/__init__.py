"""Sakari: a privacy-first XMPP server."""

__version__ = "0.1.0"
