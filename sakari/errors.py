"""Errors of the server process itself (as opposed to protocol errors, in sakari.xml.errors)."""


class StartError(Exception):
    """The server cannot start (a port in use, an unreadable certificate…); the message says why."""
