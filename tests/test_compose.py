"""The production stack's files, checked without a Docker engine: docker-compose.yml against the Compose
Specification's JSON schema (tests/data/compose-spec/) and against what the stack must do (start-up order,
healthchecks, result backend, proxy headers and workers, no placeholder secret reaching a server), every
`archive` command in it parsed by the real CLI, and the multi-stage Dockerfile (the portal image carries no
migration tool; Python dependencies hash-checked from a lock that pins what requirements.lock pins).
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import typer.main
from typer.exceptions import TyperException

from tests.compose import (
    APP_SERVICES,
    COMPOSE_FILE,
    DOCKERFILE,
    ENV_EXAMPLE,
    ROOT,
    SCHEMA,
    MissingVariable,
    command,
    environment,
    example_env,
    healthcheck,
    load_compose,
    raw_compose,
    read_env_file,
    real_secrets,
)

SERVERS = ("postgres", "redis", "elasticsearch")
#: Debian packages that are migration tools: the worker image needs them, the portal image must not have them.
MIGRATION_TOOLS = ("ghostscript", "libreoffice", "ffmpeg", "imagemagick")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The compose file as `docker compose` sees it once the operator has written real secrets."""
    return load_compose(example_env(**real_secrets()))


def services(stack: dict[str, Any]) -> dict[str, Any]:
    found = stack["services"]
    assert isinstance(found, dict)
    return found


# -- the schema ------------------------------------------------------------------------------------------


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert (
        (SCHEMA.parent / "LICENSE")
        .read_text()
        .startswith("\n                                 Apache License")
    )


def test_compose_file_is_valid(stack: dict[str, Any]) -> None:
    assert schema_errors(raw_compose()) == []
    assert schema_errors(stack) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda s: s["services"]["portal"]["depends_on"]["init"].update(condition="completed"), "completed"),
        (lambda s: s["services"]["worker"]["healthcheck"].update(tests=["CMD", "true"]), "tests"),
        (lambda s: s["services"]["init"].update(restartt="no"), "restartt"),
        (lambda s: s["services"]["portal"]["healthcheck"].update(test=5), "healthcheck/test"),
    ],
)
def test_schema_check_catches_a_broken_file(stack: dict[str, Any], breakage: Any, expected: str) -> None:
    broken = copy.deepcopy(stack)
    breakage(broken)
    errors = schema_errors(broken)
    assert errors and any(expected in e for e in errors), errors


# -- what the stack must do -------------------------------------------------------------------------------


