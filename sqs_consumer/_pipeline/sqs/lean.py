"""`LeanClient`: the consumer's three per-message SQS calls without botocore's per-call machinery.

A botocore call spends about a millisecond of CPU before and after the network: an event
system of about ten hooks, a model-driven serializer and parser, endpoint rules, a retry
handler. For ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch, the calls
a consumer makes per message, we keep what matters and skip the rest: the body is JSON we
write (SQS's JSON protocol is the shape boto3 returns), the request is signed by the
client's own signer (its credentials, refreshed as botocore refreshes them) and sent through
the client's own HTTP session (its connection pool, TLS, proxies and timeouts), to the URL
botocore itself resolved for the client. Errors are parsed by botocore's parser into the very
exception classes the client raises. Every other method is the client's own.

Used only for clients the consumer builds itself (never a client the user passes in, which
may carry event hooks or a Stubber that this path would bypass), and only when the client
speaks SQS's JSON protocol.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import ssl
import threading
import weakref
from typing import Any
from urllib.parse import quote, urlsplit

import botocore
from botocore.auth import SIGV4_TIMESTAMP
from botocore.awsrequest import AWSRequest, HeadersDict
from botocore.endpoint import convert_to_response_dict
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import SSLError as BotocoreSSLError
from botocore.httpsession import get_cert_path

__all__ = ["LeanClient", "lean"]

_CONTENT_TYPE = "application/x-amz-json-1.0"


class LeanClient:
    """A boto3 SQS client whose per-message calls take the short path (see the module).

    Args:
        client: a botocore SQS client speaking the JSON protocol.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        endpoint = client.meta.endpoint_url
        self._url = endpoint if endpoint.endswith("/") else endpoint + "/"  # as botocore's
        self._signer = client._request_signer
        self._sigv4 = _SigV4.for_signer(self._signer, self._url)
        self._http = client._endpoint.http_session
        self._connections = _Connections.for_session(self._http, self._url, client.meta.config)
        self._parser = client._response_parser
        self._model = client.meta.service_model
        self._headers = {
            "Content-Type": _CONTENT_TYPE,
            "x-amzn-query-mode": "true",  # errors carry the query protocol's codes too
            "User-Agent": f"sqs-consumer botocore/{botocore.__version__}",
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def close(self) -> None:
        """Close our connections and the client's own."""
        if self._connections is not None:
            self._connections.close()
        self._client.close()

    def receive_message(self, **params: Any) -> dict[str, Any]:
        """ReceiveMessage (binary attribute values decoded, as boto3 returns them)."""
        response = self._call("ReceiveMessage", params)
        for message in response.get("Messages") or ():
            for value in (message.get("MessageAttributes") or {}).values():
                _decode_binary(value)
        return response

    def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        """DeleteMessageBatch."""
        return self._call("DeleteMessageBatch", params)

    def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        """ChangeMessageVisibilityBatch."""
        return self._call("ChangeMessageVisibilityBatch", params)

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params).encode()
        headers = {**self._headers, "X-Amz-Target": f"AmazonSQS.{operation}"}
        if self._sigv4 is not None and self._connections is not None:
            self._sigv4.sign(headers, body)
            status, answer_headers, content = self._connections.post(headers, body)
            if status < 300:
                return json.loads(content) if content else {}
            answer = {
                "headers": HeadersDict(answer_headers.items()),
                "status_code": status,
                "body": content,
            }
            raise self._error(operation, answer)
        if self._sigv4 is not None:
            self._sigv4.sign(headers, body)
        request = AWSRequest(method="POST", url=self._url, data=body, headers=headers)
        if self._sigv4 is None:
            self._signer.sign(operation, request)
        response = self._http.send(request.prepare())
        if response.status_code < 300:
            content = response.content
            return json.loads(content) if content else {}
        model = self._model.operation_model(operation)
        raise self._error(operation, convert_to_response_dict(response, model))

    def _error(self, operation: str, answer: dict[str, Any]) -> Exception:
        """The exception boto3 raises for this answer (botocore parses it: errors are rare)."""
        model = self._model.operation_model(operation)
        answer.setdefault("context", {"operation_name": operation})
        parsed = self._parser.parse(answer, model.output_shape)
        error = parsed.get("Error") or {}
        code = error.get("QueryErrorCode") or error.get("Code")
        exception: Exception = self._client.exceptions.from_code(code)(parsed, operation)
        return exception


