"""The keys that seal versions: Ed25519 (default) or SM2 with SM3 (GB/T 32918 / GB/T 32905, 国密).

Ed25519 uses the node's federation key (``$ARCHIVE_HOME/node/node-key.pem``) when the node has one, else a
key of its own made on first use at ``$ARCHIVE_HOME/sealing/ed25519-key.pem``. SM2 keys are always the
sealing key ``$ARCHIVE_HOME/sealing/sm2-key.pem`` (SEC 1 ``EC PRIVATE KEY`` PEM on the SM2 curve, as
``openssl ec`` writes it). Private keys are written with mode 0600 from the start.

What is signed is the raw digest (64 bytes of SHA-512) of the thing sealed; SM2 signatures use the default
signer id of GB/T 32918 (``1234567812345678``) and are DER ``SEQUENCE {r, s}``, so ``openssl pkeyutl -verify
-rawin -digest sm3 -pkeyopt distid:1234567812345678`` checks them (OpenSSL 3's own default id is empty: name
it). Public keys travel as DER SubjectPublicKeyInfo (base64) beside each signature; a key is
named by its fingerprint (``SHA256:`` + base64 of SHA-256 of the raw public key, as for node keys).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from archive.config import Settings
from archive.federation.identity import fingerprint_of, has_identity, load_identity, node_dir
from archive.sealing.errors import KeyUnusable

ED25519 = "ed25519"
SM2 = "sm2-sm3"

# DER prefixes of the two fixed-size SM2 encodings (id-ecPublicKey with the SM2 curve 1.2.156.10197.1.301).
_SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_SM2_SEC1_HEAD = bytes.fromhex("30770201010420")
_SM2_SEC1_MIDDLE = bytes.fromhex("a00a06082a811ccf5501822da144034200")
_SM2_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)  # the curve's order


class Signer(Protocol):
    @property
    def algorithm(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def public_key_der(self) -> bytes: ...

    def sign(self, digest: bytes) -> bytes: ...


@dataclass(frozen=True)
class Ed25519Signer:
    key: Ed25519PrivateKey
    algorithm: str = ED25519

    @property
    def public_key_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def key_id(self) -> str:
        return fingerprint_of(
            self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def sign(self, digest: bytes) -> bytes:
        return self.key.sign(digest)


@dataclass(frozen=True)
class Sm2Signer:
    private_hex: str
    public_point: bytes  # 65 bytes, 04 || x || y
    algorithm: str = SM2

    @property
    def public_key_der(self) -> bytes:
        return _SM2_SPKI_PREFIX + self.public_point

    @property
    def key_id(self) -> str:
        return fingerprint_of(self.public_point)

    def sign(self, digest: bytes) -> bytes:
        crypt = _crypt(self.public_point, self.private_hex)
        while True:
            k = secrets.randbelow(_SM2_N - 1) + 1
            signed = crypt.sign_with_sm3(digest, f"{k:064x}")
            if signed:  # None only for the rare k that yields r = 0 or r + k = n
                r, s = int(signed[:64], 16), int(signed[64:], 16)
                return encode_dss_signature(r, s)


def _crypt(point: bytes, private_hex: str = "") -> Any:
    from gmssl import sm2  # type: ignore[import-untyped]  # pure Python; imported when SM2 is used

    crypt = sm2.CryptSM2(private_key=private_hex, public_key="")
    crypt.public_key = point[1:].hex()  # set directly: the constructor's lstrip("04") eats leading digits
    return crypt


def sm2_public_point(private_hex: str) -> bytes:
    from gmssl import sm2

    crypt = sm2.CryptSM2(private_key=private_hex, public_key="")
    return b"\x04" + bytes.fromhex(crypt._kg(int(private_hex, 16), sm2.default_ecc_table["g"]))


def sm2_point_from_der(der: bytes) -> bytes:
    if not der.startswith(_SM2_SPKI_PREFIX) or len(der) != len(_SM2_SPKI_PREFIX) + 65:
        raise ValueError("not an SM2 SubjectPublicKeyInfo")
    return der[len(_SM2_SPKI_PREFIX) :]


def verify_signature(algorithm: str, public_key_der: bytes, digest: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``algorithm``'s signature of ``digest`` by the key; False otherwise."""
    try:
        if algorithm == ED25519:
            key = serialization.load_der_public_key(public_key_der)
            if not isinstance(key, Ed25519PublicKey):
                return False
            key.verify(signature, digest)
            return True
        if algorithm == SM2:
            r, s = decode_dss_signature(signature)
            return bool(
                _crypt(sm2_point_from_der(public_key_der)).verify_with_sm3(f"{r:064x}{s:064x}", digest)
            )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return False


