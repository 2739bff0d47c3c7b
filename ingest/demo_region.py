"""``archive demo --region``: three nodes on 127.0.0.1 — 广东省档案馆, 广州市档案馆, 天河区档案馆 — each its own
``ARCHIVE_HOME`` (``<workdir>/gd``, ``gz``, ``th``), key pair and the sample records of ``archive demo``
(:mod:`ingest.demo`'s bags, each ingested into its own node), peered with each other, and served by three
``archive serve`` processes on consecutive ports (default 8101–8103).

By default the command stays in the foreground and stops the three portals on Ctrl-C; ``--detach`` leaves
them running and writes their process ids to ``<workdir>/pids.json``. Running it again reuses the homes,
keys and records (nothing is ingested twice).

If the harvested regional catalogue (``search.harvest``) is installed, the province node also adds its
peers as harvest sources and runs a first harvest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from archive import db, services
from archive.config import Settings
from archive.errors import UnknownArchive
from archive.federation.identity import init_identity
from archive.federation.peers import add_peer
from archive.home import init_home, is_initialised
from ingest.demo import REGION, build_bags
from ingest.pipeline import ingest

#: (folder, archive code) of the three nodes, province first.
NODES = (("gd", "GD"), ("gz", "GZ"), ("th", "GZ-TH"))
START_TIMEOUT = 60.0


@dataclass
class DemoNode:
    key: str
    archive: str
    name: str
    settings: Settings
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(home)
    return env


def prepare(workdir: Path, base_port: int, console: Console) -> list[DemoNode]:
    """Homes, archives, identities and records of the three nodes (idempotent)."""
    bags = build_bags(workdir / "bags")
    nodes = []
    for i, (key, code) in enumerate(NODES):
        _, name_zh, name_en, level, _ = next(r for r in REGION if r[0] == code)
        settings = Settings(home=workdir / key)
        node = DemoNode(key, code, name_zh, settings, base_port + i)
        if not is_initialised(settings):
            init_home(settings)
        with db.write_session(settings) as s:
            try:
                services.get_archive(s, code)
            except UnknownArchive:
                services.add_archive(s, code, name_zh=name_zh, name_en=name_en, level=level, parent=None)
        identity, _ = init_identity(settings, node.url, name_zh)
        console.print(f"[bold]{name_zh}[/] node {identity.node_id} {identity.fingerprint}", highlight=False)
        for archive, bag in bags:
            if archive != code:
                continue
            result = ingest(bag, archive, settings)
            if result.stored:
                console.print(f"  stored {bag.name}: {len(result.records)} records", highlight=False)
            elif any(p.code == "ING003" for p in result.problems):
                console.print(f"  [dim]{bag.name}: already ingested[/]", highlight=False)
            else:
                console.print(
                    f"  [yellow]rejected[/] {bag.name} as expected (a damaged sample)", highlight=False
                )
        nodes.append(node)
    return nodes


def start(node: DemoNode, log_dir: Path) -> None:
    with (log_dir / f"{node.key}.log").open("ab") as log:
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "archive", "serve", "--host", "127.0.0.1", "--port", str(node.port)],
            env=_env(node.settings.home_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops the portals in order
        )


def wait_healthy(node: DemoNode) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if node.proc is not None and node.proc.poll() is not None:
            raise RuntimeError(f"{node.name} exited with {node.proc.returncode}; see its log")
        try:
            if httpx.get(node.url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{node.name} did not answer on {node.url} within {START_TIMEOUT:.0f} s")


def stop(nodes: list[DemoNode]) -> None:
    for node in nodes:
        if node.proc is None:
            continue
        try:
            node.proc.send_signal(signal.SIGCONT)  # in case it was stopped to try the partial answer
            node.proc.terminate()
            node.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.proc.kill()
        except ProcessLookupError:
            pass
        node.proc = None


def peer_all(nodes: list[DemoNode], console: Console) -> None:
    from archive.federation.identity import load_identity

    for node in nodes:
        for other in nodes:
            if other is not node:
                add_peer(node.settings, other.url, load_identity(other.settings).fingerprint)
        console.print(f"{node.name} trusts {len(nodes) - 1} peers", highlight=False)


def harvest_if_available(nodes: list[DemoNode], console: Console) -> None:
    """Run the harvested catalogue's first harvest on the province node, when ``search.harvest`` exists."""
    if importlib.util.find_spec("search.harvest") is None:
        return
    province = nodes[0]
    env = _env(province.settings.home_dir)
    for other in nodes[1:]:
        subprocess.run(
            [sys.executable, "-m", "archive", "harvest", "add", other.url + "/oai"],
            env=env,
            capture_output=True,
            check=False,
        )
    done = subprocess.run(
        [sys.executable, "-m", "archive", "harvest", "run"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    console.print(
        "harvested the peers' catalogues into 广东省档案馆"
        if done.returncode == 0
        else f"[yellow]harvest did not run[/]: {done.stderr.strip()[-300:]}",
        highlight=False,
    )


def run_region_demo(workdir: Path, base_port: int, detach: bool, console: Console) -> dict[str, Any]:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    nodes = prepare(workdir, base_port, console)
    try:
        for node in nodes:
            start(node, workdir)
        for node in nodes:
            wait_healthy(node)
        peer_all(nodes, console)
        harvest_if_available(nodes, console)
    except BaseException:
        stop(nodes)
        raise
    gd, _gz, th = nodes
    pids = {n.key: n.proc.pid for n in nodes if n.proc is not None}
    (workdir / "pids.json").write_text(json.dumps(pids) + "\n")
    console.print(
        "\n[bold]Three nodes are running[/]\n"
        + "".join(
            f"  {n.name:<8} {n.url}/   (ARCHIVE_HOME={n.settings.home_dir}, pid {pids[n.key]})\n"
            for n in nodes
        )
        + "\n[bold]Try[/]\n"
        f"  {gd.url}/search?q=广州            全省 (regional) search from the province node\n"
        f"  {gd.url}/search?q=广州&scope=local  本馆 only\n"
        f"  {gd.url}/api/v1/search?q=规划&scope=region   JSON: hits[].node, hits[].url, nodes[].status\n"
        f"  {th.url}/search?q=珠江            the same region seen from the county node\n"
        f"  {gd.url}/federation/v1/node        a node's public descriptor (key fingerprint)\n"
        "\n[bold]See a node stopped[/]\n"
        f"  kill -STOP {pids['th']}    # 天河区档案馆 hangs: reload the search; it answers within "
        f"ARCHIVE_FEDERATION_TIMEOUT (2 s) and says 天河区档案馆 could not be asked,\n"
        "                          # then skips it for 30 s (circuit breaker) so pages are fast again;\n"
        "                          # with the harvested catalogue its records still show, marked 目录副本\n"
        f"  kill -CONT {pids['th']}    # it answers again after the cool-down\n",
        highlight=False,
    )
    if detach:
        console.print(f"stop them with: kill {' '.join(str(p) for p in pids.values())}", highlight=False)
        return {"pids": pids, "urls": [n.url for n in nodes]}
    console.print("Ctrl-C stops the three portals.", highlight=False)
    try:
        while all(n.proc is not None and n.proc.poll() is None for n in nodes):
            time.sleep(1)
        console.print("[yellow]a portal exited; stopping the others[/]", highlight=False)
    except KeyboardInterrupt:
        pass
    finally:
        stop(nodes)
    return {"pids": pids, "urls": [n.url for n in nodes]}
