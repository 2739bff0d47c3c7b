"""Signed S3 uploads (PUT Object, Upload Part) sent straight over keep-alive connections.

A replica receives thousands of small files (inventories, sidecars, metadata) for every few big ones; through
the AWS SDK each PUT costs ~1.4 ms of client CPU in its per-call machinery (endpoint rules, event hooks,
parameter serialisation), on the cores the S3 server itself needs. This module keeps what matters and drops
the rest: the request is signed by botocore's own Signature V4 signer for S3 (``S3SigV4Auth``: the payload
signed over plain HTTP, ``UNSIGNED-PAYLOAD`` with the ``Content-MD5`` over HTTPS — as the SDK does), with
the credentials the SDK's chain finds, and sent with ``http.client``; the answer's status, ``ETag`` and S3
error code come back to the caller, which decides (see :class:`~archive.replicas.target.S3Target`).

A proxy named by ``HTTPS_PROXY``/``HTTP_PROXY`` (and not bypassed by ``NO_PROXY``) is used as the SDK uses
it, through a ``CONNECT`` tunnel to the endpoint (with ``user:password@`` as ``Proxy-Authorization``).

Retries: a connection that fails (reset, refused, timeout) or an answer 500/503 (``SlowDown``, ``InternalError``)
is tried again on a fresh connection, three attempts in all, with a short back-off, as the SDK's standard
retry mode does; the request is signed again each time (the signature carries the time).
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree

#: Attempts per request (the first and two retries), the SDK's standard retry mode.
ATTEMPTS = 3
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Answer:
    """What the server said: its status, the ``ETag`` (unquoted) and, for an error, its S3 code and text."""

    status: int
    etag: str
    code: str = ""
    message: str = ""


class SignedPuts:
    """PUTs of whole bodies to ``endpoint_url`` (path-style: ``/bucket/key``), signed for ``region``.

    ``credentials``: a botocore credentials object (``boto3.Session().get_credentials()``), asked for its
    current frozen value on every request, so refreshed credentials are used as they change. Safe to share
    between threads: a connection is used by one request at a time, then kept for the next."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any, *, timeout: float = 60.0) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint_url}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        default = 443 if self._https else 80
        self._host_header = parts.netloc if parts.port not in (None, default) else parts.hostname
        self._base = f"{parts.scheme}://{self._host_header}"
        self._path = parts.path.rstrip("/")
        self._region = region
        self._credentials = credentials
        self._timeout = timeout
        # the SDK's own variable for a private CA (an on-site S3 server with its own certificates)
        self._context = (
            ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE")) if self._https else None
        )
        self._proxy = _proxy_for(parts.scheme, parts.netloc)
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []  # kept alive between requests, any thread's
        weakref.finalize(self, _close_all, self._idle)

    def _acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        host, port = (self._proxy[0], self._proxy[1]) if self._proxy else (self._host, self._port)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        if self._proxy:
            default = 443 if self._https else 80
            conn.set_tunnel(self._host, self._port or default, headers=self._proxy[2])
        return conn

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        headers: dict[str, str],
        query: dict[str, str] | None = None,
    ) -> Answer:
        """PUT ``body`` as ``key`` in ``bucket`` (with ``query``: e.g. a part of a multipart upload).
        Raises ``OSError``/``http.client.HTTPException`` only when every attempt failed to get an answer;
        an answer that is not 2xx comes back as it is (after the retries for 5xx)."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        path = f"{self._path}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        if query:
            path += "?" + urlencode(sorted(query.items()), quote_via=quote, safe="~")
        for attempt in range(ATTEMPTS):
            request = AWSRequest(
                method="PUT",
                url=self._base + path,
                data=body,
                headers={**headers, "Host": self._host_header, "Content-Length": str(len(body))},
            )
            S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self._region).add_auth(request)
            try:
                answer = self._send(path, body, dict(request.headers.items()))
            except _NETWORK_ERRORS:
                _close_all(self._idle)  # kept connections are likely as stale as this one: start afresh
                if attempt == ATTEMPTS - 1:
                    raise
            else:
                if answer.status not in _RETRY_STATUS or attempt == ATTEMPTS - 1:
                    return answer
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        conn = self._acquire()
        try:
            if conn.sock is None:
                conn.connect()
                sock: socket.socket = conn.sock  # type: ignore[assignment]  # set by connect()
                # headers and body go in two sends: without this the body waits for the headers' ACK
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request("PUT", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._release(conn)
        etag = (response.getheader("ETag") or "").strip('"')
        if 200 <= response.status < 300:
            return Answer(response.status, etag)
        code, message = _s3_error(data)
        return Answer(response.status, etag, code or str(response.status), message or response.reason)

    def close(self) -> None:
        """Close the idle connections (also done when this object is collected)."""
        _close_all(self._idle)


def _close_all(idle: list[http.client.HTTPConnection]) -> None:
    while True:
        try:
            conn = idle.pop()
        except IndexError:  # emptied meanwhile by another thread
            return
        conn.close()


def endpoint_problem(endpoint_url: str) -> tuple[str, str] | None:
    """What keeps uploads to ``endpoint_url`` from working, before any is tried: ``("endpoint", url)`` when it
    is not an http(s) address, ``("proxy", proxy)`` when the environment's proxy for it is not an http://
    one (spoken to in plain HTTP, as a ``CONNECT`` tunnel needs); None when nothing does."""
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "endpoint", endpoint_url
    url = urllib.request.getproxies_environment().get(parts.scheme, "")
    plain = "://" not in url or url.lower().startswith("http://")
    if url and not plain and not urllib.request.proxy_bypass(parts.netloc):
        return "proxy", url
    return None


def _proxy_for(scheme: str, netloc: str) -> tuple[str, int, dict[str, str]] | None:
    """The proxy the environment names for this endpoint (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``
    honoured, as the SDK does): its host, port and ``Proxy-Authorization`` header; None for none."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    if not url or urllib.request.proxy_bypass(netloc):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return None
    headers: dict[str, str] = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return parts.hostname, parts.port or 80, headers  # spoken to in plain HTTP (endpoint_problem checks)


def _s3_error(data: bytes) -> tuple[str, str]:
    """The ``Code`` and ``Message`` of an S3 error document (empty when there is none)."""
    data = data[:65536]  # an error document is a few hundred bytes
    try:
        root = ElementTree.fromstring(data) if data.strip() else None
    except ElementTree.ParseError:
        return "", data[:200].decode("utf-8", "replace")
    if root is None:
        return "", ""
    return (root.findtext("Code") or "").strip(), (root.findtext("Message") or "").strip()
