#!/usr/bin/env python3
"""Recompute the event chain of an evidence package (Python 3.8+, standard library only).

    python3 verify_chain.py [events.json]        # default: events/events.json beside this script

Shipped inside every evidence package. Each event's hash is SHA-256 over its predecessor's hash, a newline and
the event's canonical JSON (keys sorted, UTF-8, no spaces), exactly as the archive computes it. The script
recomputes the hash of every event in the package, checks that each one sits at its place in the list of chain
links, that the links follow one another without a gap from the first listed event up to the chain head at
export time, and prints that head hash, which an auditor can compare with the live archive's
(``archive events verify --json``: ``head_hash``). Exit 0 when everything holds, 1 at the first problem.
"""

import hashlib
import json
import sys
from pathlib import Path

GENESIS = "0" * 64


def event_hash(prev_hash: str, canonical: dict) -> str:
    body = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()


def check(doc: dict) -> list:
    """Every problem found, as text; an empty list when the chain holds."""
    problems = []
    links = doc["links"]
    by_id = {}
    prev_id, prev_hash = None, None
    for event_id, link_prev, link_hash in links:
        if prev_id is None:
            if event_id == 1 and link_prev != GENESIS:
                problems.append("event 1 does not start from the genesis hash")
        elif event_id != prev_id + 1:
            problems.append(f"links jump from event {prev_id} to {event_id}")
        elif link_prev != prev_hash:
            problems.append(f"event {event_id}: prev_hash is not the hash of event {prev_id}")
        by_id[event_id] = (link_prev, link_hash)
        prev_id, prev_hash = event_id, link_hash
    head = doc["head"]
    if links and (prev_id != head["last_event_id"] or prev_hash != head["last_hash"]):
        problems.append("the links do not end at the chain head recorded in the package")
    for event in doc["events"]:
        event_id = event["id"]
        recomputed = event_hash(event["prev_hash"], event["canonical"])
        if recomputed != event["hash"]:
            problems.append(f"event {event_id}: content does not match its hash (recomputed {recomputed})")
        if by_id.get(event_id) != (event["prev_hash"], event["hash"]):
            problems.append(f"event {event_id}: not at its place in the chain links")
    return problems


def main(argv: list) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "events" / "events.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    problems = check(doc)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"链校验失败 / chain verification FAILED: {len(problems)} problem(s)")
        return 1
    head = doc["head"]
    print(
        f"链校验通过 / chain verified: {len(doc['events'])} events recomputed, {len(doc['links'])} links, "
        f"head event {head['last_event_id']} hash {head['last_hash']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
