"""The node context a regional query fans out with (access_portal/regional.py): read at most every
CONTEXT_TTL, refreshed in the background past half of it, never used older than CONTEXT_TTL."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import insert

from access_portal import regional
from archive import db
from archive.config import Settings
from archive.federation.identity import init_identity
from archive.federation.models import Peer


def _add_peer(settings: Settings, node_id: str) -> None:
    with db.write_session(settings) as s:
        s.execute(
            insert(Peer).values(
                node_id=node_id,
                name=node_id,
                url=f"http://{node_id}.test/",
                public_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                fingerprint="x",
                archives=[],
            )
        )


def test_context_is_refreshed_ahead_and_never_used_past_its_ttl(
    any_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(regional, "_CONTEXTS", {})
    monkeypatch.setattr(regional, "_REFRESHING", {})
    # A long life, so that only aged() makes the context old: at the real second, a slow first read and
    # peer insert on a loaded machine (PostgreSQL too) could pass half of it before the "fresh" query.
    monkeypatch.setattr(regional, "CONTEXT_TTL", 60.0)
    init_identity(any_home, "http://me.test", "本馆")
    key = str(any_home.home_dir)

    def peers(ctx: regional.NodeContext) -> list[str]:
        return [p.node_id for p in ctx.peers]

    def aged(fraction: float) -> None:
        _, ctx = regional._CONTEXTS[key]
        regional._CONTEXTS[key] = (time.monotonic() - fraction * regional.CONTEXT_TTL, ctx)

    async def go() -> None:
        assert peers(await regional.context_for_query(any_home)) == []
        _add_peer(any_home, "p1")
        assert peers(await regional.context_for_query(any_home)) == []  # fresh: no read
        assert key not in regional._REFRESHING
        aged(0.6)  # past half its life: this query still uses it, a read starts behind it
        assert peers(await regional.context_for_query(any_home)) == []
        await regional._REFRESHING[key]
        assert peers(await regional.context_for_query(any_home)) == ["p1"]
        _add_peer(any_home, "p2")
        aged(1.0)  # expired: read before the query, whatever runs in the background
        assert peers(await regional.context_for_query(any_home)) == ["p1", "p2"]

    asyncio.run(go())
