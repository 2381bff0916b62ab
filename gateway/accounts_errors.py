"""The error of an account whose space cannot be opened (kept apart to avoid import cycles)."""


class AccountUnavailable(Exception):
    """The account's space cannot be opened (store error, or upstream mode)."""
