#!/usr/bin/env python3
"""Sealing: the cost of signing and timestamping a version, beside the local TSA's own time — one run.

    python benchmarks/signing.py [--versions 300]

1. **Signing at commit** (the ingest's critical path): ``commit_many`` of ``--versions`` new objects (one
   small file each) into a storage root without a sealer, then the same into a root with the node's sealer
   (Ed25519, and again with SM2/SM3). The difference per object is what sealing adds to a commit.
2. **Timestamping from the outbox** (after the catalogue commit): the same number of sealed versions put in
   the outbox, then ``sync`` against a real local TSA (OpenSSL ``ts -reply`` behind the HTTP wrapper of
   ``tests/tsa.py``): wall time per version, the TSA's own share (the ``openssl ts -reply`` runs, timed by the
   wrapper, and the wrapper's whole handler time), and ours = the rest (request, HTTP, parsing and checking the answer, writing the token, the
   events, the outbox row).
3. **The TSA alone**: ``openssl ts -reply`` on one request, run ``--versions`` times, no HTTP.

Target: sign + timestamp ≤ 5 ms per version of our own cost, beside the local TSA's time. Figures are
printed, never asserted; the machine is shared (2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from rfc3161_client import HashAlgorithm, TimestampRequestBuilder  # noqa: E402

from archive import db  # noqa: E402
from archive.config import Settings, get_settings  # noqa: E402
from archive.home import init_home  # noqa: E402
from archive.sealing.outbox import enqueue, sync  # noqa: E402
from archive.sealing.seals import VersionSealer, read_seal, sealed_from  # noqa: E402
from archive.storage import OcflStore  # noqa: E402
from tests.tsa import TestTsa  # noqa: E402


def commit_objects(settings: Settings, root: Path, n: int, sealer: VersionSealer | None) -> float:
    """Seconds to commit ``n`` one-file objects in one batch (as an ingest does)."""
    store = OcflStore(root, settings.staging_dir, sealer=sealer)
    store.init()
    with store.begin_batch() as batch:
        builders = []
        for i in range(n):
            b = batch.begin_object(f"urn:bench:{root.name}:{i}")
            b.add_bytes("data/file.txt", f"record {i} ".encode() * 50)
            builders.append(b)
        t = time.perf_counter()
        for _ in store.commit_many(builders, message="bench", user_name="bench"):
            pass
        return time.perf_counter() - t


def measure(n: int = 300) -> dict[str, float]:
    """Steps 1-3 over ``n`` versions; every figure in ms (per object, version or request). The environment's
    ``ARCHIVE_*`` variables are set for the run and put back afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ARCHIVE_")}
    for name in saved:
        del os.environ[name]
    try:
        return _measure(n)
    finally:
        db.dispose_engines()
        for name in [k for k in os.environ if k.startswith("ARCHIVE_")]:
            del os.environ[name]
        os.environ.update(saved)


