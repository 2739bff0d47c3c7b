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
    └── SignatureRejected          a node-to-node call failed verification (FED010–FED015): 401
"""

from __future__ import annotations

from archive.errors import ArchiveError, NotFound, UsageError


class NodeNotInitialised(UsageError):
    code = "FED001"

    def __init__(self, home: object) -> None:
        super().__init__(
            f"{home} 尚无节点身份，请先运行 archive node init --url URL",
            f"{home} has no node identity; run 'archive node init --url URL' first",
            home=home,
        )


class BadNodeUrl(UsageError):
    code = "FED002"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"节点地址 {url!r} 不是完整的 http(s) 地址（例如 https://archive.example.gov.cn）",
            f"Node URL {url!r} is not an absolute http(s) URL (e.g. https://archive.example.gov.cn)",
            url=url,
        )


class FingerprintMismatch(ArchiveError):
    code = "FED003"

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{url} 的公钥指纹为 {actual}，与给定的 {expected} 不符；未添加任何内容",
            f"The key fingerprint of {url} is {actual}, not the {expected} given; nothing was stored",
            url=url,
            expected=expected,
            actual=actual,
        )


class PeerUnreachable(ArchiveError):
    code = "FED004"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"无法连接节点 {url}：{reason}",
            f"Cannot reach the node at {url}: {reason}",
            url=url,
            reason=reason,
        )


class BadDescriptor(ArchiveError):
    code = "FED005"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"{url} 返回的节点描述无效：{reason}",
            f"{url} did not answer a valid node descriptor: {reason}",
            url=url,
            reason=reason,
        )


class PeerIsSelf(UsageError):
    code = "FED006"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"{url} 是本节点自身，不能添加为对等节点",
            f"{url} is this node itself; it cannot be its own peer",
            url=url,
        )


class UnknownPeer(NotFound):
    code = "FED007"

    def __init__(self, node_id: str) -> None:
        super().__init__(
            f"没有节点号为 {node_id} 的对等节点（archive peers list）",
            f"No peer with node id {node_id} (see 'archive peers list')",
            node_id=node_id,
        )


class SignatureRejected(ArchiveError):
    """A signed node-to-node call that is refused; answered 401 with ``reason`` in a problem document."""

    code = "FED010"
    reason = "missing"

    def __init__(self, detail: str = "") -> None:
        zh, en = _MESSAGES[self.code]
        super().__init__(zh, en + (f": {detail}" if detail else ""), reason=self.reason)
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


_MESSAGES = {
    "FED010": ("请求未签名（缺少 Signature / Signature-Input）", "The request carries no signature"),
    "FED011": ("请求签名格式不正确", "The request signature is malformed"),
    "FED012": ("签名密钥不属于本节点的任何对等节点", "The signing key belongs to no peer of this node"),
    "FED013": ("请求签名已过期或尚未生效", "The request signature has expired or is not yet valid"),
    "FED014": ("该签名请求已被使用过（重放）", "The signed request was already used (replay)"),
    "FED015": (
        "签名验证失败：请求内容与签名不符",
        "The signature does not verify: the request was altered or signed with another key",
    ),
}


class HolderUnavailable(ArchiveError):
    """The node holding a remote record could not be asked (the page says so; answered 502)."""

    code = "FED008"

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(
            f"保管该档案的档案馆（{node}）暂时无法访问，请稍后再试",
            f"The archive holding this record ({node}) cannot be reached now; please try again later",
            node=node,
            reason=reason,
        )
