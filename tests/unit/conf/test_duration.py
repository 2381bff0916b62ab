"""``parse_duration``: Go ``time.ParseDuration`` strings or numbers as seconds (§7.6)."""

from __future__ import annotations

import pytest

import conf

DURATIONS: list[tuple[str, object, float]] = [
    ("seconds", "10s", 10.0),
    ("decimal_hours", "1.5h", 5400.0),
    ("concatenated", "1h30m", 5400.0),
    ("milliseconds", "250ms", 0.25),
    ("microseconds", "1us", 1e-6),
    ("micro_sign", "1µs", 1e-6),
    ("greek_mu", "1μs", 1e-6),
    ("nanoseconds", "1ns", 1e-9),
    ("minutes", "2m", 120.0),
    ("all_units", "1h1m1s1ms1us1ns", 3661.001001001),
    ("negative", "-1.5h", -5400.0),
    ("negative_seconds", "-10s", -10.0),
    ("plus_sign", "+5s", 5.0),
    ("trailing_dot", "1.s", 1.0),
    ("leading_dot", ".5s", 0.5),
    ("zero_without_unit", "0", 0.0),
    ("minus_zero", "-0", 0.0),
    ("numeric_string_is_seconds", "10", 10.0),
    ("numeric_decimal_string", "1.5", 1.5),
    ("surrounding_blanks", "  10s ", 10.0),
    ("int_is_seconds", 10, 10.0),
    ("float_is_seconds", 1.5, 1.5),
    ("negative_int", -3, -3.0),
    ("zero_int", 0, 0.0),
]


@pytest.mark.parametrize(("value", "seconds"), [pytest.param(v, s, id=i) for i, v, s in DURATIONS])
def test_duration(value: object, seconds: float) -> None:
    assert conf.parse_duration(value) == pytest.approx(seconds, rel=1e-12, abs=0)


UNIT_HINT = 'expected a number with a unit (ns, us, ms, s, m, h), such as "10s", "1.5h" or "250ms"'
GARBAGE: list[tuple[str, object, str]] = [
    ("empty", "", "invalid duration ''"),
    ("blank", " ", "invalid duration ' '"),
    ("sign_only", "-", "invalid duration '-'"),
    ("word", "abc", f"invalid duration 'abc': {UNIT_HINT}"),
    ("unknown_unit", "10x", f"invalid duration '10x': {UNIT_HINT}"),
    ("missing_last_unit", "1h30", f"invalid duration '1h30': {UNIT_HINT}"),
    ("unit_only", "s", f"invalid duration 's': {UNIT_HINT}"),
    ("upper_case_unit", "10S", f"invalid duration '10S': {UNIT_HINT}"),
    ("inner_space", "1h 30m", f"invalid duration '1h 30m': {UNIT_HINT}"),
    ("two_dots", "1..5s", f"invalid duration '1..5s': {UNIT_HINT}"),
    ("exponent_with_unit", "1.5e3s", f"invalid duration '1.5e3s': {UNIT_HINT}"),
    ("bool", True, 'expected a duration such as "10s", got True'),
    ("none", None, 'expected a duration such as "10s", got None'),
    ("list", [1], 'expected a duration such as "10s", got [1]'),
]


@pytest.mark.parametrize(("value", "message"), [pytest.param(v, m, id=i) for i, v, m in GARBAGE])
def test_duration_garbage(value: object, message: str) -> None:
    with pytest.raises(conf.DurationError) as caught:
        conf.parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize("value", ["nan", "inf", "1e3", "1_0"])
def test_duration_float_spellings_are_garbage(value: str) -> None:
    with pytest.raises(conf.DurationError):
        conf.parse_duration(value)


def test_duration_error_is_a_value_error() -> None:
    assert issubclass(conf.DurationError, ValueError)


def test_duration_at_reports_the_position() -> None:
    result = conf.loads("ping_interval = 30\n  write_deadline = '10x'")
    with pytest.raises(conf.ConfigError) as caught:
        conf.duration_at(result["write_deadline"], result.pos("write_deadline"))
    assert str(caught.value) == f"<string>:2:3: invalid duration '10x': {UNIT_HINT}"


def test_sized_int_text_reads_as_a_duration() -> None:
    value = conf.loads("ping_interval = 1m")["ping_interval"]
    assert (value, conf.parse_duration(value.text)) == (1_000_000, 60.0)
