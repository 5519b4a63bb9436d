"""WaitingRoom against collections.deque as a model."""

from __future__ import annotations

from collections import deque

import pytest
from anyio import WouldBlock
from hypothesis import given
from hypothesis import strategies as st

from sqs_consumer.workers import WaitingRoom

operations = st.lists(st.one_of(st.integers(), st.none()), max_size=200)


@given(capacity=st.integers(min_value=1, max_value=8), ops=operations)
def test_behaves_like_a_bounded_deque(capacity: int, ops: list[int | None]) -> None:
    """Any sequence of pushes (ints) and pops (None) matches a bounded FIFO model."""
    room: WaitingRoom[int] = WaitingRoom(capacity)
    model: deque[int] = deque()
    for op in ops:
        if op is None:
            if model:
                assert room.pop_nowait() == model.popleft()
            else:
                with pytest.raises(WouldBlock):
                    room.pop_nowait()
        elif len(model) == capacity:
            with pytest.raises(WouldBlock):  # full means wait: never drop, never overwrite
                room.push_nowait(op)
        else:
            room.push_nowait(op)
            model.append(op)
        assert len(room) == len(model)
        assert room.free() == capacity - len(model)
        assert room.is_full() == (len(model) == capacity)


def test_capacity_must_be_positive() -> None:
    """A room that can hold nothing is refused with the bad value in the message."""
    with pytest.raises(ValueError, match="got 0"):
        WaitingRoom(0)


def test_wraps_around_many_times() -> None:
    """The ring buffer keeps FIFO order across many laps of its storage."""
    room: WaitingRoom[int] = WaitingRoom(3)
    out = []
    for i in range(1000):
        room.push_nowait(i)
        if len(room) == 3:
            out.append(room.pop_nowait())
    while room:
        out.append(room.pop_nowait())
    assert out == list(range(1000))
