"""``ConfMap.pos`` / ``ConfList.pos``: 1-based positions of keys and elements (§12)."""

from __future__ import annotations

import conf

TEXT = """\
# header
top = 1
block {
  inner = [1,
     2, 3kb]
  "quoted key" = x
}
  late: yes
"""


def test_key_positions() -> None:
    result = conf.loads(TEXT, path="gw.conf")
    assert [str(result.pos(k)) for k in ("top", "block", "late")] == [
        "gw.conf:2:1",
        "gw.conf:3:1",
        "gw.conf:8:3",
    ]


def test_nested_key_positions() -> None:
    block = conf.loads(TEXT)["block"]
    assert [tuple(block.pos(k)) for k in ("inner", "quoted key")] == [
        ("<string>", 4, 3),
        ("<string>", 6, 3),
    ]


def test_unknown_key_falls_back_to_the_map() -> None:
    result = conf.loads(TEXT)
    assert tuple(result["block"].pos("absent")) == ("<string>", 3, 7)
    assert tuple(result.pos("absent")) == ("<string>", 1, 1)


def test_list_element_positions() -> None:
    inner = conf.loads(TEXT)["block"]["inner"]
    assert [tuple(inner.pos(i)) for i in range(3)] == [
        ("<string>", 4, 12),
        ("<string>", 5, 6),
        ("<string>", 5, 9),
    ]
    assert inner[2].text == "3kb"


def test_list_index_out_of_range_falls_back_to_the_list() -> None:
    inner = conf.loads(TEXT)["block"]["inner"]
    assert tuple(inner.pos(3)) == ("<string>", 4, 11)
    assert tuple(inner.pos(-1)) == ("<string>", 4, 11)


def test_position_fields() -> None:
    pos = conf.loads("\n\n   k = v").pos("k")
    assert (pos.file, pos.line, pos.column) == ("<string>", 3, 4)


def test_positions_after_crlf_and_non_ascii() -> None:
    result = conf.loads("é = 1\r\nü = [ñ, ø]\r\n")
    assert tuple(result.pos("ü")) == ("<string>", 2, 1)
    assert tuple(result["ü"].pos(1)) == ("<string>", 2, 9)


def test_later_assignment_moves_position() -> None:
    result = conf.loads("a = 1\nb = 2\na = 3")
    assert (result["a"], result.pos("a").line) == (3, 3)
