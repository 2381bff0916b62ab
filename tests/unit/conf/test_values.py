"""Input -> value table for every construct of the language (nats-conf-format.md §2-§9, §14).

Test ids name the specification's section (``s7_2``) or its §14 row (``t34``),
so that conformance is a grep away. Values are compared type-strictly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import conf
from tests.unit.conf.typed import typed

UTC = dt.UTC

CASES: list[tuple[str, str, dict[str, Any]]] = [
    # §2 document structure and separators between entries
    ("s2_empty", "", {}),
    ("s2_blank_lines", "   \n\n\t\n", {}),
    ("s2_comma_between", "a = 1, b = 2", {"a": 1, "b": 2}),
    ("s2_semicolon_between", "a = 1; b = 2", {"a": 1, "b": 2}),
    ("s2_crlf", "a = 1\r\nb = 2\r\n", {"a": 1, "b": 2}),
    ("s2_lone_cr", "a = 1\rb = 2", {"a": 1, "b": 2}),
    ("s2_json_wrapper", "{ a = 1 }", {"a": 1}),
    ("s2_nested_wrapper", "{{ a = 1 }}", {"a": 1}),
    ("t50_empty_braces", "{}", {}),
    ("t50_stray_brace", "}", {}),
    ("t50_wrapper_ip", "{ listen: 0.0.0.0:4222 }", {"listen": "0.0.0.0:4222"}),
    ("s2_later_key_replaces", "a { x = 1 }\na { y = 2 }", {"a": {"y": 2}}),
    (
        "t49_json",
        '{\n "http_port": 8227,\n "cluster": {"port": 6222, "routes": ["nats://a:1", "nats://b:2"]}\n}',
        {"http_port": 8227, "cluster": {"port": 6222, "routes": ["nats://a:1", "nats://b:2"]}},
    ),
    # §3 comments
    ("s3_only_comments", "# only\n// comments\n", {}),
    ("s3_hash_after_value", "a = 1 # c\nb = 2", {"a": 1, "b": 2}),
    ("s3_slashes_after_value", "a = 1 // c\nb = 2", {"a": 1, "b": 2}),
    ("t27_hash_inside_raw", "a = hello#world", {"a": "hello#world"}),
    ("s3_slashes_inside_raw", "a = a//b", {"a": "a//b"}),
    ("t27_hash_after_int", "a = 1#c", {"a": "1#c"}),
    ("s3_hash_after_bool", "a = true#c", {"a": "true#c"}),
    ("t27_comment_after_blank", "a = hello //c", {"a": "hello"}),
    ("s3_comment_after_quote", "a = 'x'#c", {"a": "x"}),
    # §4 keys and separators
    ("t2_blank_separator", "foo 123", {"foo": 123}),
    ("t2_colon", "foo:123", {"foo": 123}),
    ("t2_tabs_crlf", "foo\t\t123\r\n", {"foo": 123}),
    ("s4_equals_no_space", "foo=1", {"foo": 1}),
    ("s4_separator_on_next_line", "a\n= 1", {"a": 1}),
    ("s4_value_on_next_line_without_separator", "a\n1", {"a": 1}),
    (
        "s4_punctuation_keys",
        "1a = 1\na.b = 2\na-b = 3\na#b = 4",
        {"1a": 1, "a.b": 2, "a-b": 3, "a#b": 4},
    ),
    ("s11_dollar_key", "$a = 1", {"$a": 1}),
    ("t3_single_quoted_key", "'foo' : 123", {"foo": 123}),
    ("t3_double_quoted_key_space", '" foo" : 123', {" foo": 123}),
    ("s4_quoted_key_dot_space", "'a b.c' = 1", {"a b.c": 1}),
    ("s4_quoted_key_empty", '"" = 1', {"": 1}),
    ("s4_quoted_key_other_quote", "'a\"b' = 1", {'a"b': 1}),
    ("s4_quoted_include_is_a_key", '"include" = 5', {"include": 5}),
    ("s4_include_equals_is_a_key", "include=5", {"include": 5}),
    ("s4_case_preserved", "A = 1\na = 2", {"A": 1, "a": 2}),
    ("t40_leading_comma_key", "a {,b=1}", {"a": {",b": 1}}),
    ("t40_double_semicolon_key", "a = 1;;b = 2", {"a": 1, ";b": 2}),
    ("t52_value_on_next_line", "a\nb", {"a": "b"}),
    ("t52_equals_at_eof", "a =", {"a": ""}),
    ("s5_equals_blank_at_eof", "a = ", {"a": ""}),
    # §6.1 single-quoted strings
    (
        "t1_mixed",
        "foo='1'; bar=2.2; baz=true; boo=22",
        {"foo": "1", "bar": 2.2, "baz": True, "boo": 22},
    ),
    ("t21_single_quoted_verbatim", r"foo = 'bar\r\n  \t'", {"foo": r"bar\r\n  \t"}),
    ("s6_1_multi_line", "a = 'multi\nline'", {"a": "multi\nline"}),
    ("s6_1_dollar_literal", "a = '$x'", {"a": "$x"}),
    # §6.2 double-quoted strings
    ("s6_2_escapes", r'a = "x\ty\n\r\"\\"', {"a": 'x\ty\n\r"\\'}),
    ("t22_hex", r'a = "a\x41b"', {"a": "aAb"}),
    ("s6_2_hex_pair", r'a = "\x45\x71"', {"a": "Eq"}),
    ("s6_2_hex_utf8_bytes", r'a = "\xC3\xA9"', {"a": "é"}),
    ("s6_2_hex_lone_byte", r'a = "\xe9"', {"a": "\udce9"}),
    ("s6_2_hex_nul", r'a = "\x00"', {"a": "\x00"}),
    ("s6_2_multi_line", 'a = "multi\nline"', {"a": "multi\nline"}),
    ("s6_2_single_quote_inside", 'a = "it\'s"', {"a": "it's"}),
    ("s11_dollar_in_double_quotes", 'a = "$b"', {"a": "$b"}),
    ("t19_quoted_true", 'tstr "true"', {"tstr": "true"}),
    # §6.3 raw strings and where they end
    ("t25_quote_swallowed", "foo = bar'", {"foo": "bar"}),
    ("t25_double_quote_inside", 'a = foo"bar', {"a": 'foo"bar'}),
    ("t28_host_port", "listen: 127.0.0.1:4222", {"listen": "127.0.0.1:4222"}),
    ("t28_negative_port", "listen: nats.io:-1", {"listen": "nats.io:-1"}),
    ("t28_colon_port", "listen = :80", {"listen": ":80"}),
    ("s6_3_url", "a = nats://u:p@h:4222", {"a": "nats://u:p@h:4222"}),
    ("s6_3_path", "a = /path/to/x", {"a": "/path/to/x"}),
    ("s6_3_ipv6", "a = ::1\nb = fe80::1", {"a": "::1", "b": "fe80::1"}),
    ("s6_3_non_ascii", "a = é", {"a": "é"}),
    ("s6_3_raw_hex_escape", r"a = \x41", {"a": "A"}),
    ("s6_3_raw_tab_escape", r"a = x\ty", {"a": "x\ty"}),
    ("t20_escaped_true", r"foo = \\true", {"foo": "\\true"}),
    ("t20_escaped_variable", r"foo = \\$var", {"foo": "\\$var"}),
    ("t39_brace_ends_raw", "map {\n foo = 3xyz}", {"map": {"foo": "3xyz"}}),
    ("s6_3_semicolon_ends_raw", "a = x;b = y", {"a": "x", "b": "y"}),
    ("s6_3_lone_dollar", "a = $", {"a": "$"}),
    # §6.4 block strings
    ("t42_block", "numbers (\n1234567890\n)\n", {"numbers": "\n1234567890\n"}),
    (
        "s6_4_nested_parens",
        "a = (\n  12(34)56\n  (\n    7890\n  )\n)\n",
        {"a": "\n  12(34)56\n  (\n    7890\n  )\n"},
    ),
    ("s6_4_empty", "a = (\n)\n", {"a": "\n"}),
    ("s6_4_blanks_after_paren", "a = (  \nx\n)\n", {"a": "  \nx\n"}),
    ("s6_4_paren_not_alone", "a = (\nx\n)x\n)\n", {"a": "\nx\n)x\n"}),
    ("s6_4_differs_paren_at_eof", "a = (\nx\n)", {"a": "\nx\n"}),
    ("s6_4_differs_crlf_closes", "a = (\r\nx\r\n)\r\n", {"a": "\r\nx\r\n"}),
    # §7.1 integers
    ("t16_leading_zeros", "a = 007", {"a": 7}),
    ("s7_1_minus_zero", "a = -0", {"a": 0}),
    ("t16_plus_is_string", "a = +1", {"a": "+1"}),
    ("t16_hex_is_string", "a = 0x10", {"a": "0x10"}),
    ("s7_1_underscore_is_string", "a = 1_000", {"a": "1_000"}),
    ("s7_1_int64_max", "a = 9223372036854775807", {"a": 2**63 - 1}),
    ("s7_1_int64_min", "a = -9223372036854775808", {"a": -(2**63)}),
    ("t4_digit_led_string", "foo = 3xyz", {"foo": "3xyz"}),
    ("s7_1_int_then_colons", "a = 1::1", {"a": "1::1"}),
    # §7.2 sizes, every suffix; case-insensitive
    ("t7_k", "k = 8k", {"k": 8000}),
    ("t7_kb", "kb = 4kb", {"kb": 4096}),
    ("t7_ki", "ki = 3ki", {"ki": 3072}),
    ("s7_2_kib_mixed_case", "a = 1KiB", {"a": 1024}),
    ("s7_2_K_upper", "a = 1K", {"a": 1000}),
    ("s7_2_kI", "a = 1kI", {"a": 1024}),
    ("t8_m", "m = 1m", {"m": 10**6}),
    ("s7_2_mb", "a = 2MB", {"a": 2 * 2**20}),
    ("s7_2_mi", "a = 1mi", {"a": 2**20}),
    ("t8_mib", "mib = 64MiB", {"mib": 64 * 2**20}),
    ("s7_2_g", "a = 1g", {"a": 10**9}),
    ("t8_gb", "gb = 22GB", {"gb": 22 * 2**30}),
    ("s7_2_gi", "a = 1gi", {"a": 2**30}),
    ("s7_2_gib", "a = 1GiB", {"a": 2**30}),
    ("s7_2_t", "a = 1t", {"a": 10**12}),
    ("s7_2_tb", "a = 1TB", {"a": 2**40}),
    ("s7_2_ti", "a = 1Ti", {"a": 2**40}),
    ("s7_2_tib", "a = 1tib", {"a": 2**40}),
    ("s7_2_p", "a = 1p", {"a": 10**15}),
    ("s7_2_pb", "a = 1pb", {"a": 2**50}),
    ("s7_2_pi", "a = 1Pi", {"a": 2**50}),
    ("s7_2_pib", "a = 1PiB", {"a": 2**50}),
    ("t9_e", "a = 1e", {"a": 10**18}),
    ("s7_2_E_upper", "a = 1E", {"a": 10**18}),
    ("t9_eb", "a = 1EB", {"a": 2**60}),
    ("s7_2_ei", "a = 1ei", {"a": 2**60}),
    ("s7_2_eib_largest", "a = 7EiB", {"a": 7 * 2**60}),
    ("t6_gb_and_non_ascii", "foo = 4Gb, bar = 5Gø", {"foo": 4 * 2**30, "bar": "5Gø"}),
    ("t11_negative_size", "foo = -1GB ", {"foo": -(2**30)}),
    ("t5_1Ghz", "foo = 1Ghz", {"foo": "1Ghz"}),
    ("t5_2Pie", "foo = 2Pie", {"foo": "2Pie"}),
    ("t5_3Mbs", "foo = 3Mbs,", {"foo": "3Mbs"}),
    (
        "t12_durations_are_strings",
        "a = 10s\nb = 2h\nc = 100ms\nd = 1h30m",
        {"a": "10s", "b": "2h", "c": "100ms", "d": "1h30m"},
    ),
    ("t13_minutes_are_sizes", "a = 1m\nb = 30m", {"a": 10**6, "b": 30 * 10**6}),
    # §7.3 floats
    ("t1_float", "a = 2.2", {"a": 2.2}),
    ("s7_3_negative", "a = -1.5", {"a": -1.5}),
    ("s7_3_leading_zeros", "a = 00.5", {"a": 0.5}),
    # §7.4 IP-like
    ("s7_4_ipv4", "a = 127.0.0.1", {"a": "127.0.0.1"}),
    ("s7_4_three_parts", "a = 1.2.3", {"a": "1.2.3"}),
    ("s7_4_with_port", "a = 1.2.3.4:4222", {"a": "1.2.3.4:4222"}),
    ("s7_4_range", "a = 10.0.0.1-5", {"a": "10.0.0.1-5"}),
    ("s7_4_trailing_dot", "a = 1.2.", {"a": "1.2."}),
    # §7.5 datetimes
    (
        "t30_datetime",
        "now = 2016-05-04T18:53:41Z",
        {"now": dt.datetime(2016, 5, 4, 18, 53, 41, tzinfo=UTC)},
    ),
    (
        "s7_5_last_second",
        "a = 9999-12-31T23:59:59Z",
        {"a": dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)},
    ),
    # §6.3 booleans in all spellings and cases
    ("t18_TRUE", "foo = TRUE", {"foo": True}),
    ("t18_yes", "foo = yes", {"foo": True}),
    ("t18_on", "foo = on", {"foo": True}),
    ("s6_3_Yes_oN", "a = Yes\nb = oN", {"a": True, "b": True}),
    ("t18_nO", "a = nO", {"a": False}),
    (
        "s6_3_false_spellings",
        "a = false\nb = False\nc = OFF\nd = no",
        {"a": False, "b": False, "c": False, "d": False},
    ),
    ("t19_truex", "a = truex", {"a": "truex"}),
    ("t19_t", "a = t", {"a": "t"}),
    # §8 arrays
    ("t32_commas", "foo = [1, 2, 3, 'bar']", {"foo": [1, 2, 3, "bar"]}),
    ("t32_no_spaces", "foo = [1,2,3,'bar']", {"foo": [1, 2, 3, "bar"]}),
    (
        "t33_newlines_comments",
        "foo = [\n 1 // c\n 2\n 3\n 'bar'\n \"bar\"\n]",
        {"foo": [1, 2, 3, "bar", "bar"]},
    ),
    ("s8_hash_comment", "a = [1 # c\n 2]", {"a": [1, 2]}),
    ("s8_comment_after_comma", "a = [1, # c\n]", {"a": [1]}),
    ("t34_differs_int_before_bracket", "a = [1, 2, 3]", {"a": [1, 2, 3]}),
    ("t34_space_before_bracket", "a = [1, 2, 3 ]", {"a": [1, 2, 3]}),
    ("t35_differs_size_before_bracket", "a = [1k]", {"a": [1000]}),
    ("t35_trailing_comma", "a = [1,2,]", {"a": [1, 2]}),
    ("s8_empty", "a = []\nb = [\n]", {"a": [], "b": []}),
    (
        "s8_scalars_before_bracket",
        "a = [1.5]\nb = [-1]\nc = [true]\nd = [abc]",
        {"a": [1.5], "b": [-1], "c": [True], "d": ["abc"]},
    ),
    ("s8_nested", "a = [[1,2],[3], []]", {"a": [[1, 2], [3], []]}),
    ("s8_maps_commas", "a = [ {x:1},{y:2} ]", {"a": [{"x": 1}, {"y": 2}]}),
    (
        "s8_maps_newline",
        'a = [ {abc: 123}\n {xyz: "word"} ]',
        {"a": [{"abc": 123}, {"xyz": "word"}]},
    ),
    (
        "t36_users",
        "users = [\n {user: alice, password: foo}\n {user: bob, password: bar}\n]",
        {"users": [{"user": "alice", "password": "foo"}, {"user": "bob", "password": "bar"}]},
    ),
    ("s8_include_word_is_string", "a = [1, include]", {"a": [1, "include"]}),
    # §9 maps
    (
        "t37_inline",
        "foo = {ip='127.0.0.1', port = 4242}",
        {"foo": {"ip": "127.0.0.1", "port": 4242}},
    ),
    (
        "t38_quoted_key",
        "foo = {'bar-1.2.3' = { port:4242 }}",
        {"foo": {"bar-1.2.3": {"port": 4242}}},
    ),
    ("s9_no_separator", "m {\n a = 1\n}\n", {"m": {"a": 1}}),
    ("s9_colon", "m: {a: {b: {c: 1}}}", {"m": {"a": {"b": {"c": 1}}}}),
    ("s9_trailing_comma", "m { a = 1, b = 2, }", {"m": {"a": 1, "b": 2}}),
    ("s9_semicolons", "m { a = 1; b = 2 }", {"m": {"a": 1, "b": 2}}),
    ("s9_empty", "m {}", {"m": {}}),
    # §11 bcrypt hashes are literal
    ("t47_bcrypt_2a", "password: $2a$11$ooo", {"password": "$2a$11$ooo"}),
    ("s11_differs_bcrypt_2b", "a = $2b$11$ooo", {"a": "$2b$11$ooo"}),
    ("s11_differs_bcrypt_2y", "a = $2y$x", {"a": "$2y$x"}),
    # Unicode white space: keys end at any space, values only at blanks (as in the lexer)
    ("s4_nbsp_ends_key", "a\u00a0= 1", {"a": 1}),
    ("s7_1_nbsp_after_int_is_string", "a = 1\u00a0", {"a": "1\u00a0"}),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_value(text: str, expected: dict[str, Any]) -> None:
    assert typed(conf.loads(text, env={})) == typed(expected)


def test_case_ids_are_unique() -> None:
    ids = [case_id for case_id, _, _ in CASES]
    assert len(ids) == len(set(ids))


def test_sized_int_keeps_text() -> None:
    result = conf.loads("a = 64MiB\nb = -1GB\nc = 8k\nd = 1m\ne = 7")
    assert [(type(result[k]).__name__, getattr(result[k], "text", None)) for k in "abcde"] == [
        ("SizedInt", "64MiB"),
        ("SizedInt", "-1GB"),
        ("SizedInt", "8k"),
        ("SizedInt", "1m"),
        ("int", None),
    ]
    assert result["a"] == 64 * 2**20


def test_sized_int_in_array_keeps_text() -> None:
    result = conf.loads("a = [1k, 2KiB]")
    assert [x.text for x in result["a"]] == ["1k", "2KiB"]


def test_results_are_dicts_and_lists() -> None:
    result = conf.loads("m { l = [1] }")
    assert isinstance(result, conf.ConfMap) and isinstance(result, dict)
    assert isinstance(result["m"], conf.ConfMap)
    assert isinstance(result["m"]["l"], conf.ConfList) and isinstance(result["m"]["l"], list)
