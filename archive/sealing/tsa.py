"""RFC 3161 time-stamp tokens: asking the TSA (``ARCHIVE_TSA_URL``) and checking a token.

The protocol objects come from ``rfc3161-client`` (requests with a nonce and ``certReq``, SHA-512 imprints);
the HTTP exchange is a plain ``POST`` of ``application/timestamp-query``. A token is checked against the
trust store ``ARCHIVE_TSA_TRUST`` (PEM CA certificates): the CMS signature, the TSA certificate's chain to a
trusted root (valid at the token's time), its critical ``timeStamping`` EKU, and the imprint.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import httpx
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from archive.config import Settings
from archive.sealing.errors import BadTrustStore, NoTsa, TsaRejected, TsaUnavailable

CONTENT_TYPE = "application/timestamp-query"


def request_token(settings: Settings, data: bytes, *, client: httpx.Client | None = None) -> bytes:
    """A TimeStampResp (DER) from the TSA over SHA-512 of ``data``; checked for status, imprint and nonce."""
    if not settings.tsa_url:
        raise NoTsa()
    request = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA512).build()
    try:
        if client is None:
            with httpx.Client(timeout=settings.tsa_timeout) as own:
                answer = own.post(
                    settings.tsa_url, content=request.as_bytes(), headers={"Content-Type": CONTENT_TYPE}
                )
        else:
            answer = client.post(
                settings.tsa_url, content=request.as_bytes(), headers={"Content-Type": CONTENT_TYPE}
            )
    except httpx.HTTPError as exc:
        raise TsaUnavailable(url=settings.tsa_url, reason=exc) from None
    if answer.status_code >= 500:
        raise TsaUnavailable(url=settings.tsa_url, reason=f"HTTP {answer.status_code}")
    if answer.status_code != 200:
        raise TsaRejected(url=settings.tsa_url, reason=f"HTTP {answer.status_code}")
    try:
        response = decode_timestamp_response(answer.content)
    except ValueError as exc:
        raise TsaRejected(url=settings.tsa_url, reason=exc) from None
    if PKIStatus(response.status) not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TsaRejected(url=settings.tsa_url, reason=f"status {response.status} {response.status_string}")
    if response.tst_info.message_imprint.message != hashlib.sha512(data).digest():
        raise TsaRejected(url=settings.tsa_url, reason="the token's imprint is not our digest")
    if request.nonce is not None and response.tst_info.nonce != request.nonce:
        raise TsaRejected(url=settings.tsa_url, reason="the token's nonce is not our request's")
    return answer.content


@cache
def _roots(path: Path, _stamp: int) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise BadTrustStore(path=path, reason=exc) from None


def trust_roots(settings: Settings) -> tuple[x509.Certificate, ...]:
    if settings.tsa_trust is None:
        return ()
    try:
        stamp = settings.tsa_trust.stat().st_mtime_ns
    except OSError as exc:
        raise BadTrustStore(path=settings.tsa_trust, reason=exc) from None
    return _roots(settings.tsa_trust, stamp)


def token_imprint(token: bytes) -> bytes:
    """The digest a stored TimeStampResp vouches for (raises ValueError on a token that cannot be read)."""
    return bytes(decode_timestamp_response(token).tst_info.message_imprint.message)


def token_time(token: bytes) -> str:
    return decode_timestamp_response(token).tst_info.gen_time.isoformat()


def check_token(settings: Settings, token: bytes, digest: bytes) -> tuple[str, str] | None:
    """None if ``token`` is a good token over ``digest``; else (kind, reason) with kind ``imprint`` (it vouches
    for another digest) or ``invalid`` (unreadable, bad signature, untrusted or missing chain)."""
    try:
        response = decode_timestamp_response(token)
    except ValueError as exc:
        return "invalid", f"unreadable token: {exc}"
    if bytes(response.tst_info.message_imprint.message) != digest:
        return "imprint", "imprint differs"
    roots = trust_roots(settings)
    if not roots:
        return "invalid", "no trust store (ARCHIVE_TSA_TRUST) to check the TSA certificate against"
    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(response, digest)
    except (VerificationError, ValueError) as exc:
        return "invalid", str(exc)
    return None
