"""``conf.dumps``: exact output for each value type, refusals, and a hypothesis round trip."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conf
from tests.unit.conf.typed import typed

UTC = dt.UTC

OUTPUT: list[tuple[str, dict[str, Any], str]] = [
    ("empty", {}, ""),
    ("int", {"a": 1, "b": -(2**63)}, "a = 1\nb = -9223372036854775808\n"),
    ("bools", {"t": True, "f": False}, "t = true\nf = false\n"),
    ("plain_string", {"s": "x"}, 's = "x"\n'),
    ("string_like_number", {"s": "10", "b": "yes", "v": "$x"}, 's = "10"\nb = "yes"\nv = "$x"\n'),
    ("escapes", {"s": 'q"b\\t\tn\nr\r'}, 's = "q\\"b\\\\t\\tn\\nr\\r"\n'),
    ("control_as_hex", {"s": "\x00\x1f\x7f"}, 's = "\\x00\\x1f\\x7f"\n'),
    ("non_ascii_kept", {"s": "é\u0085\u2028😀"}, 's = "é\u0085\u2028😀"\n'),
    ("escaped_byte", {"s": "\udcff"}, 's = "\\xff"\n'),
    ("float", {"f": 1.5, "g": -0.25}, "f = 1.5\ng = -0.25\n"),
    ("float_integral", {"f": 2.0}, "f = 2.0\n"),
    ("float_large", {"f": 1e20}, "f = 100000000000000000000.0\n"),
    ("float_small", {"f": 1.5e-7}, "f = 0.00000015\n"),
    (
        "datetime",
        {"d": dt.datetime(2016, 5, 4, 18, 53, 41, tzinfo=UTC)},
        "d = 2016-05-04T18:53:41Z\n",
    ),
    (
        "datetime_converted_to_utc",
        {"d": dt.datetime(2016, 5, 4, 20, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        "d = 2016-05-04T18:00:00Z\n",
    ),
    ("datetime_small_year", {"d": dt.datetime(5, 1, 2, tzinfo=UTC)}, "d = 0005-01-02T00:00:00Z\n"),
    ("list", {"l": [1, "a"]}, 'l = [\n  1\n  "a"\n]\n'),
    ("tuple", {"l": (1,)}, "l = [\n  1\n]\n"),
    ("empty_containers", {"l": [], "m": {}}, "l = []\nm = {}\n"),
    ("map_block", {"m": {"a": {"b": 1}}}, "m {\n  a {\n    b = 1\n  }\n}\n"),
    ("map_in_list", {"l": [{"a": 1}]}, "l = [\n  {\n    a = 1\n  }\n]\n"),
    ("bare_keys", {"a_b-c9": 1, "_x": 2}, "a_b-c9 = 1\n_x = 2\n"),
    (
        "quoted_keys",
        {"a b": 1, "a.b": 2, "9": 3, "": 4, "it's": 5, 'say "hi"': 6},
        '"a b" = 1\n"a.b" = 2\n"9" = 3\n"" = 4\n"it\'s" = 5\n\'say "hi"\' = 6\n',
    ),
    ("include_key_quoted", {"include": 1, "INCLUDE": 2}, '"include" = 1\n"INCLUDE" = 2\n'),
    ("sized_int_as_int", {"s": conf.SizedInt(1024, "1KiB")}, "s = 1024\n"),
]


@pytest.mark.parametrize(("value", "text"), [pytest.param(v, t, id=i) for i, v, t in OUTPUT])
def test_dumps_output(value: dict[str, Any], text: str) -> None:
    assert conf.dumps(value) == text
    assert typed(conf.loads(text, env={})) == typed(value)


def test_dumps_tuple_reads_back_as_list() -> None:
    assert conf.loads(conf.dumps({"l": (1, (2,))})) == {"l": [1, [2]]}


REFUSED: list[tuple[str, Any, type[Exception], str]] = [
    ("nan", {"f": math.nan}, ValueError, "nan cannot be written"),
    ("inf", {"f": math.inf}, ValueError, "inf cannot be written"),
    ("minus_inf", {"f": -math.inf}, ValueError, "-inf cannot be written"),
    ("int_too_big", {"i": 2**63}, ValueError, "out of the range of a signed 64-bit integer"),
    ("int_too_small", {"i": -(2**63) - 1}, ValueError, "out of the range"),
    ("naive_datetime", {"d": dt.datetime(2020, 1, 1)}, ValueError, "has no time zone"),
    (
        "microseconds",
        {"d": dt.datetime(2020, 1, 1, 0, 0, 0, 5, tzinfo=UTC)},
        ValueError,
        "fraction of a second",
    ),
    ("both_quotes_in_key", {"a'\"b": 1}, ValueError, "holds both ' and \""),
    ("surrogate_not_a_byte", {"s": "\ud800"}, ValueError, "surrogate that is not a byte"),
    ("bytes_that_form_text", {"s": "\udcc3\udca9"}, ValueError, "would read back as text"),
    ("non_str_key", {1: 1}, TypeError, "keys must be strings, got int"),
    ("bytes_value", {"b": b"x"}, TypeError, "cannot write a value of type bytes"),
    ("none_value", {"n": None}, TypeError, "cannot write a value of type NoneType"),
    ("set_value", {"s": {1}}, TypeError, "cannot write a value of type set"),
    ("not_a_mapping", [("a", 1)], TypeError, "dumps() needs a mapping, got list"),
    ("nested_refusal", {"m": {"l": [math.nan]}}, ValueError, "nan cannot be written"),
]


@pytest.mark.parametrize(
    ("value", "error", "message"), [pytest.param(v, e, m, id=i) for i, v, e, m in REFUSED]
)
def test_dumps_refuses(value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        conf.dumps(value)
    assert message in str(caught.value)


# -- hypothesis round trip ----------------------------------------------------

KEYS = st.text(max_size=8).filter(lambda k: not ("'" in k and '"' in k))
ESCAPED_BYTES = st.binary(max_size=6).map(lambda b: b.decode("utf-8", errors="surrogateescape"))
SCALARS = st.one_of(
    st.text(),
    ESCAPED_BYTES,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=16,
)
CONFIGS = st.dictionaries(KEYS, VALUES, max_size=6)


@settings(max_examples=200, deadline=None)
@given(CONFIGS)
def test_round_trip(config: dict[str, Any]) -> None:
    assert typed(conf.loads(conf.dumps(config), env={})) == typed(config)


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trip_keeps_the_sign(value: float) -> None:
    parsed = conf.loads(conf.dumps({"f": value}))["f"]
    assert (parsed, math.copysign(1.0, parsed)) == (value, math.copysign(1.0, value))


@settings(max_examples=100, deadline=None)
@given(CONFIGS)
def test_dumps_is_stable(config: dict[str, Any]) -> None:
    text = conf.dumps(config)
    assert conf.dumps(conf.loads(text, env={})) == text