def _measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ARCHIVE_HOME"] = str(tmp / "home")
        settings = get_settings()
        init_home(settings)
        with TestTsa.start(tmp / "tsa") as tsa:
            # 1. signing at commit
            plain = commit_objects(settings, tmp / "plain", n, None)
            ed = VersionSealer(settings)
            ed.signer  # noqa: B018 - make the key before timing
            with_ed = commit_objects(settings, tmp / "ed25519", n, ed)
            os.environ["ARCHIVE_SIGNATURE_ALGORITHM"] = "sm2"
            sm2 = VersionSealer(get_settings())
            sm2.signer  # noqa: B018
            signed_sm2 = commit_objects(settings, tmp / "sm2", n, sm2)
            del os.environ["ARCHIVE_SIGNATURE_ALGORITHM"]
            # the signature alone, on a real inventory (the commit difference above is within the noise)
            sealed_root = OcflStore(tmp / "ed25519", settings.staging_dir)
            first = next(sealed_root.iter_objects())
            inventory = (sealed_root.object_path(first) / "v1" / "inventory.json").read_bytes()
            t = time.perf_counter()
            for _ in range(n):
                ed(first, "v1", inventory)
            sign_alone = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(n):
                sm2(first, "v1", inventory)
            sign_sm2_alone = time.perf_counter() - t
            ed.take()
            sm2.take()
            # the versions committed above, to the outbox
            signed = [
                sealed_from(read_seal(sealed_root.object_path(oid), "v1") or {})
                for oid in sealed_root.iter_objects()
            ]
            # 2. timestamping from the outbox, against the local TSA
            os.environ["ARCHIVE_HOME"] = str(tmp / "home")
            os.environ["ARCHIVE_STORAGE_ROOT"] = str(tmp / "ed25519")
            os.environ["ARCHIVE_TSA_URL"] = tsa.url
            os.environ["ARCHIVE_TSA_TRUST"] = str(tsa.ca_pem)
            settings = get_settings()
            with db.write_session(settings) as s:
                enqueue(s, signed)
            before, served_before = tsa.reply_seconds, tsa.served_seconds
            t = time.perf_counter()
            report = sync(settings, limit=10_000)
            synced = time.perf_counter() - t
            openssl_share = tsa.reply_seconds - before
            tsa_share = tsa.served_seconds - served_before
            assert report.timestamped == n, report
            # 3. the TSA alone
            query = (
                TimestampRequestBuilder()
                .data(b"inventory")
                .hash_algorithm(HashAlgorithm.SHA512)
                .build()
                .as_bytes()
            )
            t = time.perf_counter()
            for _ in range(n):
                tsa.reply(query)
            alone = time.perf_counter() - t
    ms = lambda seconds: seconds * 1000 / n  # noqa: E731
    return {
        "versions": n,
        "commit_plain": ms(plain),
        "commit_ed25519": ms(with_ed),
        "commit_sm2": ms(signed_sm2),
        "seal_ed25519": ms(sign_alone),
        "seal_sm2": ms(sign_sm2_alone),
        "timestamp_wall": ms(synced),
        "timestamp_tsa": ms(tsa_share),
        "timestamp_openssl": ms(openssl_share),
        "timestamp_ours": ms(synced - tsa_share),
        "tsa_alone": ms(alone),
        "sign_and_timestamp_ours": ms(sign_alone) + ms(synced - tsa_share),
    }


def recovery_figures(versions: int = 300) -> list[tuple[str, str, str]]:
    """The sealing figures for ``benchmarks/recovery.py``: (what, ours, the peer's or the limit)."""
    r = measure(versions)
    return [
        (f"seal one version, Ed25519 ({versions} versions)", f"{r['seal_ed25519']:.3f} ms", ""),
        ("seal one version, SM2/SM3", f"{r['seal_sm2']:.3f} ms", ""),
        (
            "timestamp from the outbox, ours",
            f"{r['timestamp_ours']:.3f} ms/version",
            f"the local TSA: {r['timestamp_tsa']:.3f} ms/version (openssl ts -reply alone {r['tsa_alone']:.3f})",
        ),
        ("sign + timestamp, ours", f"{r['sign_and_timestamp_ours']:.3f} ms/version", "≤ 5 ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=300)
    args = parser.parse_args()
    r = measure(args.versions)
    print(f"versions: {args.versions}")
    print(f"commit without sealer         {r['commit_plain']:8.3f} ms/object")
    print(
        f"commit, Ed25519 sealer        {r['commit_ed25519']:8.3f} ms/object  "
        f"(+{r['commit_ed25519'] - r['commit_plain']:.3f})"
    )
    print(
        f"commit, SM2/SM3 sealer        {r['commit_sm2']:8.3f} ms/object  "
        f"(+{r['commit_sm2'] - r['commit_plain']:.3f})"
    )
    print(f"seal one inventory, Ed25519   {r['seal_ed25519']:8.3f} ms  (digest, signature, seal JSON)")
    print(f"seal one inventory, SM2/SM3   {r['seal_sm2']:8.3f} ms  (pure-Python gmssl)")
    print(
        f"timestamp from the outbox     {r['timestamp_wall']:8.3f} ms/version (wall, HTTP to the local TSA)"
    )
    print(
        f"  of which the TSA (server)   {r['timestamp_tsa']:8.3f} ms/version  "
        f"(openssl ts -reply {r['timestamp_openssl']:.3f})"
    )
    print(f"  ours (client side)          {r['timestamp_ours']:8.3f} ms/version")
    print(f"TSA alone: openssl ts -reply  {r['tsa_alone']:8.3f} ms/request")
    total = r["sign_and_timestamp_ours"]
    verdict = "met" if total <= 5 else "NOT met"
    print(f"sign + timestamp, ours        {total:8.3f} ms/version   target ≤ 5 ms: {verdict}")
    digest = hashlib.sha256(str(args.versions).encode()).hexdigest()[:8]
    print(f"(run {digest}; the machine is shared: repeat for a stable figure)")


if __name__ == "__main__":
    main()
