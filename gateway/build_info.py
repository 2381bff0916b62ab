"""How this jetgate was built: its message path compiled by mypyc, or plain Python.

``make`` compiles the modules setup.py lists into extensions beside their
sources; Python imports an extension before a source of the same name, so an
extension older than its source would run old code. ``stale_extensions``
finds those (the test suite refuses to run with any).
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def message_path() -> str:
    """``compiled`` when the MQTT connection module is an extension, else ``pure Python``."""
    from gateway.mqtt import connection

    return "compiled" if connection.__file__.endswith(_SUFFIXES) else "pure Python"


def stale_extensions(root: Path = ROOT) -> list[Path]:
    """Compiled modules under ``root`` whose source changed after they were built."""
    stale = []
    for package in ("gateway", "streams"):
        for extension in (root / package).rglob("*.so"):
            name = extension.name.split(".", 1)[0]
            source = extension.with_name(name + ".py")
            if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
                stale.append(extension)
    return stale
