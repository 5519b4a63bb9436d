"""Middleware: chain order, short-circuit, signals; the built-ins log_failures and NonRetryable."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import pytest

from sqs_consumer import Discard, Message, Retry
from sqs_consumer._pipeline.handling import Handling
from sqs_consumer._pipeline.outcome import ACK, DISCARDED, Fail, Outcome
from sqs_consumer.middleware import CallNext, Middleware, NonRetryable, log_failures
from sqs_consumer.testing import MemorySQS
from tests.conftest import unique_name

pytestmark = pytest.mark.anyio

LOGGER = "sqs_consumer.middleware"


@pytest.fixture
def message() -> Message:
    """One message as MemorySQS delivers it on its second receive."""
    sqs = MemorySQS()
    url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"order": 7}))
    for _ in range(2):
        raw = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], VisibilityTimeout=0)
    return Message.from_sqs(raw["Messages"][0], queue_url=url)


async def handle(
    handler: Callable[[Message], Any], middleware: Sequence[Middleware], message: Message
) -> Outcome:
    handling = Handling(handler, middleware=middleware)
    return await handling(message)


def tracer(name: str, calls: list[str]) -> Middleware:
    async def middleware(message: Message, call_next: CallNext) -> Any:
        calls.append(f"{name} before")
        result = await call_next(message)
        calls.append(f"{name} after")
        return result

    return middleware


def raising(error: Exception) -> Callable[[Message], None]:
    def handler(message: Message) -> None:
        raise error

    return handler


class TestChain:
    async def test_outermost_first_and_unwinds_in_reverse(self, message: Message) -> None:
        """The first middleware wraps the second, which wraps the handler."""
        calls: list[str] = []

        async def handler(message: Message) -> None:
            calls.append("handler")

        middleware = [tracer("outer", calls), tracer("inner", calls)]
        assert await handle(handler, middleware, message) == ACK
        assert calls == ["outer before", "inner before", "handler", "inner after", "outer after"]

    async def test_short_circuit_skips_the_handler(self, message: Message) -> None:
        """A middleware that does not call call_next acknowledges without running the handler."""
        calls: list[str] = []

        async def already_done(message: Message, call_next: CallNext) -> None:
            calls.append("short-circuit")

        outcome = await handle(raising(RuntimeError("ran")), [already_done], message)
        assert outcome == ACK
        assert calls == ["short-circuit"]

    async def test_middleware_may_transform_the_result(self, message: Message) -> None:
        """What call_next returns reaches the outer middleware, which may change it."""
        results: list[Any] = []

        async def outer(message: Message, call_next: CallNext) -> Any:
            results.append(await call_next(message))

        async def doubling(message: Message, call_next: CallNext) -> Any:
            return 2 * await call_next(message)

        assert await handle(lambda m: m.json()["order"], [outer, doubling], message) == ACK
        assert results == [14]

    async def test_retry_from_middleware_fails_with_its_delay(self, message: Message) -> None:
        """Retry raised by a middleware becomes Fail(delay) and the handler never runs."""

        async def later(message: Message, call_next: CallNext) -> None:
            raise Retry(delay=30)

        outcome = await handle(raising(RuntimeError("ran")), [later], message)
        assert isinstance(outcome, Fail) and outcome.delay == 30

    async def test_discard_from_middleware_deletes(self, message: Message) -> None:
        """Discard raised by a middleware becomes the discarded acknowledgement."""

        async def drop(message: Message, call_next: CallNext) -> None:
            raise Discard()

        assert await handle(raising(RuntimeError("ran")), [drop], message) == DISCARDED


class TestNonRetryable:
    async def test_listed_types_are_discarded(self, message: Message, caplog: Any) -> None:
        """A listed exception (or subclass) becomes Discard, logged at WARNING with the error."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        outcome = await handle(raising(KeyError("order")), [NonRetryable(LookupError)], message)
        assert outcome == DISCARDED
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        text = record.getMessage()
        assert message.message_id in text and "non-retryable" in text
        assert "KeyError: 'order'" in text and "receive 2" in text

    async def test_other_errors_pass_through(self, message: Message, caplog: Any) -> None:
        """An exception that is not listed stays a failure (retried), and nothing is logged."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        error = RuntimeError("flaky")
        outcome = await handle(raising(error), [NonRetryable(ValueError, KeyError)], message)
        assert isinstance(outcome, Fail) and outcome.error is error
        assert caplog.records == []

    async def test_signals_pass_through(self, message: Message) -> None:
        """Retry is never turned into Discard, even when Exception is listed."""
        outcome = await handle(raising(Retry(delay=5)), [NonRetryable(Exception)], message)
        assert isinstance(outcome, Fail) and outcome.delay == 5

    async def test_success_is_untouched(self, message: Message) -> None:
        """A handler that returns is acknowledged as usual."""
        assert await handle(lambda m: None, [NonRetryable(ValueError)], message) == ACK

    def test_needs_exception_types(self) -> None:
        """No types, a non-exception, or a signal class are TypeErrors."""
        with pytest.raises(TypeError, match="at least one"):
            NonRetryable()
        with pytest.raises(TypeError, match="Exception subclasses"):
            NonRetryable(int)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Discard"):
            NonRetryable(Discard)
        assert repr(NonRetryable(ValueError, KeyError)) == "NonRetryable(ValueError, KeyError)"


class TestLogFailures:
    async def test_failure_logs_one_line_and_re_raises(self, message: Message, caplog: Any) -> None:
        """One WARNING line with id, receive count, elapsed ms and error; the message fails."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        error = ValueError("bad order")
        outcome = await handle(raising(error), [log_failures()], message)
        assert isinstance(outcome, Fail) and outcome.error is error
        [record] = caplog.records
        assert record.levelno == logging.WARNING and record.name == LOGGER
        text = record.getMessage()
        assert f"message {message.message_id} failed on receive 2 after " in text
        assert text.endswith(" ms: ValueError: bad order")
        assert "\n" not in text

    async def test_success_logs_nothing(self, message: Message, caplog: Any) -> None:
        """A handler that returns produces no log line."""
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        assert await handle(lambda m: None, [log_failures()], message) == ACK
        assert caplog.records == []

    @pytest.mark.parametrize(
        ("signal", "words"), [(Retry(delay=5), "asked for a retry"), (Discard(), "was discarded")]
    )
    async def test_signals_log_at_info(
        self, message: Message, caplog: Any, signal: Exception, words: str
    ) -> None:
        """Retry and Discard are routine: INFO, with the signal's repr."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        await handle(raising(signal), [log_failures()], message)
        [record] = caplog.records
        assert record.levelno == logging.INFO
        assert words in record.getMessage() and repr(signal) in record.getMessage()

    async def test_custom_logger_and_level(self, message: Message, caplog: Any) -> None:
        """The logger and the failure level are configurable."""
        logger = logging.getLogger("my_app")
        caplog.set_level(logging.INFO, logger="my_app")
        await handle(raising(RuntimeError()), [log_failures(logger, logging.ERROR)], message)
        [record] = caplog.records
        assert (record.name, record.levelno) == ("my_app", logging.ERROR)
        assert record.getMessage().endswith("ms: RuntimeError")

    async def test_times_the_rest_of_the_chain(self, message: Message, caplog: Any) -> None:
        """The elapsed time covers the handler: a 50 ms handler logs at least 50 ms."""
        caplog.set_level(logging.INFO, logger=LOGGER)

        async def slow(message: Message) -> None:
            await anyio.sleep(0.05)  # the time under test
            raise RuntimeError("late")

        await handle(slow, [log_failures()], message)
        elapsed = float(caplog.records[0].getMessage().split(" after ")[1].split(" ms")[0])
        assert elapsed >= 50

    async def test_sees_discards_from_inner_non_retryable(
        self, message: Message, caplog: Any
    ) -> None:
        """Outside NonRetryable, log_failures reports the discard at INFO."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        chain: list[Middleware] = [log_failures(), NonRetryable(ValueError)]
        assert await handle(raising(ValueError("x")), chain, message) == DISCARDED
        assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
        assert "was discarded" in caplog.records[1].getMessage()

    def test_rejects_a_bad_level(self) -> None:
        """The level must be a logging level number."""
        with pytest.raises(TypeError, match="level"):
            log_failures(level="WARNING")  # type: ignore[arg-type]
