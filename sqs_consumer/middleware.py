"""Middleware: the built-ins `log_failures()` and `NonRetryable`, and the types to write your own.

A middleware is `async def mw(message, call_next: CallNext) -> Any`; see docs/handlers/middleware.md.
The code is in `handlers/middleware.py`; this module is the public path.
"""

from .handlers.middleware import CallNext, Middleware, NonRetryable, log_failures

__all__ = ["CallNext", "Middleware", "NonRetryable", "log_failures"]
