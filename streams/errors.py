"""Errors raised by every log backend, under one root.

Each error carries the JetStream API ``err_code`` that a real server returns
for the same condition, so the JetStream backend maps server errors onto these
classes one to one, and callers never see backend-specific exceptions.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BucketNotFound",
    "ConsumerNameInUse",
    "ConsumerNotFound",
    "DuplicateMsgId",
    "KeyExists",
    "KeyNotFound",
    "LogClosed",
    "LogError",
    "LogTimeout",
    "MessageNotFound",
    "MessageTooLarge",
    "NoStreamForSubject",
    "StorageError",
    "StreamLimitReached",
    "StreamNameInUse",
    "StreamNotFound",
    "SubjectsOverlap",
    "WrongLastMsgId",
    "WrongLastSequence",
    "WrongStream",
]


class LogError(Exception):
    """Root of every error raised by a log backend (the ``streams`` interface)."""

    err_code: int = 0
    """The JetStream API error code for this condition (0 when none)."""


class BadRequest(LogError, ValueError):
    """An invalid configuration or argument (JetStream: 400 bad request)."""

    err_code = 10003


class StreamNotFound(LogError):
    err_code = 10059


class StreamNameInUse(LogError):
    """A stream with this name exists with a different configuration."""

    err_code = 10058


class SubjectsOverlap(LogError):
    """A stream's subjects overlap those of another stream."""

    err_code = 10065


class ConsumerNotFound(LogError):
    err_code = 10014


class ConsumerNameInUse(LogError):
    """A consumer with this name exists with a different configuration."""

    err_code = 10148


class MessageNotFound(LogError):
    err_code = 10037


class NoStreamForSubject(LogError):
    """A publish on a subject that no stream captures (JetStream: no responders)."""

    err_code = 503


class WrongLastSequence(LogError):
    """``Nats-Expected-Last-Sequence`` or ``...-Last-Subject-Sequence`` did not hold."""

    err_code = 10071


class WrongLastMsgId(LogError):
    err_code = 10070


class WrongStream(LogError):
    """``Nats-Expected-Stream`` named another stream."""

    err_code = 10060


class DuplicateMsgId(LogError):
    """Reserved: duplicates are reported through ``PubAck.duplicate``, not raised."""

    err_code = 0


class MessageTooLarge(LogError):
    """The message exceeds the stream's ``max_msg_size``."""

    err_code = 10054


class StreamLimitReached(LogError):
    """Discard policy ``new`` refused a message (maximum messages, bytes or per subject)."""

    err_code = 10077


class StorageError(LogError):
    """The store could not read or write its files."""

    err_code = 10049


class LogTimeout(LogError, TimeoutError):
    """The backend did not answer in time."""


class LogClosed(LogError):
    """The log was closed."""


class BucketNotFound(LogError):
    """No key-value bucket of that name."""

    err_code = 10059


class KeyNotFound(LogError, KeyError):
    """The key has no value (never set, deleted or purged)."""


class KeyExists(WrongLastSequence):
    """``create`` found a live value for the key."""
