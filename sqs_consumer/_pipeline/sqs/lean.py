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
speaks SQS's JSON protocol. Its two parts are beside it: `sigv4.py` signs the requests and
`connections.py` keeps one keep-alive connection per calling thread.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore
from botocore.awsrequest import AWSRequest, HeadersDict
from botocore.endpoint import convert_to_response_dict

from .connections import Connections
from .sigv4 import SigV4

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
        self._sigv4 = SigV4.for_signer(self._signer, self._url)
        self._http = client._endpoint.http_session
        self._connections = Connections.for_session(self._http, self._url, client.meta.config)
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