class _SigV4:
    """Signature Version 4 for our one request shape (POST, no query, a JSON body).

    botocore's signer spends about a tenth of a millisecond per request on generality
    (parsing the URL, normalising every header, deriving the key); ours signs the same
    bytes — `tests/test_fastpath.py` checks it against botocore's signature — with the
    derived key kept for the day, as AWS's scheme allows. The credentials are botocore's
    own object, so refreshed credentials (roles, SSO) are picked up on every request.
    """

    def __init__(self, credentials: Any, region: str, service: str, url: str) -> None:
        self._credentials = credentials
        self._region = region
        self._service = service
        self._host = _host(url)
        self._path = quote(urlsplit(url).path or "/", safe="/~")
        self._key: tuple[str, str, bytes] | None = None  # (secret, date, derived key)

    @classmethod
    def for_signer(cls, signer: Any, url: str) -> _SigV4 | None:
        """Ours when the client signs plain SigV4 with credentials; else None (botocore's)."""
        credentials = getattr(signer, "_credentials", None)
        region = getattr(signer, "_region_name", None)
        service = getattr(signer, "_signing_name", None)
        version = getattr(signer, "_signature_version", None)
        if credentials is None or not region or not service or version != "v4":
            return None
        return cls(credentials, region, service, url)

    def sign(self, headers: dict[str, str], body: bytes) -> None:
        """Add Host, X-Amz-Date, the session token if any, and Authorization to `headers`."""
        frozen = self._credentials.get_frozen_credentials()
        stamp = _now().strftime(SIGV4_TIMESTAMP)
        date = stamp[:8]
        headers["Host"] = self._host
        headers["X-Amz-Date"] = stamp
        if frozen.token:
            headers["X-Amz-Security-Token"] = frozen.token
        signed = sorted(
            (name.lower(), " ".join(value.split()))
            for name, value in headers.items()
            if name.lower() != "user-agent"
        )
        names = ";".join(name for name, _ in signed)
        canonical = "\n".join(
            (
                "POST",
                self._path,
                "",
                "".join(f"{name}:{value}\n" for name, value in signed),
                names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{date}/{self._region}/{self._service}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(self._signing_key(frozen.secret_key, date), to_sign.encode(), "sha256")
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature.hexdigest()}"
        )

    def _signing_key(self, secret: str, date: str) -> bytes:
        if self._key is not None and self._key[0] == secret and self._key[1] == date:
            return self._key[2]
        key = f"AWS4{secret}".encode()
        for part in (date, self._region, self._service, "aws4_request"):
            key = hmac.new(key, part.encode(), "sha256").digest()
        self._key = (secret, date, key)
        return key


