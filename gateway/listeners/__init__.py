"""Accepting TCP, TLS and WebSocket connections and handing byte streams to sessions."""
