"""docker-compose.yml read as Docker Compose reads it: YAML (anchors and ``<<`` merge keys), then ``${...}``
interpolation from an env file, so the tests check and run the very services, commands and healthchecks that
``docker compose up`` would.

Interpolation follows the Compose Specification: ``$$`` is a literal ``$``; ``${VAR}`` and ``$VAR``;
``${VAR:-default}`` (unset or empty) and ``${VAR-default}`` (unset); ``${VAR:?message}`` and ``${VAR?message}``
fail. Defaults holding further ``${...}`` are not needed by our file and not supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = ROOT / "tests/data/compose-spec/compose-spec.json"
#: The services running the application image, whose command is an `archive` subcommand (the ENTRYPOINT).
APP_SERVICES = ("preflight", "init", "portal", "worker", "beat")

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset (or empty): `docker compose` refuses to start."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as Compose reads ``.env`` (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":?" and not value:
            raise MissingVariable(f"{name}: {arg}")
        if op == "?" and value is None:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(substitute, text)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    """The file as YAML, before interpolation (anchors and merge keys resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """The file as `docker compose` sees it with ``env`` as its ``.env``."""
    data = _walk(raw_compose(), env)
    assert isinstance(data, dict)
    return data


def example_env(**overrides: str) -> dict[str, str]:
    """``.env.example``'s values, with ``overrides``."""
    return {**read_env_file(ENV_EXAMPLE), **overrides}


def real_secrets() -> dict[str, str]:
    """What an operator writes over ``.env.example``'s placeholders."""
    return {
        name: f"s3cret-{name.lower().replace('_', '-')}-0123456789"
        for name, value in read_env_file(ENV_EXAMPLE).items()
        if "change-me" in value
    }


def command(service: Mapping[str, Any]) -> list[str]:
    cmd = service["command"]
    return list(cmd) if isinstance(cmd, list) else str(cmd).split()


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def healthcheck(service: Mapping[str, Any]) -> list[str]:
    """A healthcheck's test as argv after ``CMD`` (a ``CMD-SHELL`` test is returned as ``sh -c …``)."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["sh", "-c", " ".join(rest)]
    assert kind == "CMD", test
    return list(rest)
