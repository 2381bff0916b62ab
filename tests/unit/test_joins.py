"""``interleave``: the one-copy join every batch encoder uses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.joins import interleave


@given(
    st.binary(max_size=8),
    st.lists(st.binary(max_size=8), min_size=1, max_size=20),
    st.binary(max_size=8),
    st.binary(max_size=8),
)
def test_interleave_is_first_then_items_joined_then_last(
    first: bytes, items: list[bytes], between: bytes, last: bytes
) -> None:
    assert interleave(first, items, between, last) == first + between.join(items) + last
