"""Command-line flags laid over the configuration file's options."""

from __future__ import annotations

from conf import loads
from gateway.cli import apply_overrides, build_parser
from gateway.options import build_options


def test_flags_override_the_file() -> None:
    options = build_options(loads("port: 4222\nmqtt { port: 1883 }\njetstream { store_dir: /a }\n"))
    args = build_parser().parse_args(
        ["-p", "5222", "-a", "0.0.0.0", "--mqtt-port", "2883", "--store-dir", "/b"]
    )
    changed = apply_overrides(options, args)
    assert changed.port == 5222
    assert changed.host == "0.0.0.0"
    assert changed.mqtt.port == 2883
    assert changed.jetstream.store_dir == "/b"


def test_no_flags_leave_the_file_alone() -> None:
    options = build_options(loads("port: 4333\n"))
    assert apply_overrides(options, build_parser().parse_args([])) == options
