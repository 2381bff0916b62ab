"""The server side of the NATS client protocol."""
