"""RFC 9421 HTTP Message Signatures between nodes (Ed25519), built with the maintained
``http-message-signatures`` package; nothing here assembles a signature base by hand.

Every signed call covers ``@method``, ``@authority`` and ``@target-uri``, and ``content-digest`` (RFC 9530,
sha-256) when it has a body; its parameters are ``created``, ``expires`` (at most :data:`MAX_LIFETIME`
seconds later), a random ``nonce``, ``keyid`` (the signing node's id) and ``alg="ed25519"``.

:func:`verify_request` checks, in this order, and raises the first failure as a
:class:`~archive.federation.errors.SignatureRejected` subclass (answered 401 with that ``reason``):

1. ``missing``     — no ``Signature`` / ``Signature-Input`` header;
2. ``malformed``   — not one parseable signature, a parameter missing or of the wrong type, a required
   component not covered, or a lifetime over 300 s;
3. ``expired``     — ``expires`` has passed or ``created`` lies in the future (5 s clock skew allowed);
4. ``unknown-key`` — ``keyid`` names no peer of this node;
5. ``bad-signature`` — the signature does not verify (a header, the URL, the method or the body — through
   its content digest — was changed, or another key signed it);
6. ``replayed``    — the nonce was seen before (checked last, so a forged call cannot burn a nonce).

The verifier rebuilds the URL the caller signed from this node's **public** URL (``archive node init
--url``) and the raw request path, so the check holds behind a TLS-terminating reverse proxy, and a call
signed for one node cannot be replayed to another.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import http_sf
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from archive.federation.errors import (
    BadSignature,
    SignatureExpired,
    SignatureMalformed,
    SignatureMissing,
    SignatureReplayed,
    UnknownKey,
)
from archive.federation.identity import NodeIdentity

MAX_LIFETIME = 300
CLOCK_SKEW = 5
LABEL = "node"
COMPONENTS = ("@method", "@authority", "@target-uri")
ALG = algorithms.ED25519


class _Keys(HTTPSignatureKeyResolver):
    def __init__(
        self, private: Ed25519PrivateKey | None = None, public: Ed25519PublicKey | None = None
    ) -> None:
        self.private, self.public = private, public

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert self.private is not None
        return self.private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self.public


def sign_request(
    request: httpx.Request, identity: NodeIdentity, ttl: int = 60, *, now: float | None = None
) -> None:
    """Add ``Signature-Input``, ``Signature`` (and ``Content-Digest`` when there is a body) to ``request``;
    ``now`` backdates the signature (tests of expiry)."""
    ttl = max(1, min(ttl, MAX_LIFETIME))
    now = int(time.time() if now is None else now)
    body = request.content  # bytes of a non-streaming request
    signer = HTTPMessageSigner(signature_algorithm=ALG)
    # The library builds the signature base (``prepare``); we sign its bytes and set the two headers from its
    # serialised parameters. ``sign()`` would do the same and then rebuild the base once more to check that
    # the message did not change in between — it cannot here — which doubles the cost of a signature.
    prepared = signer.prepare(
        request,
        key_id=identity.node_id,
        created=dt.datetime.fromtimestamp(now, dt.UTC),
        expires=dt.datetime.fromtimestamp(now + ttl, dt.UTC),
        nonce=secrets.token_urlsafe(18),
        label=LABEL,
        covered_component_ids=COMPONENTS,
        body=body if body else None,
    )
    signature = identity.private_key.sign(prepared.signature_base)
    request.headers["Signature-Input"] = f"{prepared.label}={prepared.signature_params}"
    request.headers["Signature"] = f"{prepared.label}=:{base64.b64encode(signature).decode()}:"


class SignatureAuth(httpx.Auth):
    """httpx authentication that signs each request with the node's key."""

    requires_request_body = True

    def __init__(self, identity: NodeIdentity, ttl: int = 60) -> None:
        self.identity, self.ttl = identity, ttl

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self.identity, self.ttl)
        yield request


@dataclass(frozen=True)
class _Headers:
    pairs: list[tuple[str, str]]

    def items(self) -> list[tuple[str, str]]:
        return self.pairs


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: _Headers


