"""The ``mqtt { consumer_mode }`` option: subscription (default) or session."""

from __future__ import annotations

import pytest

from conf import ConfigErrors, loads
from gateway.options import Options, build_options


def build(text: str) -> Options:
    return build_options(loads(text, "j.conf"))


def test_the_default_is_one_consumer_per_subscription() -> None:
    assert build("").mqtt.consumer_mode == "subscription"
    assert build("mqtt { port: 1883 }").mqtt.consumer_mode == "subscription"


@pytest.mark.parametrize("mode", ["subscription", "session"])
def test_each_mode_is_accepted(mode: str) -> None:
    assert build(f"mqtt {{ consumer_mode: {mode} }}").mqtt.consumer_mode == mode


def test_an_unknown_mode_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigErrors) as info:
        build("mqtt {\n  consumer_mode: per_client\n}")
    assert [str(e) for e in info.value.errors] == [
        'j.conf:2:3: invalid consumer_mode "per_client": must be "subscription" or "session"'
    ]


def test_a_mode_must_be_a_string() -> None:
    with pytest.raises(ConfigErrors) as info:
        build("mqtt { consumer_mode: 1 }")
    assert "consumer_mode" in str(info.value.errors[0])
