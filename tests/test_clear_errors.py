"""Issue 9 item 8: every user mistake gets one clear error that names what to fix."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import boto3
import pytest

from sqs_consumer import (
    AsyncProducer,
    BatchResult,
    Consumer,
    ConsumerOptions,
    ConsumerStateError,
    LambdaHandler,
    Message,
    Producer,
    QueueCheckError,
    Router,
    sqs_handler,
)
from sqs_consumer.consumer import State
from sqs_consumer.errors import OptionTypeError
from sqs_consumer.handlers.batch import normalize_batch_result
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import REGION, QueueEnv, unique_name
from tests.helpers import running, wait_for

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


def _handle(message: Message) -> None:
    """A handler that does nothing."""


async def _middleware(message: Message, call_next: Any) -> Any:
    return await call_next(message)


async def _generator_middleware(message: Message, call_next: Any) -> Any:
    yield await call_next(message)


# -- ConsumerOptions: one sentence per bad value, naming the field ----------------------------


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("batch", "yes", "a bool (True or False)"),
        ("batch", 1, "a bool (True or False)"),
        ("endpoint_url", 5, "an http:// or https:// URL"),
        ("endpoint_url", "127.0.0.1:4566", "an http:// or https:// URL"),
        ("endpoint_url", "http://127.0.0.1:4566 ", "without whitespace"),
        ("region_name", 5, "a region name"),
        ("region_name", "", "a region name"),
        ("region_name", "us-east-1\n", "a region name"),
        ("middleware", _middleware, "a sequence of middleware callables"),
        ("middleware", None, "a sequence of middleware callables"),
        ("middleware", "log_failures", "a sequence of middleware callables"),
        ("middleware", {_middleware}, "a sequence of middleware callables"),
        ("middleware", [_middleware, 3], "item 1 (3) is not one: it is not callable"),
        ("middleware", [_generator_middleware], "async generator function"),
        ("middleware", [lambda message: None], "signature is (message)"),
        ("client", "boto3", "lacks get_queue_attributes, receive_message"),
        ("client", boto3, "lacks get_queue_attributes"),
        ("queue_url", None, "it is NoneType, not a string"),
        ("queue_url", " " + URL, "whitespace"),
        ("queue_url", URL + "\n", "whitespace"),
        ("queue_url", URL.replace("jobs", "my jobs"), "whitespace"),
        ("queue_url", "https:///", "names no queue"),
        ("unhealthy_after", 0, "a finite number of seconds > 0"),
        ("unhealthy_after", "30", "a finite number of seconds > 0"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_field(
    field: str, value: Any, fragment: str
) -> None:
    """The error is a ValueError that starts with the field and says what is allowed."""
    with pytest.raises(ValueError) as info:
        ConsumerOptions(**{"queue_url": URL, field: value})
    text = str(info.value)
    assert text.startswith(f"ConsumerOptions.{field} must be"), text
    assert fragment in text
    assert "\n" not in text.replace(repr(value), "")  # one sentence, whatever the value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch", "yes"),
        ("endpoint_url", 5),
        ("region_name", 5),
        ("client", "boto3"),
        ("middleware", None),
        ("middleware", [3]),
        ("queue_url", None),
        ("retry", 5),
    ],
)
def test_a_value_of_the_wrong_type_is_a_type_error_too(field: str, value: Any) -> None:
    """`except ValueError` catches every bad option; `except TypeError` the wrong types."""
    with pytest.raises(OptionTypeError) as info:
        ConsumerOptions(**{"queue_url": URL, field: value})
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert str(info.value).startswith(f"ConsumerOptions.{field} must be")


def test_a_dead_letter_url_with_whitespace_is_named() -> None:
    with pytest.raises(ValueError, match=r"^ConsumerOptions.dead_letter_queue_url must be"):
        ConsumerOptions(queue_url=URL, max_receives=3, dead_letter_queue_url=URL + "-dlq ")


def test_a_client_lacking_methods_names_each_missing_one() -> None:
    """A client with only some SQS methods is told exactly which it lacks."""

    class HalfClient:
        def receive_message(self, **_: Any) -> dict[str, Any]:
            return {}

        get_queue_attributes = receive_message
        delete_message_batch = "not callable"

    with pytest.raises(ValueError) as info:
        ConsumerOptions(queue_url=URL, client=HalfClient())
    text = str(info.value)
    assert text.endswith("which lacks delete_message_batch, change_message_visibility_batch")


def test_dead_lettering_needs_send_message_on_the_client() -> None:
    class NoSend(MemorySQS):
        send_message = None  # type: ignore[assignment]

    ConsumerOptions(queue_url=URL, client=NoSend())  # fine without dead-lettering
    with pytest.raises(ValueError, match="client must have a send_message method"):
        ConsumerOptions(
            queue_url=URL, client=NoSend(), max_receives=2, dead_letter_queue_url=URL + "-dlq"
        )


def test_real_clients_and_plain_values_are_accepted(moto_endpoint: str) -> None:
    """boto3's client (for moto's server), MemorySQS and lists/tuples of middleware pass."""
    client = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
    assert ConsumerOptions(queue_url=URL, client=client).client is client
    assert ConsumerOptions(queue_url=URL, client=MemorySQS()).client is not None
    options = ConsumerOptions(queue_url=URL, middleware=[_middleware], endpoint_url=moto_endpoint)
    assert options.middleware == (_middleware,)
    assert ConsumerOptions(queue_url="memory://jobs", region_name="eu-west-1").is_memory
    with pytest.raises(ValueError, match="lacks"):  # while a look-alike is not
        ConsumerOptions(queue_url=URL, client=boto3.client("s3", region_name=REGION))


# -- Consumer: a handler that could never run a message is refused at construction -----------


def _generator(message: Message) -> Iterator[None]:
    yield None


async def _async_generator(message: Message) -> AsyncIterator[None]:
    yield None


class _GeneratorCall:
    def __call__(self, message: Message) -> Iterator[None]:
        yield None


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        (_generator, "it is a generator function"),
        (_async_generator, "it is an async generator function"),
        (_GeneratorCall(), "it is a generator function"),
        (functools.partial(_generator), "it is a generator function"),
    ],
)
def test_generator_handlers_are_refused_saying_why(handler: Any, fragment: str) -> None:
    with pytest.raises(TypeError) as info:
        Consumer(handler, ConsumerOptions(queue_url=URL))
    text = str(info.value)
    assert fragment in text
    assert "its body would never run" in text and "def or async def" in text


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        (lambda: None, "signature is ()"),
        (lambda message, context: None, "missing a required argument: 'context'"),
        (lambda *, message: None, "too many positional arguments"),
    ],
)
def test_a_handler_that_cannot_take_the_message_is_refused(handler: Any, fragment: str) -> None:
    with pytest.raises(TypeError) as info:
        Consumer(handler, ConsumerOptions(queue_url=URL))
    text = str(info.value)
    assert "must take one positional argument (the message)" in text
    assert fragment in text


def test_a_batch_handler_must_take_the_list() -> None:
    with pytest.raises(TypeError, match=r"one positional argument \(the list of messages"):
        Consumer(lambda: None, ConsumerOptions(queue_url=URL, batch=True))


class _Service:
    def handle(self, message: Message) -> None:
        """A method handler."""

    def nothing(self) -> None:
        """Takes no message."""


class _Callable:
    async def __call__(self, message: Message, extra: int = 0) -> None:
        """An object handler."""


class _NoArgCallable:
    async def __call__(self) -> None:
        """Takes no message."""


class _BatchMarked:
    __sqs_batch__ = True

    def __call__(self, first: list[Message], second: list[Message]) -> None:
        """Takes two lists."""


class _Opaque:
    @property
    def __signature__(self) -> Any:
        raise ValueError("no signature")

    def __call__(self, message: Message) -> None:
        """Runs, though inspect cannot say so."""


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        (_handle, lambda: None),
        (lambda message, retries=3: None, lambda message, context: None),
        (lambda *args: None, lambda *, message: None),
        (
            functools.partial(lambda prefix, message: None, "p"),
            functools.partial(lambda prefix, message, extra: None, "p"),
        ),
        (_Service().handle, _Service().nothing),
        (_Callable(), _NoArgCallable()),
        (Router(), _NoArgCallable()),
        (LambdaHandler(lambda event, context: None), _BatchMarked()),
        (print, lambda: None),  # a builtin: accepted whether or not its signature is readable
        (_Opaque(), lambda: None),  # no readable signature: the call itself will tell
    ],
)
def test_handlers_are_judged_by_their_signature_not_their_kind(good: Any, bad: Any) -> None:
    """Each kind of callable is accepted when it takes one argument and refused when not."""
    Consumer(good, ConsumerOptions(queue_url=URL))
    with pytest.raises(TypeError, match="must take one positional argument"):
        Consumer(bad, ConsumerOptions(queue_url=URL))


# -- @sqs_handler: bare, from the environment, on methods -----------------------------------


def test_bare_decorator_takes_the_queue_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SQS_CONSUMER_QUEUE_URL", "memory://from-env")

    @sqs_handler
    def handle(message: Message) -> str:
        return message.body

    assert handle(Message(message_id="1", receipt_handle="r", body="b")) == "b"
    assert handle.consumer.options.queue_url == "memory://from-env"

    @sqs_handler(concurrency=3)
    def other(message: Message) -> None: ...

    assert other.consumer.options.queue_url == "memory://from-env"


def test_bare_decorator_without_a_queue_url_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SQS_CONSUMER_QUEUE_URL", raising=False)
    with pytest.raises(TypeError, match=r"@sqs_handler needs queue_url=\.\.\., e\.g\. "):

        @sqs_handler
        def handle(message: Message) -> None: ...

    with pytest.raises(TypeError, match="needs queue_url"):
        sqs_handler(concurrency=2)


def test_a_bad_queue_url_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_CONSUMER_QUEUE_URL", URL + " ")
    with pytest.raises(ValueError, match="whitespace.*came from SQS_CONSUMER_QUEUE_URL"):
        sqs_handler(_handle)


def test_a_url_given_positionally_is_refused() -> None:
    with pytest.raises(TypeError, match=r"takes keyword options only.*queue_url=URL"):
        sqs_handler(URL)  # type: ignore[call-overload]


def test_the_decorator_refuses_generators_at_decoration() -> None:
    with pytest.raises(TypeError, match="generator function"):

        @sqs_handler(queue_url="memory://gen")
        def handle(message: Message) -> Iterator[None]:
            yield None


class Orders:
    """A service whose method is the handler."""

    def __init__(self, sqs: MemorySQS, url: str) -> None:
        self.seen: list[str] = []
        self.sqs, self.url = sqs, url

    @sqs_handler(queue_url="memory://orders", wait_time_seconds=1)
    def handle(self, message: Message) -> None:
        self.seen.append(message.body)

    @sqs_handler(queue_url="memory://orders")
    @staticmethod
    def audit(message: Message) -> None: ...


def test_a_method_handler_binds_per_instance() -> None:
    first, second = Orders(MemorySQS(), "memory://a"), Orders(MemorySQS(), "memory://b")
    assert first.handle is first.handle  # one bound handler, so one consumer, per instance
    assert first.handle.consumer is not second.handle.consumer
    assert first.handle.consumer.handler == first.handle.__wrapped__
    message = Message(message_id="1", receipt_handle="r", body="x")
    first.handle(message)
    Orders.handle(second, message)
    assert first.seen == ["x"] and second.seen == ["x"]
    with pytest.raises(TypeError, match=r"is a method.*instance\.handle\.consumer"):
        Orders.handle.consumer  # noqa: B018
    assert isinstance(Orders.audit.consumer, Consumer)  # a staticmethod is a plain function


def test_classmethods_and_slotted_instances_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="cannot wrap a classmethod"):

        class Bad:
            @sqs_handler(queue_url="memory://x")
            @classmethod
            def handle(cls, message: Message) -> None: ...

    class Slotted:
        __slots__ = ()

        @sqs_handler(queue_url="memory://x")
        def handle(self, message: Message) -> None: ...

    with pytest.raises(TypeError, match="needs instances with a __dict__"):
        Slotted().handle  # noqa: B018


@pytest.mark.anyio
async def test_a_method_handler_consumes_with_its_instance() -> None:
    sqs = MemorySQS()
    url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]

    class Service:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @sqs_handler(queue_url=url, client=sqs, wait_time_seconds=1)
        async def handle(self, message: Message) -> None:
            self.seen.append(message.body)

    service = Service()
    sqs.send_message(QueueUrl=url, MessageBody="one")
    async with running(service.handle.consumer):
        await wait_for(lambda: service.handle.consumer.stats().deleted == 1)
    assert service.seen == ["one"]


# -- batch handlers may return the failed Message objects -----------------------------------


def test_failed_messages_stand_for_their_ids() -> None:
    batch = [Message(message_id=str(n), receipt_handle="r", body="b") for n in range(3)]
    assert normalize_batch_result([batch[1]], batch).failed == {"1"}
    assert normalize_batch_result((m for m in batch if m.message_id != "0"), batch).failed == {
        "1",
        "2",
    }
    result = BatchResult(failed=[batch[2]], retry_delays={"2": 5})
    assert result.failed == {"2"} and dict(result.retry_delays) == {"2": 5}
    outsider = Message(message_id="other", receipt_handle="r", body="b")
    with pytest.raises(ValueError, match="'other'"):
        normalize_batch_result([outsider], batch)


@pytest.mark.anyio
async def test_a_batch_handler_returning_messages_fails_only_those(queue: QueueEnv) -> None:
    queue.send(["good", "bad", "good"])

    def handle(messages: list[Message]) -> list[Message]:
        return [m for m in messages if m.body == "bad"]

    consumer = Consumer(handle, queue.options(batch=True, retry=None))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 2 and consumer.stats().failed == 1)
    assert consumer.stats().succeeded == 2


# -- Producer: a queue URL or client it could never use fails at construction ----------------


@pytest.mark.parametrize("cls", [Producer, AsyncProducer])
@pytest.mark.parametrize(
    ("url", "error", "fragment"),
    [
        ("not a url", ValueError, "it contains whitespace"),
        ("sqs://jobs", ValueError, "it does not start with https://"),
        (None, TypeError, "it is NoneType, not a string"),
        (URL + "\n", ValueError, "whitespace"),
    ],
)
def test_producer_refuses_what_is_not_a_queue_url(
    cls: type[Producer], url: Any, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        cls(url, client=MemorySQS())
    text = str(info.value)
    assert text.startswith(f"{cls.__name__} queue_url must be a queue URL")
    assert fragment in text


@pytest.mark.parametrize("cls", [Producer, AsyncProducer])
def test_producer_refuses_a_client_without_send_methods(cls: type[Producer]) -> None:
    with pytest.raises(TypeError, match=r"lacks send_message, send_message_batch$"):
        cls(URL, client="boto3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="region_name must be None or a non-empty string"):
        cls(URL, region_name="")


# -- start() inside a running loop ----------------------------------------------------------


@pytest.mark.anyio
async def test_start_inside_a_running_loop_says_use_run() -> None:
    """start() refuses with a clear error and leaves the consumer NEW: run() still works."""
    sqs = MemorySQS()
    url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    consumer = Consumer(_handle, ConsumerOptions(queue_url=url, client=sqs, wait_time_seconds=1))
    with pytest.raises(ConsumerStateError, match=r"use `await consumer.run\(\)` inside a running"):
        consumer.start()
    assert consumer.state is State.NEW

    @sqs_handler(queue_url=url, client=sqs)
    def handle(message: Message) -> None: ...

    with pytest.raises(ConsumerStateError, match=r"await consumer.run\(\)"):
        handle.start()
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    # Only the loop's own thread is refused: a thread started from async code may block.
    other = Consumer(_handle, ConsumerOptions(queue_url=url, client=sqs, wait_time_seconds=0))
    other.stop()  # requested before start: the run drains at once
    await anyio.to_thread.run_sync(other.start)
    assert other.state is State.STOPPED


# -- the dead-letter queue is checked at start like the main queue ---------------------------


@pytest.mark.anyio
async def test_a_missing_dead_letter_queue_fails_run_naming_the_option(queue: QueueEnv) -> None:
    options = queue.options(max_receives=3, dead_letter_queue_url=queue.url + "-missing-dlq")
    consumer = Consumer(_handle, options)
    with anyio.fail_after(15), pytest.raises(QueueCheckError) as info:
        await consumer.run()
    text = str(info.value)
    assert text.startswith("cannot use dead_letter_queue_url queue ")
    assert "-missing-dlq" in text
    assert consumer.stats().receives == 0  # failed before receiving anything
    dlq = queue.client.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    queue.send(["one"])
    consumer = Consumer(_handle, queue.options(max_receives=3, dead_letter_queue_url=dlq))
    async with running(consumer):  # an existing one passes the check
        await wait_for(lambda: consumer.stats().deleted == 1)


@pytest.mark.anyio
async def test_a_dead_letter_queue_we_may_only_send_to_is_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """AccessDenied on the DLQ's attributes is logged, not fatal: SendMessage may be allowed."""
    dlq_url = "memory://send-only-dlq"

    def send_only(call: SQSCall) -> None:
        if call.operation == "GetQueueAttributes" and call.params["QueueUrl"] == dlq_url:
            raise call.error("AccessDenied", "not for you", status=403)

    sqs = MemorySQS(hook=send_only)
    url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    options = ConsumerOptions(
        queue_url=url,
        client=sqs,
        wait_time_seconds=1,
        max_receives=2,
        dead_letter_queue_url=dlq_url,
    )
    consumer = Consumer(_handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    assert "cannot check dead_letter_queue_url" in caplog.text


# -- stats_port in use names the option ------------------------------------------------------


@pytest.mark.anyio
async def test_a_busy_stats_port_names_the_option(queue: QueueEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        consumer = Consumer(_handle, queue.options(stats_port=port))
        with anyio.fail_after(15), pytest.raises(OSError) as info:
            await consumer.run()
    assert f"ConsumerOptions.stats_port={port} is already in use" in str(info.value)
    assert "0 for a free one" in str(info.value)
    assert consumer.stats().receives == 0
