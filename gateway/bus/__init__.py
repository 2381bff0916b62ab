"""Core publish/subscribe on NATS subjects: in-process or on a real NATS server."""