def test_start_up_order(stack: dict[str, Any]) -> None:
    svc = services(stack)
    assert command(svc["preflight"]) == ["config", "check"]
    assert command(svc["init"]) == ["init"]
    for one_shot in ("preflight", "init"):
        assert svc[one_shot]["restart"] == "no", f"{one_shot} must run once, not be restarted after exit 0"
    for server in SERVERS:
        assert svc[server]["depends_on"] == {"preflight": {"condition": "service_completed_successfully"}}
    assert svc["init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for app in ("portal", "worker", "beat"):
        depends = svc[app]["depends_on"]
        assert depends["init"] == {"condition": "service_completed_successfully"}, app
        assert all(d["condition"] != "service_started" for d in depends.values()), app
    assert svc["portal"]["depends_on"]["elasticsearch"] == {"condition": "service_healthy"}
    for app in ("worker", "beat"):
        assert svc[app]["depends_on"]["redis"] == {"condition": "service_healthy"}
    # the virus scanner: signatures first, then clamd, then the worker that streams files to it
    assert svc["freshclam"]["depends_on"] == {"preflight": {"condition": "service_completed_successfully"}}
    assert svc["clamd"]["depends_on"] == {"freshclam": {"condition": "service_healthy"}}
    assert svc["worker"]["depends_on"]["clamd"] == {"condition": "service_healthy"}


def test_healthchecks(stack: dict[str, Any]) -> None:
    svc = services(stack)
    assert healthcheck(svc["portal"]) == [
        "archive",
        "health",
        "portal",
        "--url",
        "http://127.0.0.1:8000/healthz",
    ]
    assert healthcheck(svc["worker"]) == ["archive", "health", "worker"]
    assert healthcheck(svc["clamd"]) == ["clamdscan", "--ping", "3"]  # over the socket clamd.conf names
    for name in ("portal", "worker", "clamd", "freshclam", *SERVERS):
        check = svc[name]["healthcheck"]
        assert check.get("disable") is not True and check["interval"] and check["timeout"], name


def test_result_backend_and_broker_are_explicit(stack: dict[str, Any]) -> None:
    svc = services(stack)
    for name in APP_SERVICES:
        env = environment(svc[name])
        assert env["ARCHIVE_RESULT_BACKEND"].startswith("redis://"), name
        assert env["ARCHIVE_BROKER_URL"].startswith("redis://"), name
        assert env["ARCHIVE_RESULT_BACKEND"] != env["ARCHIVE_BROKER_URL"], (
            "results in a database of their own"
        )
        assert env["ARCHIVE_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert env["ARCHIVE_ELASTICSEARCH_URL"].startswith("http://elastic:"), name
        assert env["ARCHIVE_ENV"] == "production", name


def test_every_archive_variable_is_a_setting(stack: dict[str, Any]) -> None:
    """A misspelt ARCHIVE_* variable would be ignored silently (the settings ignore unknown names)."""
    from archive.config import Settings

    known = {f"ARCHIVE_{name.upper()}" for name in Settings.model_fields}
    for name in APP_SERVICES:
        ours = {v for v in environment(services(stack)[name]) if v.startswith("ARCHIVE_")}
        assert ours - known == set(), name


def clamd_conf(stack: dict[str, Any]) -> dict[str, str]:
    """clamd.conf as the compose file gives it to clamd: directive -> value."""
    lines = stack["configs"]["clamd"]["content"].splitlines()
    return dict(ln.split(None, 1) for ln in lines if ln.strip() and not ln.startswith("#"))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (short syntax), ``:ro`` kept on the source."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        found[target] = source + "".join(f":{m}" for m in mode)
    return found


def test_clamd_serves_the_worker_on_a_socket_only_they_share(stack: dict[str, Any]) -> None:
    svc = services(stack)
    conf = clamd_conf(stack)
    socket = environment(svc["worker"])["ARCHIVE_CLAMD_SOCKET"]
    assert conf["LocalSocket"] == socket
    assert "TCPSocket" not in conf  # not on the network at all
    socket_dir = str(Path(socket).parent)
    assert mounts(svc["worker"])[socket_dir] == mounts(svc["clamd"])[socket_dir] == "clamd-socket"
    holders = sorted(n for n, s in svc.items() if "clamd-socket" in mounts(s).values())
    assert holders == ["clamd", "freshclam", "worker"]  # freshclam: to tell clamd of new signatures
    assert mounts(svc["freshclam"])["/var/lib/clamav"] == "clamav-db"  # freshclam writes, clamd reads
    assert mounts(svc["clamd"])["/var/lib/clamav"] == "clamav-db:ro"
    for name in ("clamd", "freshclam"):
        assert svc[name]["build"]["target"] == "clamav", name
        assert [c["target"] for c in svc[name]["configs"]] == ["/etc/clamav/clamd.conf"], name
    # no file is passed over for its size below the transfer limit's order of magnitude: clamd's own
    # defaults (25-400 MB) would answer larger streams with an error or scan them only in part
    for directive in ("StreamMaxLength", "MaxFileSize", "MaxScanSize"):
        assert conf[directive] == "4000M", directive


def test_sealing_keys_are_a_volume_of_their_own_wherever_the_data_is(stack: dict[str, Any]) -> None:
    for name, service in services(stack).items():
        found = mounts(service)
        if found.get("/data", "").startswith("archive-data"):
            keys = found.get("/data/sealing")
            assert keys is not None and keys.startswith("sealing-keys"), name
            assert keys != found["/data"], name
    holders = [n for n, s in services(stack).items() if "/data/sealing" in mounts(s)]
    assert sorted(holders) == ["beat", "init", "init-gz", "portal", "portal-gz", "worker"]
    assert {"sealing-keys", "clamav-db", "clamd-socket"} <= set(stack["volumes"])


def test_beat_schedules_only_tasks_the_worker_runs() -> None:
    from archive.config import Settings
    from preservation.celery_app import make_app

    app = make_app(Settings())
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert len(scheduled) >= 8
    assert scheduled - set(app.tasks) == set()


def test_portal_runs_behind_proxy_headers_with_several_workers(stack: dict[str, Any]) -> None:
    argv = command(services(stack)["portal"])
    assert argv[0] == "serve"
    assert "--proxy-headers" in argv
    allowed = argv[argv.index("--forwarded-allow-ips") + 1]
    assert allowed and allowed != "*", "trust the ingress, not every client"
    assert int(argv[argv.index("--workers") + 1]) > 1
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # inside its container; published on loopback:
    (published,) = services(stack)["portal"]["ports"]
    assert published.startswith("127.0.0.1:")


@functools.cache
def archive_cli() -> Any:
    """The `archive` command with every package's commands, as the console script builds it."""
    from archive.cli import _load_plugins, app

    _load_plugins()
    return typer.main.get_command(app)


def parse_archive_argv(argv: list[str]) -> None:
    """Parse ``archive <argv>`` with the real CLI, down to the leaf command, without running it: an unknown
    command or option, or a value of the wrong type, raises typer's (click's) usage error."""
    cmd = archive_cli()
    ctx = cmd.make_context("archive", list(argv))
    args = list(argv)
    while hasattr(cmd, "resolve_command"):  # a group: find the subcommand, parse what follows with it
        name, sub, args = cmd.resolve_command(ctx, args)
        assert sub is not None, name
        cmd = sub
        ctx = cmd.make_context(str(name), list(args), parent=ctx)


def test_every_archive_command_in_the_stack_parses(stack: dict[str, Any]) -> None:
    svc = services(stack)
    for name in APP_SERVICES:
        parse_archive_argv(command(svc[name]))
    for name in ("portal", "worker"):
        argv = healthcheck(svc[name])
        assert argv[0] == "archive"
        parse_archive_argv(argv[1:])
    with pytest.raises(TyperException, match="valid integer"):
        parse_archive_argv(["serve", "--workers", "many"])  # the check can fail


# -- secrets ----------------------------------------------------------------------------------------------


SECRET_VARIABLES = ("POSTGRES_PASSWORD", "ELASTIC_PASSWORD", "REDIS_PASSWORD")


def test_secrets_come_only_from_the_env_file() -> None:
    values = json.dumps(raw_compose()).lower()  # every value, comments left out
    assert "change-me" not in values and "changeme" not in values
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for name in SECRET_VARIABLES:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, name
        assert all(u.startswith(":?") for u in uses), f"{name} must be required (:?), never defaulted: {uses}"
        with pytest.raises(MissingVariable, match=name):
            load_compose(example_env(**{name: ""}))
    example = read_env_file(ENV_EXAMPLE)
    assert {n for n, v in example.items() if "change-me" in v} == set(SECRET_VARIABLES)
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_env_example_documents_every_variable_the_stack_reads() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used - set(read_env_file(ENV_EXAMPLE)) == set()


def config_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "archive", "config", "check"],
        capture_output=True,
        text=True,
        env={**keep, **env},
        timeout=120,
        check=False,
    )


