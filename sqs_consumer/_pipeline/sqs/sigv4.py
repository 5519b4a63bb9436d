"""`SigV4`: Signature Version 4 for the lean client's one request shape, without botocore's
per-request generality (see `lean.py`)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SIGV4_TIMESTAMP

__all__ = ["SigV4"]


class SigV4:
    """Signature Version 4 for our one request shape (POST, no query, a JSON body).

    botocore's signer spends about a tenth of a millisecond per request on generality
    (parsing the URL, normalising every header, deriving the key); ours signs the same
    bytes — `tests/pipeline/sqs/test_lean.py` checks it against botocore's signature — with the
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
    def for_signer(cls, signer: Any, url: str) -> SigV4 | None:
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
