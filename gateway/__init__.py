"""jetgate: an MQTT 3.1.1/5.0 and NATS gateway configured in the NATS server's language."""

__version__ = "0.1.0"
