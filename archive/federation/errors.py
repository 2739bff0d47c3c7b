"""Federation errors: stable ``FED…`` codes with Chinese and English messages (catalogue:
``archive/codes/federation.toml``).

Exception tree::

    ArchiveError
    ├── UsageError
    │   ├── NodeNotInitialised     this node has no identity yet (FED001)
    │   ├── BadNodeUrl             ``--url`` is not an absolute http(s) URL (FED002)
    │   └── PeerIsSelf             adding this node as its own peer (FED006)
    ├── FingerprintMismatch        the peer's key is not the one the operator was told (FED003)
    ├── PeerUnreachable            the peer's descriptor could not be fetched (FED004)
    ├── BadDescriptor              the peer answered something that is not a node descriptor (FED005)
    ├── UnknownPeer                no peer with that node id (FED007; a NotFound)
    ├── HolderUnavailable          the node holding a remote record cannot be asked now (FED008)
    └── SignatureRejected          a node-to-node call failed verification (FED009; FED010–FED015): 401
"""

from __future__ import annotations

from archive.errors import ArchiveError, NotFound, UsageError


class NodeNotInitialised(UsageError):
    code = "FED001"

    def __init__(self, home: object) -> None:
        super().__init__(home=home)


class BadNodeUrl(UsageError):
    code = "FED002"

    def __init__(self, url: str) -> None:
        super().__init__(url=url)


class FingerprintMismatch(ArchiveError):
    code = "FED003"

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(url=url, expected=expected, actual=actual)


class PeerUnreachable(ArchiveError):
    code = "FED004"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url=url, reason=reason)


class BadDescriptor(ArchiveError):
    code = "FED005"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url=url, reason=reason)


class PeerIsSelf(UsageError):
    code = "FED006"

    def __init__(self, url: str) -> None:
        super().__init__(url=url)


class UnknownPeer(NotFound):
    code = "FED007"

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id=node_id)


class SignatureRejected(ArchiveError):
    """A signed node-to-node call that is refused; answered 401 with ``reason`` in a problem document."""

    code = "FED009"
    reason = "rejected"

    def __init__(self, detail: str = "") -> None:
        super().__init__(reason=self.reason, detail=detail, said=f": {detail}" if detail else "")
        self.detail = detail


class SignatureMissing(SignatureRejected):
    code = "FED010"
    reason = "missing"


class SignatureMalformed(SignatureRejected):
    code = "FED011"
    reason = "malformed"


class UnknownKey(SignatureRejected):
    code = "FED012"
    reason = "unknown-key"


class SignatureExpired(SignatureRejected):
    code = "FED013"
    reason = "expired"


class SignatureReplayed(SignatureRejected):
    code = "FED014"
    reason = "replayed"


class BadSignature(SignatureRejected):
    code = "FED015"
    reason = "bad-signature"


class HolderUnavailable(ArchiveError):
    """The node holding a remote record could not be asked (the page says so; answered 502)."""

    code = "FED008"

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(node=node, reason=reason)
