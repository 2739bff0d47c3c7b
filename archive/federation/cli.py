"""``archive node …`` and ``archive peers …`` (registered through the ``archive.commands`` entry point)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from archive.cli import JsonOpt, new_table, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings

node_app = typer.Typer(no_args_is_help=True, help="This node's federation identity (节点身份).")
peers_app = typer.Typer(no_args_is_help=True, help="The nodes this node trusts (对等节点).")


def _archives(settings: Settings) -> list[dict[str, Any]]:
    from archive import db
    from archive.services import list_archives

    with db.read_session(settings) as s:
        return [
            {"code": a["code"], "name_zh": a["name_zh"], "level": a["level"], "parent": a.get("parent")}
            for a in list_archives(s)
        ]


@node_app.command("init")
def node_init(
    url: Annotated[str, typer.Option(help="This node's public URL, as its peers reach it")],
    name: Annotated[str | None, typer.Option(help="Name shown to peers, e.g. 广东省档案馆")] = None,
    rotate_key: Annotated[
        bool, typer.Option("--rotate-key", help="Make a new key pair and announce it to every peer")
    ] = False,
) -> None:
    """Give this node its identity: an Ed25519 key pair under ARCHIVE_HOME, a node id, its URL and name."""

    def body(settings: Settings) -> None:
        from archive.federation.identity import init_identity
        from archive.federation.peers import announce_key

        identity, previous = init_identity(settings, url, name, rotate_key=rotate_key)
        out.print(
            f"node {identity.node_id} {identity.name} at {identity.url}\nfingerprint {identity.fingerprint}",
            highlight=False,
        )
        if previous is not None:
            for r in announce_key(settings, previous, identity):
                mark = "[green]announced[/]" if r["announced"] else "[red]not announced[/]"
                out.print(f"  {mark} to {r['name']} ({r['node_id']}): {r['detail']}", highlight=False)

    run(body)


@node_app.command("show")
def node_show(as_json: JsonOpt = False) -> None:
    """Print node_id, name, url, public key, fingerprint and the archives this node hosts."""

    def body(settings: Settings) -> None:
        from archive.federation.identity import load_identity

        desc = load_identity(settings).descriptor(_archives(settings))
        desc["archives"] = [a["code"] for a in desc["archives"]]
        if as_json:
            print_json(desc)
            return
        for key in ("node_id", "name", "url", "public_key", "fingerprint", "archives"):
            value = desc[key]
            out.print(
                f"[bold]{key:>12}[/] {', '.join(value) if isinstance(value, list) else value}",
                highlight=False,
            )

    run(body, as_json)


@peers_app.command("add")
def peers_add(
    url: Annotated[str, typer.Argument(help="The peer's public URL")],
    fingerprint: Annotated[str, typer.Option(help="The peer's key fingerprint (archive node show)")],
    as_json: JsonOpt = False,
) -> None:
    """Trust the node at URL if its key has this fingerprint; store nothing otherwise (exit 1)."""

    def body(settings: Settings) -> None:
        from archive.federation.peers import add_peer

        peer = add_peer(settings, url, fingerprint)
        if as_json:
            print_json(peer)
        else:
            out.print(
                f"added peer {peer['node_id']} {peer['name']} at {peer['url']} "
                f"({', '.join(peer['archives'])})",
                highlight=False,
            )

    run(body, as_json)


@peers_app.command("list")
def peers_list(as_json: JsonOpt = False) -> None:
    """The peers: id, name, url, archives, last contact, status."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.federation.peers import list_peers, peer_summary

        with db.read_session(settings) as s:
            rows = [peer_summary(p) for p in list_peers(s)]
        if as_json:
            print_json(rows)
            return
        table = new_table("node_id", "name", "url", "archives", "last contact", "status")
        for r in rows:
            table.add_row(
                r["node_id"],
                r["name"],
                r["url"],
                ", ".join(r["archives"]),
                r["last_contact"] or "",
                r["status"] or "",
            )
        out.print(table)

    run(body, as_json)


@peers_app.command("remove")
def peers_remove(node_id: Annotated[str, typer.Argument(help="The peer's node id")]) -> None:
    """Stop trusting a peer: its calls are refused and regional queries no longer ask it."""

    def body(settings: Settings) -> None:
        from archive.federation.peers import remove_peer

        remove_peer(settings, node_id)
        out.print(f"removed peer {node_id}", highlight=False)

    run(body)


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
    app.add_typer(peers_app, name="peers")
