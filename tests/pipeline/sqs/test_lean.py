"""The short path for the per-message calls answers exactly as boto3 does (moto's server)."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sqs_consumer._pipeline.sqs import build_client
from sqs_consumer._pipeline.sqs.lean import LeanClient, lean
from sqs_consumer.errors import ErrorKind, classify, error_code
from sqs_consumer.testing import MemorySQS
from tests.conftest import REGION, unique_name

ATTRIBUTES = {
    "text": {"DataType": "String", "StringValue": "héllo"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"},
    "n": {"DataType": "Number", "StringValue": "42"},
}


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


@pytest.fixture
def short(moto_sqs: Any) -> LeanClient:
    client = lean(moto_sqs)
    assert isinstance(client, LeanClient)
    return client


def test_receive_returns_what_boto3_returns(moto_sqs: Any, short: LeanClient) -> None:
    """Bodies, system attributes and message attributes (binary ones decoded to bytes)."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    moto_sqs.send_message(QueueUrl=url, MessageBody="b\u00f6dy", MessageAttributes=ATTRIBUTES)
    options = {"QueueUrl": url, "AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
    ours = short.receive_message(VisibilityTimeout=0, **options)
    theirs = moto_sqs.receive_message(VisibilityTimeout=0, **options)
    assert ours["Messages"][0]["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\xffbytes"
    for message in (*ours["Messages"], *theirs["Messages"]):
        # These differ from one receive to the next.
        message.pop("ReceiptHandle")
        message["Attributes"].pop("ApproximateReceiveCount")
    assert _without_metadata(ours) == _without_metadata(theirs)


def test_an_empty_receive_has_no_messages(moto_sqs: Any, short: LeanClient) -> None:
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    assert not short.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")


def test_batch_deletes_and_visibility_changes_answer_as_boto3(
    moto_sqs: Any, short: LeanClient
) -> None:
    """Successful and Failed entries, with the codes boto3 reports."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    for i in range(3):
        moto_sqs.send_message(QueueUrl=url, MessageBody=str(i))
    handles = [
        m["ReceiptHandle"]
        for m in moto_sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert len(handles) == 3
    changed = short.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[{"Id": "0", "ReceiptHandle": handles[0], "VisibilityTimeout": 0}],
    )
    assert [e["Id"] for e in changed["Successful"]] == ["0"]
    deleted = short.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "1", "ReceiptHandle": handles[1]},
            {"Id": "2", "ReceiptHandle": handles[2]},
            {"Id": "bad", "ReceiptHandle": "not-a-handle"},
        ],
    )
    theirs = moto_sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "bad", "ReceiptHandle": "not-a-handle"}]
    )
    assert sorted(e["Id"] for e in deleted["Successful"]) == ["1", "2"]
    assert deleted["Failed"] == theirs["Failed"]
    # The one made visible again is all that is left.
    left = moto_sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in left] == ["0"]


def test_errors_are_the_exceptions_boto3_raises(moto_sqs: Any, short: LeanClient) -> None:
    """Same class, same code, same classification (a missing queue is fatal)."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"] + "-missing"
    with pytest.raises(ClientError) as ours:
        short.receive_message(QueueUrl=url)
    with pytest.raises(ClientError) as theirs:
        moto_sqs.receive_message(QueueUrl=url)
    assert type(ours.value) is type(theirs.value)
    assert isinstance(ours.value, moto_sqs.exceptions.QueueDoesNotExist)
    assert error_code(ours.value) == error_code(theirs.value)
    assert ours.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert classify(ours.value) is ErrorKind.FATAL


def test_a_connection_failure_is_botocores_transient_error() -> None:
    client = lean(boto3.client("sqs", endpoint_url="http://127.0.0.1:1", region_name=REGION))
    with pytest.raises(EndpointConnectionError) as raised:
        client.receive_message(QueueUrl="http://127.0.0.1:1/123456789012/q")
    assert classify(raised.value) is ErrorKind.TRANSIENT


def test_other_calls_are_the_clients_own(moto_sqs: Any, short: LeanClient) -> None:
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    attributes = short.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    assert attributes["Attributes"]["QueueArn"].endswith(url.rsplit("/", 1)[1])
    assert short.meta is moto_sqs.meta


def test_only_botocore_json_clients_take_the_short_path(moto_endpoint: str) -> None:
    """A fake, a stub or MemorySQS is used as it is."""
    memory = MemorySQS()
    assert lean(memory) is memory
    other = object()
    assert lean(other) is other
    built = build_client(
        f"{moto_endpoint}/123456789012/q",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        max_connections=2,
        read_timeout=5,
    )
    assert not isinstance(built, LeanClient)  # the producer's: boto3 as it is
    assert isinstance(
        build_client(
            f"{moto_endpoint}/123456789012/q",
            endpoint_url=moto_endpoint,
            region_name=REGION,
            max_connections=2,
            read_timeout=5,
            lean=True,
        ),
        LeanClient,
    )


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize(
    "endpoint",
    [
        "https://sqs.eu-west-1.amazonaws.com",
        "http://127.0.0.1:4566",
        "https://Example.internal:443/sqs-proxy/",
        "http://[::1]:9324",
    ],
)
def test_our_signature_is_botocores(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, token: str | None
) -> None:
    """Byte for byte the Authorization header botocore computes for the same request."""
    import datetime

    import botocore.auth
    from botocore.awsrequest import AWSRequest

    import sqs_consumer._pipeline.sqs.sigv4 as sigv4

    moment = datetime.datetime(2026, 12, 3, 23, 59, 58, tzinfo=datetime.UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: moment)
    monkeypatch.setattr(sigv4, "_now", lambda: moment)
    client = boto3.session.Session().client(
        "sqs",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
    )
    short = lean(client)
    assert isinstance(short, LeanClient) and short._sigv4 is not None
    body = b'{"QueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/q  x", "N": 10}'
    headers = {**short._headers, "X-Amz-Target": "AmazonSQS.ReceiveMessage"}
    theirs = AWSRequest(method="POST", url=short._url, data=body, headers=dict(headers))
    client._request_signer.sign("ReceiveMessage", theirs)
    short._sigv4.sign(headers, body)
    assert headers["Authorization"] == theirs.headers["Authorization"]
    assert headers.get("X-Amz-Security-Token") == theirs.headers.get("X-Amz-Security-Token")
    assert headers["X-Amz-Date"] == theirs.headers["X-Amz-Date"]
    # And the key kept for the day still signs the next request the same way.
    again = {**short._headers, "X-Amz-Target": "AmazonSQS.ReceiveMessage"}
    short._sigv4.sign(again, body)
    assert again["Authorization"] == headers["Authorization"]


# -- the HTTP connections ------------------------------------------------------------------


class _Server:
    """A keep-alive HTTP/1.1 server on loopback that answers every POST with `answer`."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.peers: list[int] = []  # the client port of every request
        self.answer: tuple[int, bytes] = (200, b'{"Successful": [], "Failed": []}')
        self.stall = threading.Event()  # set: answer nothing (a hung server)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.peers.append(self.client_address[1])
                if server.stall.is_set():
                    time.sleep(2)  # a hung server: silent past the client's read timeout
                    return
                status, body = server.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                if status >= 300:
                    self.send_header("x-amzn-query-error", "InternalError;Receiver")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


_OPEN: list[LeanClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _lean_for(endpoint: str, **kwargs: Any) -> LeanClient:
    client = lean(
        boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="a",
            aws_secret_access_key="b",
            **kwargs,
        )
    )
    assert isinstance(client, LeanClient)
    _OPEN.append(client)
    return client


def _delete(client: LeanClient) -> dict[str, Any]:
    return client.delete_message_batch(QueueUrl="http://q/1/q", Entries=[])


def test_a_thread_keeps_its_connection_while_the_server_does(server: _Server) -> None:
    client = _lean_for(f"http://127.0.0.1:{server.port}")
    assert client._connections is not None
    for _ in range(3):
        assert _delete(client) == {"Successful": [], "Failed": []}
    assert len(server.peers) == 3 and len(set(server.peers)) == 1
    # Another thread has a connection of its own.
    other = threading.Thread(target=_delete, args=(client,))
    other.start()
    other.join()
    assert len(set(server.peers)) == 2


def test_a_connection_the_server_closed_is_replaced_without_an_error(server: _Server) -> None:
    client = _lean_for(f"http://127.0.0.1:{server.port}")
    _delete(client)
    connection = client._connections._local.held.connection  # type: ignore[union-attr]
    connection.sock.shutdown(socket.SHUT_RDWR)  # as if the server closed it while idle
    assert _delete(client) == {"Successful": [], "Failed": []}
    assert len(set(server.peers)) == 2


def test_a_server_error_is_botocores_client_error(server: _Server) -> None:
    server.answer = (500, b'{"__type": "InternalError", "message": "boom"}')
    client = _lean_for(f"http://127.0.0.1:{server.port}")
    with pytest.raises(ClientError) as raised:
        _delete(client)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error_code(raised.value) == "InternalError"
    assert classify(raised.value) is ErrorKind.TRANSIENT
    server.answer = (200, b"{}")
    assert _delete(client) == {}  # the connection is still good


def test_a_hung_server_is_a_read_timeout(server: _Server) -> None:
    from botocore.config import Config
    from botocore.exceptions import ReadTimeoutError

    server.stall.set()
    client = _lean_for(f"http://127.0.0.1:{server.port}", config=Config(read_timeout=0.2))
    with pytest.raises(ReadTimeoutError) as raised:
        _delete(client)
    assert classify(raised.value) is ErrorKind.TRANSIENT


def test_https_verifies_the_servers_certificate(tmp_path: Any) -> None:
    import trustme
    from botocore.exceptions import SSLError

    authority = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(tls)
    secure = _Server(tls=tls)
    try:
        endpoint = f"https://127.0.0.1:{secure.port}"
        bundle = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(bundle))
        trusting = _lean_for(endpoint, verify=str(bundle))
        assert trusting._connections is not None
        assert _delete(trusting) == {"Successful": [], "Failed": []}
        assert _delete(trusting) == {"Successful": [], "Failed": []}
        assert len(set(secure.peers)) == 1  # kept alive over TLS too
        with pytest.raises(SSLError):
            _delete(_lean_for(endpoint))  # the system's authorities do not know this one
        assert _delete(_lean_for(endpoint, verify=False)) == {"Successful": [], "Failed": []}
    finally:
        secure.close()


def test_a_proxy_or_a_client_certificate_keeps_botocores_http(server: _Server) -> None:
    from botocore.config import Config

    endpoint = f"http://127.0.0.1:{server.port}"
    proxied = _lean_for(endpoint, config=Config(proxies={"http": "http://127.0.0.1:1"}))
    assert proxied._connections is None
    certified = _lean_for(endpoint, config=Config(client_cert="/nonexistent/cert.pem"))
    assert certified._connections is None
