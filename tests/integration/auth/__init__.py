"""Integration tests of authentication and authorization across every listener."""
