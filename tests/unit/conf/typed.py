"""Type-strict comparison of parsed values: ``True`` is not ``1`` and ``1.0`` is not ``1``.

Tuples compare as lists (``dumps`` writes them as arrays); datetimes compare as
instants, and an aware one never equals a naive one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def typed(value: Any) -> Any:
    """``value`` with each scalar tagged by its plain type, so ``==`` also compares types."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [typed(item) for item in value]
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, dt.datetime):
        return ("datetime", value, value.tzinfo is not None)
    raise TypeError(f"unexpected parsed type {type(value).__name__}")
