"""`safe_repr`: text for a value from user code that never raises (logs, spans, the DLQ)."""

from __future__ import annotations

__all__ = ["safe_repr", "safe_str"]


def _type_name(value: object) -> str:
    try:
        return str(type(value).__qualname__)
    except Exception:  # a metaclass can make even this raise
        return "object"


def _failure(exc: Exception) -> str:
    """`ValueError: why`, or just the type name when the inner error cannot be shown either."""
    name = _type_name(exc)
    try:
        text = str(exc)
    except Exception:
        return name
    return f"{name}: {text}" if text else name


def safe_repr(value: object) -> str:
    """`repr(value)`, or `<Type object (repr failed: Error: why)>` when that raises.

    The consumer formats handler exceptions to log them, record them on spans and put them in
    dead-letter attributes; an exception class with a broken `__repr__` must not turn a failed
    message into a crashed consumer.
    """
    try:
        return repr(value)  # repr() itself rejects a __repr__ that returns a non-str
    except Exception as exc:
        return f"<{_type_name(value)} object (repr failed: {_failure(exc)})>"


def safe_str(value: object) -> str:
    """`str(value)`, falling back to `safe_repr` when that raises."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)