def key_id_of(algorithm: str, public_key_der: bytes) -> str:
    if algorithm == SM2:
        return fingerprint_of(sm2_point_from_der(public_key_der))
    key = serialization.load_der_public_key(public_key_der)
    return fingerprint_of(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sealing_dir(settings: Settings) -> Path:
    return settings.home_dir / "sealing"


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def _unpem(pem: bytes) -> bytes:
    lines = [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]
    return base64.b64decode("".join(lines))


def _load_sm2(path: Path) -> Sm2Signer:
    der = _unpem(path.read_bytes())
    head, middle = len(_SM2_SEC1_HEAD), len(_SM2_SEC1_HEAD) + 32
    if not der.startswith(_SM2_SEC1_HEAD) or der[middle : middle + len(_SM2_SEC1_MIDDLE)] != _SM2_SEC1_MIDDLE:
        raise ValueError("not an SM2 EC PRIVATE KEY")
    private_hex = der[head:middle].hex()
    return Sm2Signer(private_hex, der[middle + len(_SM2_SEC1_MIDDLE) :])


def _make_sm2(path: Path) -> None:
    d = secrets.randbelow(_SM2_N - 2) + 1
    private_hex = f"{d:064x}"
    point = sm2_public_point(private_hex)
    _write_private(
        path, _pem("EC PRIVATE KEY", _SM2_SEC1_HEAD + bytes.fromhex(private_hex) + _SM2_SEC1_MIDDLE + point)
    )


def _load_ed25519(path: Path) -> Ed25519Signer:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return Ed25519Signer(key)


def signer_for(settings: Settings) -> Signer:
    """The key that seals now (made on first use), for ``ARCHIVE_SIGNATURE_ALGORITHM``."""
    if settings.signature_algorithm == "ed25519" and has_identity(settings):
        return Ed25519Signer(load_identity(settings).private_key)
    name = "sm2-key.pem" if settings.signature_algorithm == "sm2" else "ed25519-key.pem"
    path = sealing_dir(settings) / name
    try:
        if not path.exists():
            if settings.signature_algorithm == "sm2":
                _make_sm2(path)
            else:
                _write_private(
                    path,
                    Ed25519PrivateKey.generate().private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ),
                )
        return _load_sm2(path) if settings.signature_algorithm == "sm2" else _load_ed25519(path)
    except (OSError, ValueError) as exc:
        raise KeyUnusable(path=path, reason=exc) from None


def trusted_key_ids(settings: Settings) -> set[str]:
    """Fingerprints of every key this node has sealed with: its node key (current and retired) and its own
    sealing keys."""
    found: set[str] = set()
    candidates = [
        node_dir(settings) / "node-key.pem",
        *sorted((node_dir(settings) / "retired").glob("*.pem")),
    ]
    candidates += sorted(sealing_dir(settings).glob("*-key.pem"))
    for path in candidates:
        try:
            if path.name.startswith("sm2"):
                found.add(_load_sm2(path).key_id)
            elif path.is_file():
                found.add(_load_ed25519(path).key_id)
        except (OSError, ValueError):
            continue
    return found
