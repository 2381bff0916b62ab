"""jetgate's own on-disk store for embedded mode (``EmbeddedLog``)."""

from streams.embedded.log import EmbeddedLog

__all__ = ["EmbeddedLog"]
