"""`WaitingRoom`: a fixed-capacity FIFO ring buffer (pure sync, O(1) push and pop)."""

from __future__ import annotations

from typing import Generic, TypeVar

from anyio import WouldBlock

__all__ = ["WaitingRoom"]

T = TypeVar("T")


class WaitingRoom(Generic[T]):
    """A bounded FIFO that never drops: pushing into a full room raises `anyio.WouldBlock`.

    Args:
        capacity: the most items it holds (≥ 1).

    Raises:
        ValueError: capacity is below 1.
    """

    __slots__ = ("_head", "_items", "_size")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"WaitingRoom capacity must be an integer >= 1, got {capacity!r}")
        self._items: list[T | None] = [None] * capacity
        self._head = 0  # index of the oldest item
        self._size = 0

    @property
    def capacity(self) -> int:
        """The most items the room holds."""
        return len(self._items)

    def __len__(self) -> int:
        return self._size

    def free(self) -> int:
        """Places left."""
        return len(self._items) - self._size

    def is_full(self) -> bool:
        """True when a push would raise."""
        return self._size == len(self._items)

    def push_nowait(self, item: T) -> None:
        """Add an item at the back.

        Raises:
            anyio.WouldBlock: the room is full.
        """
        capacity = len(self._items)
        if self._size == capacity:
            raise WouldBlock
        self._items[(self._head + self._size) % capacity] = item
        self._size += 1

    def pop_nowait(self) -> T:
        """Remove and return the oldest item.

        Raises:
            anyio.WouldBlock: the room is empty.
        """
        if not self._size:
            raise WouldBlock
        item = self._items[self._head]
        self._items[self._head] = None  # let the job be garbage-collected once it has run
        self._head = (self._head + 1) % len(self._items)
        self._size -= 1
        return item  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<WaitingRoom {self._size}/{len(self._items)}>"
