"""Router: dispatch by a message attribute to sync or async routes, never a silent delete."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer.handlers.router import Router, UnroutedMessage
from sqs_consumer.testing import MemorySQS
from tests.conftest import unique_name
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio


def receive(*attributes: Mapping[str, Any]) -> list[Message]:
    """Messages sent to and received from MemorySQS, one per set of message attributes."""
    sqs = MemorySQS()
    url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    for n, message_attributes in enumerate(attributes):
        extra: dict[str, Any] = (
            {"MessageAttributes": message_attributes} if message_attributes else {}
        )
        sqs.send_message(QueueUrl=url, MessageBody=f"body {n}", **extra)
    raw = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )["Messages"]
    assert len(raw) == len(attributes)
    return sorted((Message.from_sqs(r, queue_url=url) for r in raw), key=lambda m: m.body)


def typed(value: str, data_type: str = "String") -> dict[str, Any]:
    return {"type": {"DataType": data_type, "StringValue": value}}


class TestDispatch:
    async def test_async_route_gets_its_messages(self) -> None:
        """An async route is awaited with the message whose type attribute names it."""
        router = Router()
        seen: list[tuple[str, str]] = []

        @router.route("created")
        async def created(message: Message) -> None:
            seen.append(("created", message.body))

        @router.route("deleted")
        async def deleted(message: Message) -> None:
            seen.append(("deleted", message.body))

        for message in receive(typed("created"), typed("deleted")):
            await router(message)
        assert seen == [("created", "body 0"), ("deleted", "body 1")]

    async def test_sync_route_runs_in_a_worker_thread(self) -> None:
        """A plain `def` route runs off the event loop's thread."""
        router = Router()
        threads: list[int] = []

        @router.route("created")
        def created(message: Message) -> None:
            threads.append(threading.get_ident())

        await router(receive(typed("created"))[0])
        assert threads and threads[0] != threading.get_ident()

    async def test_returns_what_the_route_returned(self) -> None:
        """The router hands back the route's return value (middleware may use it)."""
        router = Router()
        router.route("created")(lambda message: f"done {message.body}")
        assert await router(receive(typed("created"))[0]) == "done body 0"

    async def test_route_errors_propagate(self) -> None:
        """An exception in a route fails the message: the router does not swallow it."""
        router = Router()

        @router.route("created")
        async def created(message: Message) -> None:
            raise KeyError("order")

        with pytest.raises(KeyError, match="order"):
            await router(receive(typed("created"))[0])

    async def test_custom_attribute_and_number_type(self) -> None:
        """The attribute name is configurable; a Number attribute routes by its StringValue."""
        router = Router(attribute="version")
        seen: list[str] = []
        router.route("2")(lambda message: seen.append(message.body))
        message = receive({"version": {"DataType": "Number", "StringValue": "2"}})[0]
        await router(message)
        assert seen == ["body 0"]

    async def test_default_takes_unknown_and_untyped_messages(self) -> None:
        """Without a route (or without the attribute) a message goes to the default handler."""
        seen: list[str] = []

        async def fallback(message: Message) -> None:
            seen.append(message.body)

        router = Router(default=fallback)
        router.route("created")(lambda message: pytest.fail("wrong route"))
        for message in receive(typed("archived"), {}):
            await router(message)
        assert seen == ["body 0", "body 1"]

    async def test_sync_default_runs_in_a_thread(self) -> None:
        """A sync default handler runs in a worker thread too."""
        threads: list[int] = []
        router = Router(default=lambda message: threads.append(threading.get_ident()))
        await router(receive(typed("archived"))[0])
        assert threads and threads[0] != threading.get_ident()


