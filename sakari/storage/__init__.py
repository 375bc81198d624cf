"""Storage: one store per kind of data, behind the contracts of sakari.storage.base."""

from sakari.storage.registry import open_storage

__all__ = ["open_storage"]
