"""``include`` (nats-conf-format.md §10): resolution, nesting, placement, errors, positions."""

from __future__ import annotations

from pathlib import Path

import pytest

import conf


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """main.conf includes sub/inc.conf (twice), which includes nested.conf next to itself."""
    write(
        tmp_path / "main.conf",
        "a = 1\ninclude sub/inc.conf\nm {\n  include 'sub/inc.conf'\n}\n",
    )
    write(tmp_path / "sub" / "inc.conf", "b = 2\ninclude nested.conf;\n")
    write(tmp_path / "sub" / "nested.conf", "\n  c = 3\n")
    return tmp_path


def test_include_relative_to_including_file(tree: Path) -> None:
    assert conf.load(tree / "main.conf") == {
        "a": 1,
        "b": 2,
        "c": 3,
        "m": {"b": 2, "c": 3},
    }


def test_positions_name_the_included_file(tree: Path) -> None:
    result = conf.load(tree / "main.conf")
    main = str(tree / "main.conf")
    nested = str(tree / "sub" / "nested.conf")
    assert [tuple(result.pos(k)) for k in ("a", "b", "c")] == [
        (main, 1, 1),
        (str(tree / "sub" / "inc.conf"), 1, 1),
        (nested, 2, 3),
    ]
    assert tuple(result["m"].pos("c")) == (nested, 2, 3)
    assert str(result["m"].pos("c")) == f"{nested}:2:3"


def test_include_with_path_of_text(tree: Path) -> None:
    result = conf.loads("include sub/inc.conf", path=str(tree / "virtual.conf"))
    assert result == {"b": 2, "c": 3}


def test_include_keyword_any_case_and_double_quotes(tree: Path) -> None:
    text = 'INCLUDE "sub/nested.conf"\nInclude sub/nested.conf # again\n'
    assert conf.loads(text, path=str(tree / "x.conf")) == {"c": 3}


def test_include_overrides_and_is_visible_to_variables(tmp_path: Path) -> None:
    write(tmp_path / "setx.conf", "x = 1\n")
    main = write(tmp_path / "main.conf", "x = 7; include setx.conf; n = $x\n")
    assert conf.load(main) == {"x": 1, "n": 1}


def test_included_file_cannot_see_includer_variables(tmp_path: Path) -> None:
    inner = write(tmp_path / "usep.conf", "q = $p\n")
    main = write(tmp_path / "main.conf", "p = 1\ninclude usep.conf\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(main)
    assert str(caught.value) == (
        f"{inner}:1:5: variable reference for 'p' can not be found "
        "(not set earlier in an enclosing block, nor in the environment)"
    )


def test_differs_absolute_include_is_honoured(tmp_path: Path) -> None:
    target = write(tmp_path / "abs" / "x.conf", "x = 1\n")
    main = write(tmp_path / "etc" / "a.conf", f"include {target}\n")
    assert conf.load(main) == {"x": 1}


def test_include_relative_to_cwd_for_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "here.conf", "h = yes\n")
    monkeypatch.chdir(tmp_path)
    assert conf.loads("include here.conf") == {"h": True}


def test_include_cycle_names_the_chain(tmp_path: Path) -> None:
    one = write(tmp_path / "one.conf", "include two.conf\n")
    two = write(tmp_path / "two.conf", "x = 1\ninclude one.conf\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(one)
    assert str(caught.value) == f"{two}:2:9: include cycle: {one} -> {two} -> {one}"


def test_include_self_cycle(tmp_path: Path) -> None:
    me = write(tmp_path / "me.conf", "include ./me.conf\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(me)
    assert str(caught.value) == f"{me}:1:9: include cycle: {me} -> {me}"


def test_same_file_twice_is_not_a_cycle(tree: Path) -> None:
    assert conf.load(tree / "main.conf")["m"]["b"] == 2


def test_missing_include_at_include_position(tmp_path: Path) -> None:
    main = write(tmp_path / "miss.conf", "a = 1\n  include nothere.conf\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(main)
    assert str(caught.value) == (
        f"{main}:2:11: cannot open include file 'nothere.conf' "
        f"({tmp_path / 'nothere.conf'}): No such file or directory"
    )


def test_error_inside_included_file_names_it(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.conf", "x = 1\ny = [\n")
    main = write(tmp_path / "main.conf", "include bad.conf\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.load(main)
    assert str(caught.value) == (
        f"{bad}:3:1: unexpected end of file in the array opened at line 2: expected ']'"
    )


def test_include_path_with_nul(tmp_path: Path) -> None:
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads('include "a\x00b"', path=str(tmp_path / "x.conf"))
    assert (caught.value.line, caught.value.column, caught.value.message) == (
        1,
        9,
        "include path contains a NUL character",
    )


def test_include_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads("include d", path=str(tmp_path / "x.conf"))
    assert str(caught.value) == (
        f"{tmp_path / 'x.conf'}:1:9: cannot open include file 'd' ({tmp_path / 'd'}): "
        "Is a directory"
    )


def test_include_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "l1.conf").write_bytes(b"a = \xff\n")
    with pytest.raises(conf.ConfigError) as caught:
        conf.loads("include l1.conf", path=str(tmp_path / "x.conf"))
    assert caught.value.message == "include file 'l1.conf' is not UTF-8 text: invalid start byte"
