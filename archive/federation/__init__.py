"""Federation's ground floor: this node's identity, the peers it trusts, and signed node-to-node calls.

    identity = load_identity(settings)                    # archive node init --url URL
    add_peer(settings, url, fingerprint)                  # archive peers add URL --fingerprint FP
    client.get(url, auth=SignatureAuth(identity))         # an RFC 9421-signed call
    verify_request(method, url, headers, body, ...)       # the receiving side

Query fan-out and merge live in :mod:`search.federation`; the HTTP routes in
:mod:`access_portal.routes.federation`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.federation.errors import SignatureRejected
    from archive.federation.identity import NodeIdentity, has_identity, init_identity, load_identity
    from archive.federation.models import Peer
    from archive.federation.peers import add_peer, list_peers, remove_peer
    from archive.federation.signing import SignatureAuth, sign_request, verify_request

# Loaded on first use, not at import: every `archive` command imports this package's CLI module, and the
# models, keys and HTTP client behind these names (SQLAlchemy, cryptography, httpx: ~0.18 s) would otherwise
# be paid by commands that never federate, such as `archive validate`.
_HOME = {
    "SignatureRejected": "errors",
    "NodeIdentity": "identity",
    "has_identity": "identity",
    "init_identity": "identity",
    "load_identity": "identity",
    "Peer": "models",
    "add_peer": "peers",
    "list_peers": "peers",
    "remove_peer": "peers",
    "SignatureAuth": "signing",
    "sign_request": "signing",
    "verify_request": "signing",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "NodeIdentity",
    "Peer",
    "SignatureAuth",
    "SignatureRejected",
    "add_peer",
    "has_identity",
    "init_identity",
    "list_peers",
    "load_identity",
    "remove_peer",
    "sign_request",
    "verify_request",
]
