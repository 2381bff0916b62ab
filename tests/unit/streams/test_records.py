"""Segment record framing: round trips, torn frames, bad checksums."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.embedded.records import DEL, MSG, encode, frame_msg, scan

headers = st.none() | st.dictionaries(
    st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3
)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=20), headers, st.binary(max_size=300)), max_size=10
    )
)
def test_frames_round_trip(msgs: list[tuple[str, dict[str, str] | None, bytes]]) -> None:
    buf = b"".join(frame_msg(i + 1, 1000 + i, s, h, d) for i, (s, h, d) in enumerate(msgs))
    records = [r for _, r in scan(buf)]
    assert records == [[MSG, i + 1, 1000 + i, s, h, d] for i, (s, h, d) in enumerate(msgs)]


def test_every_truncation_yields_only_whole_records() -> None:
    frames = [
        frame_msg(1, 1, "a", None, b"x" * 50),
        encode([DEL, 1]),
        frame_msg(2, 2, "b", {"k": "v"}, b"y"),
    ]
    buf = b"".join(frames)
    bounds = [sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))]
    for cut in range(len(buf) + 1):
        got = list(scan(buf[:cut]))
        whole = [b for b in bounds if b <= cut]
        assert [end for end, _ in got] == whole


def test_a_flipped_bit_stops_the_scan() -> None:
    frames = [frame_msg(i, i, "s", None, b"data-%d" % i) for i in range(1, 4)]
    buf = bytearray(b"".join(frames))
    buf[len(frames[0]) + 12] ^= 0x01  # inside the second record's body
    got = list(scan(bytes(buf)))
    assert [r[1] for _, r in got] == [1]