class TestUnrouted:
    async def test_unknown_type_raises_naming_it(self) -> None:
        """No route and no default: UnroutedMessage (a ValueError) names the message and type."""
        router = Router()
        router.route("created")(lambda message: None)
        message = receive(typed("archived"))[0]
        with pytest.raises(UnroutedMessage, match="type='archived'") as info:
            await router(message)
        assert isinstance(info.value, ValueError)
        assert message.message_id in str(info.value)
        assert (info.value.message_id, info.value.value) == (message.message_id, "archived")

    async def test_missing_attribute_raises_saying_so(self) -> None:
        """A message without the attribute fails with a text that says it is missing."""
        router = Router()
        router.route("created")(lambda message: None)
        with pytest.raises(UnroutedMessage, match="'type' is missing") as info:
            await router(receive({"other": {"DataType": "String", "StringValue": "x"}})[0])
        assert info.value.value is None

    async def test_binary_attribute_has_no_type(self) -> None:
        """A Binary attribute has no StringValue, so it does not name a route."""
        router = Router()
        router.route("created")(lambda message: None)
        binary = {"type": {"DataType": "Binary", "BinaryValue": b"created"}}
        with pytest.raises(UnroutedMessage, match="missing"):
            await router(receive(binary)[0])

    async def test_unrouted_message_is_not_deleted(self) -> None:
        """In a consumer, an unrouted message fails and stays in the queue; routed ones go."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="ok", MessageAttributes=typed("created"))
        sqs.send_message(QueueUrl=url, MessageBody="lost?", MessageAttributes=typed("archived"))
        router = Router()
        router.route("created")(lambda message: None)
        options = ConsumerOptions(queue_url=url, client=sqs, wait_time_seconds=1, retry=None)
        consumer = Consumer(router, options)
        async with running(consumer):
            await wait_for(lambda: consumer.stats().failed == 1 and consumer.stats().deleted == 1)
        assert sqs.all_messages(url) == ["lost?"]


class TestRegistration:
    def test_route_returns_the_function_unchanged(self) -> None:
        """The decorator registers the handler and gives back the very same object."""
        router = Router()

        async def created(message: Message) -> None: ...

        assert router.route("created")(created) is created
        assert router.routes["created"] is created

    def test_same_name_twice_raises(self) -> None:
        """Registering a second handler for one type is a ValueError naming the type."""
        router = Router()
        router.route("created")(lambda message: None)
        with pytest.raises(ValueError, match="type='created' already routes"):
            router.route("created")(lambda message: None)

    def test_routes_is_a_read_only_live_view(self) -> None:
        """`routes` cannot be changed through, and shows routes added later."""
        router = Router()
        routes = router.routes
        with pytest.raises(TypeError):
            routes["x"] = print  # type: ignore[index]
        router.route("later")(print)
        assert dict(routes) == {"later": print}

    def test_bad_arguments_raise_type_error(self) -> None:
        """Non-str names, non-callable handlers, a bad attribute or default are TypeErrors."""
        router = Router()
        with pytest.raises(TypeError, match="str"):
            router.route(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callable"):
            router.route("x")("not a function")  # type: ignore[type-var]
        with pytest.raises(TypeError, match="attribute"):
            Router(attribute="")
        with pytest.raises(TypeError, match="default"):
            Router(default="nope")  # type: ignore[arg-type]

    def test_generator_functions_are_refused_at_registration(self) -> None:
        """As Consumer refuses them: calling one only makes a generator, the body never runs."""

        def sync_gen(message: Message) -> Any:
            yield message

        async def async_gen(message: Message) -> Any:
            yield message

        router = Router()
        with pytest.raises(TypeError, match=r"route\('a'\) handler .*sync_gen.* generator"):
            router.route("a")(sync_gen)
        with pytest.raises(TypeError, match="async generator function"):
            router.route("b")(async_gen)
        with pytest.raises(TypeError, match="Router default handler .*generator"):
            Router(default=sync_gen)
        assert router.routes == {}

    def test_properties_and_repr(self) -> None:
        """attribute and default read back; the repr lists the routes."""
        router = Router(attribute="kind", default=print)
        router.route("b")(print)
        router.route("a")(print)
        assert (router.attribute, router.default) == ("kind", print)
        assert repr(router) == "Router(attribute='kind', routes=['a', 'b'])"
