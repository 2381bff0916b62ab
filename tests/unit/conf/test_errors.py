"""Errors with their exact ``FILE:LINE:COL: message`` (nats-conf-format.md §4-§12, §14).

Lines and columns are 1-based and point at the offending character (or at the
start of the token that is wrong as a whole). Ids starting with ``differs``
or containing ``_differs_`` are the deliberate differences from the NATS
server listed in ``conf/parser.py``'s docstring.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import conf

ERRORS: list[tuple[str, str, str]] = [
    ("s10_path_is_brace", "m { include }", "<string>:1:13: expected an include path but found '}'"),
    ("s10_path_is_semicolon", "include ;", "<string>:1:9: expected an include path but found ';'"),
    (
        "lone_surrogate_in_raw_string",
        "a = x\ud800",
        "<string>:1:6: invalid character '\\ud800': a lone surrogate is not text",
    ),
    (
        "lone_surrogate_in_double_quotes",
        'a = "x\ud800"',
        "<string>:1:7: invalid character '\\ud800': a lone surrogate is not text",
    ),
    (
        "s2_two_values_on_a_line",
        "a = 1 b = 2",
        "<string>:1:7: expected a value to end with a new line, ',', ';', '}' or a comment, but got 'b'",
    ),
    (
        "s3_single_slash_after_value",
        "a = 1 /x",
        "<string>:1:7: expected a value to end with a new line, ',', ';', '}' or a comment, but got '/'",
    ),
    (
        "s4_value_must_start_on_separator_line",
        "a =\n1",
        "<string>:1:4: expected a value but found a new line",
    ),
    (
        "s4_second_separator",
        "a : = 1",
        "<string>:1:7: expected a value to end with a new line, ',', ';', '}' or a comment, but got '1'",
    ),
    ("t51_dangling_key", "a", "<string>:1:2: expected a value for key 'a'"),
    ("t51_dangling_key_newline", "aaaaa\n", "<string>:1:6: expected a value for key 'aaaaa'"),
    ("s4_commas_in_dangling_key", "a,a,a", "<string>:1:6: expected a value for key 'a,a,a'"),
    ("s10_include_alone", "include", "<string>:1:8: expected a value for key 'include'"),
    (
        "s10_include_without_path",
        "INCLUDE\t",
        "<string>:1:9: expected an include path but found the end of the line",
    ),
    (
        "s4_leading_equals",
        "= 1",
        "<string>:1:1: unexpected key separator '=': expected a key before it",
    ),
    (
        "s4_leading_colon",
        ": 1",
        "<string>:1:1: unexpected key separator ':': expected a key before it",
    ),
    (
        "s9_leading_colon_in_map",
        "m {\n  : 1\n}",
        "<string>:2:3: unexpected key separator ':': expected a key before it",
    ),
    ("s9_stray_bracket_top", "]", "<string>:1:1: unexpected ']': expected a key"),
    ("s9_stray_bracket_in_map", "m { ] }", "<string>:1:5: unexpected ']': expected a key"),
    (
        "s9_eof_in_map",
        "m { a = 1",
        "<string>:1:10: unexpected end of file in the map opened at line 1: expected '}'",
    ),
    (
        "s9_eof_in_map_multiline",
        "m {\n a = 1\n",
        "<string>:3:1: unexpected end of file in the map opened at line 1: expected '}'",
    ),
    (
        "t41_differs_key_without_value",
        "m { a }",
        "<string>:1:7: expected a value for key 'a', got '}'",
    ),
    (
        "t41_differs_key_with_separator_no_value",
        "m { a = }",
        "<string>:1:9: expected a value for key 'a', got '}'",
    ),
    (
        "s9_two_values_in_map",
        "m {\n  a = 1 b\n}",
        "<string>:2:9: expected a map entry to end with a new line, ',', ';', '}' or a comment, but got 'b'",
    ),
    (
        "s6_1_no_doubled_quote_key",
        "'it''s' = 1",
        "<string>:1:9: expected a value to end with a new line, ',', ';', '}' or a comment, but got '='",
    ),
    (
        "s6_1_no_doubled_quote",
        "a = 'it''s'",
        "<string>:1:9: expected a value to end with a new line, ',', ';', '}' or a comment, but got \"'\"",
    ),
    (
        "t23_invalid_escape_y",
        'a = "\\y"',
        "<string>:1:6: invalid escape character 'y'; only \\xXX, \\t, \\n, \\r, \\\" and \\\\ are allowed",
    ),
    (
        "t23_invalid_escape_u",
        'a = "\\u0041"',
        "<string>:1:6: invalid escape character 'u'; only \\xXX, \\t, \\n, \\r, \\\" and \\\\ are allowed",
    ),
    (
        "s6_2_no_escaped_single_quote",
        'a = "\\\'"',
        '<string>:1:6: invalid escape character "\'"; only \\xXX, \\t, \\n, \\r, \\" and \\\\ are allowed',
    ),
    (
        "t24_bad_hex",
        'foo = "[\\xe]"',
        "<string>:1:9: expected two hexadecimal digits after '\\x', but got 'e]'",
    ),
    (
        "s6_2_hex_at_eof",
        'a = "ab\\x4',
        "<string>:1:8: expected two hexadecimal digits after '\\x', but hit end of line",
    ),
    (
        "s6_2_hex_at_newline",
        'a = "\\x4\n1"',
        "<string>:1:6: expected two hexadecimal digits after '\\x', but hit end of line",
    ),
    (
        "s6_2_hex_not_hex",
        'a = "\\xzz"',
        "<string>:1:6: expected two hexadecimal digits after '\\x', but got 'zz'",
    ),
    (
        "s6_3_quote_ends_raw",
        "a = foo'bar",
        "<string>:1:9: expected a value to end with a new line, ',', ';', '}' or a comment, but got 'b'",
    ),
    (
        "s6_3_text_after_double_quoted",
        'a = "x"y',
        "<string>:1:8: expected a value to end with a new line, ',', ';', '}' or a comment, but got 'y'",
    ),
    (
        "s6_3_two_single_quoted",
        "a = 'x' 'y'",
        "<string>:1:9: expected a value to end with a new line, ',', ';', '}' or a comment, but got \"'\"",
    ),
    (
        "t43_paren_then_blanks",
        "a = (\nx\n)  \n",
        "<string>:1:5: unterminated block string: expected ')' alone at the start of a line",
    ),
    (
        "s6_4_one_line",
        "a = (x)",
        "<string>:1:5: unterminated block string: expected ')' alone at the start of a line",
    ),
    (
        "s6_4_indented_paren",
        "a = (\nx\n  )\n",
        "<string>:1:5: unterminated block string: expected ')' alone at the start of a line",
    ),
    (
        "s6_4_paren_then_comment",
        "a = (\nx\n) # c\n",
        "<string>:1:5: unterminated block string: expected ')' alone at the start of a line",
    ),
    (
        "s7_3_no_digit_after_dot",
        "a = 1.",
        "<string>:1:5: invalid number '1.': quote it if it is a string or a duration (for example \"1.\")",
    ),
    ("t15_leading_dot", "foo = .2", "<string>:1:7: floats must start with a digit"),
    (
        "t14_exponent",
        "a = 1.0e5",
        "<string>:1:5: invalid number '1.0e5': quote it if it is a string or a duration (for example \"1.0e5\")",
    ),
    (
        "s7_3_size_after_float",
        "a = 1.5k",
        "<string>:1:5: invalid number '1.5k': quote it if it is a string or a duration (for example \"1.5k\")",
    ),
    (
        "t14_float_duration",
        "x = 1.5s",
        "<string>:1:5: invalid number '1.5s': quote it if it is a string or a duration (for example \"1.5s\")",
    ),
    (
        "s7_3_two_dots_then_letter",
        "a = 1.5.x",
        "<string>:1:5: invalid number '1.5.x': quote it if it is a string or a duration (for example \"1.5.x\")",
    ),
    (
        "t29_cidr",
        "a = 10.0.0.1/24",
        "<string>:1:5: invalid number '10.0.0.1/24': quote it if it is a string or a duration (for example \"10.0.0.1/24\")",
    ),
    (
        "s7_4_ip_then_letter",
        "a = 1.2.3:x",
        "<string>:1:5: invalid number '1.2.3:x': quote it if it is a string or a duration (for example \"1.2.3:x\")",
    ),
    (
        "t31_date_without_time",
        "a = 2016-05-04",
        "<string>:1:5: invalid date-time '2016-05-04': expected full Zulu form YYYY-MM-DDTHH:MM:SSZ",
    ),
    (
        "t31_dash_in_number",
        "a = 12-3",
        "<string>:1:5: invalid value '12-3': dates must be in full Zulu form (YYYY-MM-DDTHH:MM:SSZ); quote it if it is a string",
    ),
    (
        "s7_5_five_digit_year",
        "a = 20160-05-04",
        "<string>:1:5: invalid value '20160-05-04': dates must be in full Zulu form (YYYY-MM-DDTHH:MM:SSZ); quote it if it is a string",
    ),
    (
        "s7_5_month_13",
        "a = 2016-13-04T00:00:00Z",
        "<string>:1:5: invalid date-time '2016-13-04T00:00:00Z': month must be in 1..12",
    ),
    (
        "s7_5_year_0",
        "a = 0000-01-01T00:00:00Z",
        "<string>:1:5: invalid date-time '0000-01-01T00:00:00Z': year 0 is out of range",
    ),
    (
        "s7_5_offset",
        "a = 2016-05-04T18:53:41+01:00",
        "<string>:1:5: invalid date-time '2016-05-04T18:53:41+01:00': expected full Zulu form YYYY-MM-DDTHH:MM:SSZ",
    ),
    (
        "t17_int64_overflow",
        "a = 9223372036854775808",
        "<string>:1:5: integer '9223372036854775808' is out of the range of a signed 64-bit integer",
    ),
    (
        "s7_1_int64_underflow",
        "a = -9223372036854775809",
        "<string>:1:5: integer '-9223372036854775809' is out of the range of a signed 64-bit integer",
    ),
    (
        "t9_differs_size_overflow",
        "a = 8EB",
        "<string>:1:5: integer '8EB' is out of the range of a signed 64-bit integer",
    ),
    (
        "t10_differs_unknown_suffix",
        "a = 1kbb",
        "<string>:1:5: unknown size suffix 'kbb' in '1kbb'; expected one of k, kb, ki, kib, m, mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, p, pb, pi, pib, e, eb, ei, eib",
    ),
    (
        "s7_2_differs_unknown_suffix_kbi",
        "a = 1kbi",
        "<string>:1:5: unknown size suffix 'kbi' in '1kbi'; expected one of k, kb, ki, kib, m, mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, p, pb, pi, pib, e, eb, ei, eib",
    ),
    (
        "s7_2_differs_unknown_suffix_in_map",
        "m { a = 1kbb }",
        "<string>:1:9: unknown size suffix 'kbb' in '1kbb'; expected one of k, kb, ki, kib, m, mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, p, pb, pi, pib, e, eb, ei, eib",
    ),
    (
        "s7_2_digit_after_suffix",
        "a = 1k2",
        "<string>:1:5: invalid number '1k2': quote it if it is a string or a duration (for example \"1k2\")",
    ),
    (
        "t14_minutes_seconds",
        "a = 1m30s",
        "<string>:1:5: invalid number '1m30s': quote it if it is a string or a duration (for example \"1m30s\")",
    ),
    (
        "s7_2_exponent_is_not_float",
        "a = 1e10",
        "<string>:1:5: invalid number '1e10': quote it if it is a string or a duration (for example \"1e10\")",
    ),
    (
        "s7_1_negative_then_letter",
        "a = -1x",
        "<string>:1:5: invalid number '-1x': quote it if it is a string",
    ),
    ("s5_minus_not_digit", "a = -x", "<string>:1:6: expected a digit after '-' but got 'x'"),
    ("s5_minus_at_eof", "a = -", "<string>:1:6: expected a digit after '-' but got end of file"),
    (
        "t26_two_words",
        "a = hello world",
        "<string>:1:11: expected a value to end with a new line, ',', ';', '}' or a comment, but got 'w'",
    ),
    (
        "s8_blank_separated_ints",
        "a = [1 2 3]",
        "<string>:1:8: expected ',' or ']' after an array element, but got '2'",
    ),
    (
        "s8_blank_separated_words",
        "a = [a b c]",
        "<string>:1:8: expected ',' or ']' after an array element, but got 'b'",
    ),
    ("t35_leading_comma", "a = [,1]", "<string>:1:6: unexpected ',' in array: expected a value"),
    ("s8_double_comma", "a = [1,,2]", "<string>:1:8: unexpected ',' in array: expected a value"),
    (
        "s8_semicolon_not_separator",
        "a = [1;2]",
        "<string>:1:7: expected ',' or ']' after an array element, but got ';'",
    ),
    (
        "s8_no_include_in_array",
        "a = [include x]",
        "<string>:1:14: expected ',' or ']' after an array element, but got 'x'",
    ),
    (
        "s8_eof_in_array",
        "a = [1, 2",
        "<string>:1:10: unexpected end of file in the array opened at line 1: expected ']'",
    ),
    (
        "s8_eof_in_array_multiline",
        "a = [\n1,\n",
        "<string>:3:1: unexpected end of file in the array opened at line 1: expected ']'",
    ),
    (
        "s8_text_after_array",
        "a = [1]x",
        "<string>:1:8: expected a value to end with a new line, ',', ';', '}' or a comment, but got 'x'",
    ),
    (
        "s7_1_bracket_after_top_level_int",
        "a = 3]",
        "<string>:1:6: expected a value to end with a new line, ',', ';', '}' or a comment, but got ']'",
    ),
    (
        "s11_not_found",
        "a = $x",
        "<string>:1:5: variable reference for 'x' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "t45_not_found",
        "foo=$index",
        "<string>:1:5: variable reference for 'index' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "s11_braces_hint",
        "a = ${b}",
        "<string>:1:5: variable reference for '{b' can not be found (not set earlier in an enclosing block, nor in the environment) (variables are written $name, not ${name})",
    ),
    (
        "s11_sibling_block_invisible",
        "c { b = 2 }; a = $b",
        "<string>:1:18: variable reference for 'b' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "s11_use_before_definition",
        "a = $b\nb = 1",
        "<string>:1:5: variable reference for 'b' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "s11_name_runs_to_token_end",
        "a = $a$a",
        "<string>:1:5: variable reference for 'a$a' can not be found (not set earlier in an enclosing block, nor in the environment)",
    ),
    (
        "s6_2_unterminated",
        'a = "unterminated',
        '<string>:1:5: unterminated string: expected a closing "',
    ),
    (
        "s6_1_unterminated",
        "a = 'unterminated",
        "<string>:1:5: unterminated string: expected a closing '",
    ),
    (
        "t55_unterminated_on_line_1",
        'listen: "localhost:4242\n\nhttp: localhost:8222\n',
        '<string>:1:9: unterminated string: expected a closing "',
    ),
    (
        "s4_unterminated_single_quoted_key",
        "'key = 1",
        "<string>:1:1: unterminated quoted key: expected a closing '",
    ),
    (
        "s4_unterminated_double_quoted_key",
        '"key = 1',
        '<string>:1:1: unterminated quoted key: expected a closing "',
    ),
    (
        "s10_unterminated_single_quoted_path",
        "include 'x",
        "<string>:1:9: unterminated include path: expected a closing '",
    ),
    (
        "s10_unterminated_double_quoted_path",
        'include "x',
        '<string>:1:9: unterminated include path: expected a closing "',
    ),
    ("s10_path_is_array", "include [x]", "<string>:1:9: expected an include path but found '['"),
    ("s10_path_is_map", "include {x}", "<string>:1:9: expected an include path but found '{'"),
    ("s10_path_is_block", "include (x)", "<string>:1:9: expected an include path but found '('"),
    ("s10_path_is_number", "include 5", "<string>:1:9: expected an include path but found '5'"),
    ("s10_path_is_negative", "include -x", "<string>:1:9: expected an include path but found '-'"),
    (
        "s10_path_is_escape",
        "include \\x",
        "<string>:1:9: expected an include path but found '\\\\'",
    ),
    (
        "s10_path_is_newline",
        "include\t\n",
        "<string>:1:9: expected an include path but found the end of the line",
    ),
    (
        "s8_error_position_multiline",
        "a = 1\nb = 2\n  c = [\n    1\n    2 3\n  ]",
        "<string>:5:7: expected ',' or ']' after an array element, but got '3'",
    ),
    (
        "differs_nesting_limit",
        "a = " + "[" * 101 + "]" * 101,
        "<string>:1:105: maps and arrays are nested more than 100 deep",
    ),
]


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=i) for i, t, m in ERRORS])
def test_error(text: str, message: str) -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads(text, env={})
    assert str(caught.value) == message


def test_error_ids_are_unique() -> None:
    ids = [case_id for case_id, _, _ in ERRORS]
    assert len(ids) == len(set(ids))


def test_nesting_at_the_limit_is_accepted() -> None:
    value = conf.loads("a = " + "[" * 100 + "]" * 100)["a"]
    depth = 0
    while value:
        value = value[0]
        depth += 1
    assert depth == 99


def test_error_fields() -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads("a = 1\nb = [1 2]\n")
    err = caught.value
    assert (err.file, err.line, err.column) == ("<string>", 2, 8)
    assert err.message == "expected ',' or ']' after an array element, but got '2'"


def test_error_names_the_path() -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads("\n\n  x = -y", path="/etc/jetgate/gw.conf")
    assert str(caught.value) == "/etc/jetgate/gw.conf:3:8: expected a digit after '-' but got 'y'"
    assert caught.value.file == "/etc/jetgate/gw.conf"


def test_error_column_counts_characters_not_bytes() -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads("é = 1 x")
    assert (caught.value.line, caught.value.column) == (1, 7)


def test_error_line_counts_crlf_once() -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads("a = 1\r\nb = 2\r\nc = 3 x\r\n")
    assert (caught.value.line, caught.value.column) == (3, 7)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.conf"
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(path)
    assert str(caught.value) == f"{path}:1:1: cannot read config file: No such file or directory"


def test_load_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"a = caf\xe9\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(path)
    assert (
        str(caught.value) == f"{path}:1:1: config file is not UTF-8 text: invalid continuation byte"
    )


def test_load_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text("ok = 1\nbad = 1.5s\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(path)
    assert str(caught.value) == (
        f"{path}:2:7: invalid number '1.5s': quote it if it is a string or a duration "
        '(for example "1.5s")'
    )
