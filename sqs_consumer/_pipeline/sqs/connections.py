"""`Connections`: the lean client's keep-alive HTTP(S) connections, one per calling thread,
straight on `http.client` (see `lean.py`)."""

from __future__ import annotations

import http.client
import ssl
import threading
import weakref
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import SSLError as BotocoreSSLError
from botocore.httpsession import get_cert_path

__all__ = ["Connections"]


class Connections:
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
    def for_session(cls, session: Any, url: str, config: Any) -> Connections | None:
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