class _Connections:
    """One keep-alive HTTP(S) connection per calling thread, straight on `http.client`.

    botocore's HTTP session (urllib3 under it) costs about 0.2 ms of CPU per request on
    bookkeeping: a proxy lookup, a pool checkout, header objects. Our calls come from a
    fixed set of threads to one endpoint, so each thread keeps one connection, reused
    while the server keeps it open (AWS does). The session's own settings are kept: its
    certificate verification (`verify`), socket options and the client's timeouts; a
    session that goes through a proxy or presents a client certificate keeps botocore's
    path (`for_session` returns None). A request on a reused connection the server has
    closed meanwhile is sent once more on a fresh one, as urllib3 does. Failures are
    botocore's exceptions, so they are classified as they would be from boto3.
    """

    def __init__(
        self,
        url: str,
        *,
        context: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        socket_options: list[tuple[int, int, int]],
    ) -> None:
        parts = urlsplit(url)
        self._url = url
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if context is not None else 80)
        self._path = parts.path or "/"
        self._context = context
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._socket_options = socket_options
        self._local = threading.local()  # .held: this thread's _Held connection
        self._lock = threading.Lock()
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()

    @classmethod
    def for_session(cls, session: Any, url: str, config: Any) -> _Connections | None:
        """Connections with the settings of botocore's `session`; None where ours would
        differ from it (a proxy, a client certificate, an unknown session)."""
        try:
            proxy = session._proxy_config.proxy_url_for(url)
            verify = session._verify
            client_cert = session._cert_file
            socket_options = list(session._socket_options or ())
        except AttributeError:
            return None
        scheme = urlsplit(url).scheme
        if proxy or client_cert or scheme not in ("http", "https"):
            return None
        context = None
        if scheme == "https":
            if verify is False:
                context = ssl._create_unverified_context()
            else:
                context = ssl.create_default_context(cafile=get_cert_path(verify))
        return cls(
            url,
            context=context,
            connect_timeout=float(config.connect_timeout),
            read_timeout=float(config.read_timeout),
            socket_options=socket_options,
        )

    def post(self, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        """POST `body`; the answer's status, headers and body."""
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                connection.request("POST", self._path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.headers, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if reused and attempt == 1:
                    continue  # the server closed it while it was idle: a fresh one
                raise ConnectionClosedError(endpoint_url=self._url) from None
            except TimeoutError as exc:
                connection.close()
                raise ReadTimeoutError(endpoint_url=self._url, error=exc) from exc
            except ssl.SSLError as exc:
                connection.close()
                raise BotocoreSSLError(endpoint_url=self._url, error=exc) from exc
            except (OSError, http.client.HTTPException):
                connection.close()
                raise ConnectionClosedError(endpoint_url=self._url) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every thread's connection (a thread that calls again opens a new one)."""
        with self._lock:
            held = list(self._all)
        for one in held:
            one.connection.close()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, connected; and whether it was open already."""
        held: _Held | None = getattr(self._local, "held", None)
        connection = held.connection if held is not None else None
        if connection is not None and connection.sock is not None:
            return connection, True
        if connection is None:
            if self._context is not None:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._connect_timeout, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._connect_timeout
                )
            held = _Held(connection)
            self._local.held = held
            with self._lock:
                self._all.add(held)
        connection.timeout = self._connect_timeout
        try:
            connection.connect()
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self._url, error=exc) from exc
        except ssl.SSLError as exc:
            connection.close()
            raise BotocoreSSLError(endpoint_url=self._url, error=exc) from exc
        except OSError as exc:  # refused, unreachable, no such host
            raise EndpointConnectionError(endpoint_url=self._url, error=exc) from exc
        sock = connection.sock
        assert sock is not None
        for level, option, value in self._socket_options:
            sock.setsockopt(level, option, value)
        sock.settimeout(self._read_timeout)
        return connection, False


class _Held:
    """A thread's connection: closed when the thread ends (its locals go) or on `close()`."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection

    def __del__(self) -> None:
        self.connection.close()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _host(url: str) -> str:
    """The Host header botocore signs: lowercase, no userinfo, no default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def lean(client: Any) -> Any:
    """`client` on the short path when it is a botocore client speaking SQS's JSON
    protocol; otherwise `client` itself."""
    try:
        protocol = client.meta.service_model.protocol
        client._request_signer, client._endpoint.http_session, client._response_parser  # noqa: B018
    except AttributeError:
        return client
    return LeanClient(client) if protocol == "json" else client


def _decode_binary(value: dict[str, Any]) -> None:
    if "BinaryValue" in value:
        value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
    if "BinaryListValues" in value:
        value["BinaryListValues"] = [base64.b64decode(v) for v in value["BinaryListValues"]]
