"""jetgate's own on-disk store for embedded mode."""