@dataclass(frozen=True)
class VerifiedCall:
    key_id: str
    nonce: str
    created: int
    expires: int


def _header(pairs: Iterable[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in pairs if k.lower() == name]
    return ", ".join(values) if values else None


_SIGNATURE = re.compile(r"\s*([a-z*][a-z0-9_.*-]*)=:[A-Za-z0-9+/]*={0,2}:\s*")


def _parse(sig_input: str, signature: str) -> tuple[list[str], dict[str, Any]]:
    """Covered component names and parameters of the one signature, or :class:`SignatureMalformed`.
    (``Signature`` is only checked for shape here; the library decodes it when it verifies.)"""
    try:
        inputs: Any = http_sf.parse(sig_input.encode(), tltype="dictionary")
    except Exception:
        raise SignatureMalformed("unparseable Signature-Input") from None
    sig = _SIGNATURE.fullmatch(signature)
    if sig is None:
        raise SignatureMalformed("Signature must be one label with a byte sequence")
    if not isinstance(inputs, dict) or len(inputs) != 1:
        raise SignatureMalformed("exactly one signature expected")
    if set(inputs) != {sig.group(1)}:
        raise SignatureMalformed("Signature-Input and Signature labels differ")
    (member, params), *_ = inputs.values()
    if not isinstance(member, list):
        raise SignatureMalformed("not a signature")
    covered = [item[0] for item in member if isinstance(item, tuple | list)]
    if not all(isinstance(c, str) for c in covered):
        raise SignatureMalformed("component names must be strings")
    return covered, dict(params)


def verify_request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    public_key: Callable[[str], Ed25519PublicKey | None],
    remember_nonce: Callable[[str, str, dt.datetime], bool],
    now: float | None = None,
) -> VerifiedCall:
    """Verify a signed node-to-node call (see the module docstring); ``url`` is the absolute URL as the
    caller addressed this node. ``public_key`` looks a key id up among the peers; ``remember_nonce`` stores
    a nonce until the given time and answers False when it was already there."""
    pairs = list(headers)
    sig_input, signature = _header(pairs, "signature-input"), _header(pairs, "signature")
    if sig_input is None and signature is None:
        raise SignatureMissing()
    if sig_input is None or signature is None:
        raise SignatureMalformed("Signature and Signature-Input must both be present")
    covered, params = _parse(sig_input, signature)
    created, expires = params.get("created"), params.get("expires")
    nonce, key_id = params.get("nonce"), params.get("keyid")
    if type(created) is not int or type(expires) is not int:
        raise SignatureMalformed("created and expires must be integers")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise SignatureMalformed("a nonce of 8 to 128 characters is required")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureMalformed("keyid is required")
    if params.get("alg", ALG.algorithm_id) != ALG.algorithm_id:
        raise SignatureMalformed("only ed25519 signatures are accepted")
    required = list(COMPONENTS) + (["content-digest"] if body else [])
    missing = [c for c in required if c not in covered]
    if missing:
        raise SignatureMalformed("not covered: " + ", ".join(missing))
    if not 0 < expires - created <= MAX_LIFETIME:
        raise SignatureMalformed(f"lifetime must be 1 to {MAX_LIFETIME} seconds")
    t = time.time() if now is None else now
    if expires < t - CLOCK_SKEW or created > t + CLOCK_SKEW:
        raise SignatureExpired()
    key = public_key(key_id)
    if key is None:
        raise UnknownKey(key_id)
    verifier = HTTPMessageVerifier(signature_algorithm=ALG, key_resolver=_Keys(public=key))
    try:
        verifier.verify(
            _Message(method.upper(), url, _Headers(pairs)),
            max_age=dt.timedelta(seconds=MAX_LIFETIME + CLOCK_SKEW),
            body=body if body else None,  # coverage of ``required`` was checked above, on the same input
        )
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise BadSignature(str(exc)[:200]) from None
    if not remember_nonce(key_id, nonce, dt.datetime.fromtimestamp(expires + CLOCK_SKEW, dt.UTC)):
        raise SignatureReplayed()
    return VerifiedCall(key_id, nonce, created, expires)
