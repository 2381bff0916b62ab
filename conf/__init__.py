"""The NATS server's configuration language: text -> plain Python values.

``load(path)`` and ``loads(text, path=None)`` return a ``ConfMap`` (a ``dict``
that also knows where each key was written). Every mistake raises
``ConfigError`` whose ``str()`` is ``FILE:LINE:COL: message``. Durations are
left as strings (or numbers) for ``parse_duration`` to turn into seconds.
``dumps(mapping)`` writes plain values back as
configuration text. This package knows nothing of the gateway.
"""

from conf.duration import DurationError, duration_at, parse_duration
from conf.errors import ConfigError, ConfigErrors
from conf.parser import load, loads
from conf.values import ConfList, ConfMap, Position, SizedInt
from conf.writer import dumps

__all__ = [
    "ConfList",
    "ConfMap",
    "ConfigError",
    "ConfigErrors",
    "DurationError",
    "Position",
    "SizedInt",
    "dumps",
    "duration_at",
    "load",
    "loads",
    "parse_duration",
]
