"""Federation's ground floor: this node's identity, the peers it trusts, and signed node-to-node calls.

    identity = load_identity(settings)                    # archive node init --url URL
    add_peer(settings, url, fingerprint)                  # archive peers add URL --fingerprint FP
    client.get(url, auth=SignatureAuth(identity))         # an RFC 9421-signed call
    verify_request(method, url, headers, body, ...)       # the receiving side

Query fan-out and merge live in :mod:`search.federation`; the HTTP routes in
:mod:`access_portal.routes.federation`.
"""

from __future__ import annotations

from archive.federation import models as models  # registers the tables on archive.models.Base
from archive.federation.errors import SignatureRejected
from archive.federation.identity import NodeIdentity, has_identity, init_identity, load_identity
from archive.federation.models import Peer
from archive.federation.peers import add_peer, list_peers, remove_peer
from archive.federation.signing import SignatureAuth, sign_request, verify_request

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
