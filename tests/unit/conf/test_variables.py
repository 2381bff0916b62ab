"""Variables (nats-conf-format.md §11): scoping, copies, and environment variables via ``env=``."""

from __future__ import annotations

from typing import Any

import pytest

import conf
from tests.unit.conf.typed import typed

SCOPING: list[tuple[str, str, dict[str, Any]]] = [
    (
        "t44_inner_shadows_outer",
        "index = 22\nnest { index = 11; foo = $index }\nbar = $index",
        {"index": 22, "nest": {"index": 11, "foo": 11}, "bar": 22},
    ),
    ("s11_redefinition_not_retroactive", "a=1; b=$a; a=2; c=$a", {"a": 2, "b": 1, "c": 2}),
    ("s11_outer_seen_from_nested", "x = 1\nm { n { y = $x } }", {"x": 1, "m": {"n": {"y": 1}}}),
    (
        "s11_map_in_array_sees_enclosing_map",
        "m { x = 1; arr = [ { z = $x } ] }",
        {"m": {"x": 1, "arr": [{"z": 1}]}},
    ),
    ("s11_array_element", "x = 2\na = [$x, 3]", {"x": 2, "a": [2, 3]}),
    ("s11_map_value", "p { x = 1 }\nq = $p", {"p": {"x": 1}, "q": {"x": 1}}),
    ("s11_list_value", "a = [1, [2]]\nb = $a", {"a": [1, [2]], "b": [1, [2]]}),
    (
        "s11_variable_keeps_type",
        "t = yes\nf = 1.5\nu = $t\ng = $f",
        {"t": True, "f": 1.5, "u": True, "g": 1.5},
    ),
    ("s11_block_value_then_end", "a = 5\nm { b = $a }", {"a": 5, "m": {"b": 5}}),
    ("s11_environment_shadowed_by_key", "N = 5\na = $N", {"N": 5, "a": 5}),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in SCOPING])
def test_scoping(text: str, expected: dict[str, Any]) -> None:
    assert typed(conf.loads(text, env={"N": "22"})) == typed(expected)


def test_map_from_variable_is_a_copy() -> None:
    result = conf.loads("p { x = 1, l = [1] }\nq = $p")
    result["q"]["x"] = 2
    result["q"]["l"].append(2)
    assert result["p"] == {"x": 1, "l": [1]}
    assert result["q"] is not result["p"]


def test_permissions_map_reused_for_several_users() -> None:
    text = (
        "mqtt_perms = {\n"
        "  publish = { allow = ['sensors.>'] }\n"
        "  subscribe = { allow = ['cmd.>'] }\n"
        "}\n"
        "authorization {\n"
        "  users = [\n"
        "    { user: dev1, password: a, permissions: $mqtt_perms }\n"
        "    { user: dev2, password: b, permissions: $mqtt_perms }\n"
        "  ]\n"
        "}\n"
    )
    result = conf.loads(text)
    users = result["authorization"]["users"]
    expected = {"publish": {"allow": ["sensors.>"]}, "subscribe": {"allow": ["cmd.>"]}}
    assert [u["permissions"] for u in users] == [expected, expected]
    assert users[0]["permissions"] is not users[1]["permissions"]
    assert users[0]["permissions"]["publish"] is not result["mqtt_perms"]["publish"]


def test_used_as_variable_is_recorded() -> None:
    result = conf.loads("ALICE_PASS = secret\nuser = { password = $ALICE_PASS }\nother = 1")
    assert result.used_as_variable == {"ALICE_PASS"}


ENV = {
    "N": "22",
    "S": "2MB",
    "B": "yes",
    "F": "1.5",
    "X": "xyz",
    "X3": "3xyz",
    "G": "3Gyz",
    "Q": "'3 x'",
    "M": "{x: 1}",
    "L": "[1, 2, foo ]",
    "E": "",
    "O": "$N",
    "OO": "$O",
    "ML": "1\nb = 2",
    "T": "2016-05-04T18:53:41Z",
}

ENVIRONMENT: list[tuple[str, str, Any]] = [
    ("t46_int", "N", 22),
    ("s11_size", "S", 2 * 2**20),
    ("s11_bool", "B", True),
    ("s11_float", "F", 1.5),
    ("t46_string", "X", "xyz"),
    ("t46_digit_led_string", "X3", "3xyz"),
    ("t46_size_led_string", "G", "3Gyz"),
    ("s11_quoted", "Q", "3 x"),
    ("s11_map", "M", {"x": 1}),
    ("s11_list", "L", [1, 2, "foo"]),
    ("s11_empty", "E", ""),
    ("s11_nested_reference", "O", 22),
    ("s11_nested_twice", "OO", 22),
    ("s11_only_first_line", "ML", 1),
]


@pytest.mark.parametrize(
    ("name", "expected"), [pytest.param(n, e, id=i) for i, n, e in ENVIRONMENT]
)
def test_environment_value(name: str, expected: Any) -> None:
    assert typed(conf.loads(f"a = ${name}", env=ENV)["a"]) == typed(expected)


def test_environment_datetime() -> None:
    value = conf.loads("a = $T", env=ENV)["a"]
    assert value.isoformat() == "2016-05-04T18:53:41+00:00"


ENV_ERRORS: list[tuple[str, str, dict[str, str], str]] = [
    (
        "s11_unparsable",
        "x = 1\nport = $HW",
        {"HW": "hello world"},
        "<string>:2:8: variable reference for 'HW' could not be parsed: expected a value to end "
        "with a new line, ',', ';', '}' or a comment, but got 'w'",
    ),
    (
        "s11_bad_number",
        "a = $BAD",
        {"BAD": "1.5s"},
        "<string>:1:5: variable reference for 'BAD' could not be parsed: invalid number '1.5s': "
        'quote it if it is a string or a duration (for example "1.5s")',
    ),
    (
        "s11_cycle_of_two",
        "a = $C1",
        {"C1": "$C2", "C2": "$C1"},
        "<string>:1:5: variable reference cycle for 'C1'",
    ),
    (
        "s11_self_cycle",
        "m {\n  a = $SELF\n}",
        {"SELF": "$SELF"},
        "<string>:2:7: variable reference cycle for 'SELF'",
    ),
    (
        "s11_nested_missing",
        "a = $U",
        {"U": "$nope"},
        "<string>:1:5: variable reference for 'U' could not be parsed: variable reference for "
        "'nope' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "s11_environment_cannot_see_document",
        "p = 1\na = $U",
        {"U": "$p"},
        "<string>:2:5: variable reference for 'U' could not be parsed: variable reference for "
        "'p' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "s11_env_not_consulted_when_absent",
        "a = $HOME",
        {},
        "<string>:1:5: variable reference for 'HOME' can not be found (not set earlier in an "
        "enclosing block, nor in the environment)",
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "message"), [pytest.param(t, e, m, id=i) for i, t, e, m in ENV_ERRORS]
)
def test_environment_error(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads(text, env=env)
    assert str(caught.value) == message


def test_default_environment_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JETGATE_CONF_TEST_PORT", "4222")
    assert conf.loads("port = $JETGATE_CONF_TEST_PORT") == {"port": 4222}
