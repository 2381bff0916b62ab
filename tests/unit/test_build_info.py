"""gateway.build_info: which build runs, and compiled modules older than their sources."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.build_info import message_path, stale_extensions


def test_an_extension_older_than_its_source_is_stale(tmp_path: Path) -> None:
    package = tmp_path / "gateway" / "mqtt"
    package.mkdir(parents=True)
    source = package / "codec.py"
    extension = package / "codec.cpython-311-x86_64-linux-gnu.so"
    source.write_text("")
    extension.write_bytes(b"")
    os.utime(source, (1000, 1000))
    os.utime(extension, (2000, 2000))
    assert stale_extensions(tmp_path) == []
    os.utime(source, (3000, 3000))
    assert stale_extensions(tmp_path) == [extension]


def test_the_message_path_says_how_it_was_built() -> None:
    assert message_path() in ("compiled", "pure Python")