def test_placeholder_secrets_stop_the_stack_before_any_server_starts() -> None:
    """With .env.example copied as it is, the preflight service exits 2 with ARC010, so PostgreSQL, Redis and
    Elasticsearch (which depend on it completing successfully) never start with a placeholder password; and
    preflight checks the very environment that init, the portal, the worker and beat get."""
    as_shipped = services(load_compose(example_env()))
    preflight_env = environment(as_shipped["preflight"])
    for name in ("init", "portal", "worker", "beat"):
        assert environment(as_shipped[name]) == preflight_env, name
    for server in SERVERS:
        assert as_shipped[server]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"

    refused = config_check(preflight_env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("ARC010") == 1 and "Traceback" not in refused.stderr + refused.stdout
    assert "change-me-" not in refused.stderr  # names the variable, never echoes the secret

    for secret in SECRET_VARIABLES:  # each placeholder alone is enough to stop it
        one_left = environment(
            services(load_compose(example_env(**{**real_secrets(), secret: f"change-me-{secret}"})))[
                "preflight"
            ]
        )
        assert config_check(one_left).returncode == 2, secret

    accepted = config_check(environment(services(load_compose(example_env(**real_secrets())))["preflight"]))
    assert accepted.returncode == 0, accepted.stderr
    assert "s3cret" not in accepted.stdout and "***" in accepted.stdout  # shown redacted


# -- the Dockerfile ---------------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, dict[str, Any]]:
    """Each stage: its parent (a stage name or an image) and its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest.strip(), re.IGNORECASE)
            assert m, f"every stage is named: {line}"
            current = stages[m[2]] = {"parent": m[1], "lines": []}
        elif current is not None:
            current["lines"].append((word.upper(), rest))
    return stages


def stage_chain(stages: dict[str, dict[str, Any]], name: str) -> list[str]:
    chain = [name]
    while stages[chain[-1]]["parent"] in stages:
        chain.append(stages[chain[-1]]["parent"])
    return chain


def apt_packages(stages: dict[str, dict[str, Any]], name: str) -> set[str]:
    found: set[str] = set()
    for stage in stage_chain(stages, name):
        for word, rest in stages[stage]["lines"]:
            if word == "RUN" and "apt-get install" in rest:
                for cmd in rest.split("&&"):
                    if "apt-get install" in cmd:
                        found |= {w for w in cmd.split("install", 1)[1].split() if not w.startswith("-")}
    return found


def last(stages: dict[str, dict[str, Any]], name: str, instruction: str) -> str | None:
    for stage in stage_chain(stages, name):
        values = [rest for word, rest in stages[stage]["lines"] if word == instruction]
        if values:
            return str(values[-1])
    return None


def test_dockerfile_is_multi_stage_and_the_portal_carries_no_migration_tool(stack: dict[str, Any]) -> None:
    stages = dockerfile_stages()
    svc = services(stack)
    targets = {name: svc[name]["build"]["target"] for name in APP_SERVICES}
    assert targets == {
        "preflight": "portal",
        "init": "portal",
        "portal": "portal",
        "worker": "worker",
        "beat": "worker",
    }
    assert set(targets.values()) <= set(stages)
    portal, worker = apt_packages(stages, "portal"), apt_packages(stages, "worker")
    for tool in MIGRATION_TOOLS:
        assert not any(p.startswith(tool) for p in portal), f"portal image has {tool}: {sorted(portal)}"
        assert any(p.startswith(tool) for p in worker), f"worker image lacks {tool}: {sorted(worker)}"
    assert {"libmagic1", "poppler-utils"} <= portal  # identification; pdftotext for the index's PDF text
    for packages in (portal, worker):
        # the report PDFs' font (the first candidate archive.evidence.render looks for), openssl for operators
        assert {"fonts-arphic-uming", "openssl", "poppler-utils"} <= packages
    assert "qpdf" in worker
    from archive.evidence.render import FONT_CANDIDATES

    assert str(FONT_CANDIDATES[0]).startswith("/usr/share/fonts/truetype/arphic/")
    base_runs = " ".join(r for w, r in stages["base"]["lines"] if w == "RUN")
    assert "-o archive -g archive -m 0700 /data/sealing" in base_runs  # the volume starts owned by archive
    clamav = apt_packages(stages, "clamav")
    assert {"clamav-daemon", "clamav-freshclam", "clamdscan"} <= clamav
    assert last(stages, "clamav", "USER") == "clamav"
    assert stages["clamav"]["parent"].startswith("debian:")
    for target in ("portal", "worker"):
        assert last(stages, target, "USER") == "10001:10001", target  # `archive`, numeric: not root
        assert last(stages, target, "ENTRYPOINT") == '["archive"]', target
    # the Python dependencies: hash-checked, from the image lock, built in a stage of their own
    installs = [r for s in stages.values() for w, r in s["lines"] if w == "RUN" and "pip install" in r]
    assert any("--require-hashes" in r and "requirements-image.lock" in r for r in installs), installs
    assert all("--require-hashes" in r or "--no-deps" in r for r in installs), installs


def lock_pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a uv/pip-compile hashed lock."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    for line in text.splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)\s*(.*)", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m[1]).lower()
            pins[name] = (m[2], frozenset(re.findall(r"--hash=(\S+)", m[3])))
    return pins


def test_image_lock_pins_what_requirements_lock_pins() -> None:
    """The image installs requirements-image.lock: the runtime dependencies (and the 'fast' extra) resolved
    under requirements.lock's pins, without the test tools. Regenerate it whenever requirements.lock changes:
    uv pip compile pyproject.toml --extra fast --python-version 3.11 --generate-hashes -c requirements.lock
    -o requirements-image.lock"""
    image, full = lock_pins(ROOT / "requirements-image.lock"), lock_pins(ROOT / "requirements.lock")
    differ = {
        n: (v[0], full.get(n, ("missing", frozenset()))[0]) for n, v in image.items() if full.get(n) != v
    }
    assert differ == {}, f"requirements-image.lock is stale against requirements.lock: {differ}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["fast"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0]).lower() for d in wanted}
    assert names - set(image) == set(), "requirements-image.lock lacks runtime dependencies"
    assert not {"pytest", "mypy", "ruff", "playwright"} & set(image), "test tools in the image"


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    sources = [
        src
        for stage in dockerfile_stages().values()
        for word, rest in stage["lines"]
        if word == "COPY" and "--from=" not in rest
        for src in rest.split()[:-1]
    ]
    assert "requirements-image.lock" in sources and "archive" in sources
    for src in sources:
        assert not any(fnmatch.fnmatch(src, p) for p in patterns), f"{src} is excluded by .dockerignore"
