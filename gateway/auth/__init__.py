"""The one user table shared by every listener, permissions and operator-mode JWTs."""
