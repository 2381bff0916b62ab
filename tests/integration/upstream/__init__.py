"""Upstream-mode integration tests: gateways fronting real nats-server processes."""
