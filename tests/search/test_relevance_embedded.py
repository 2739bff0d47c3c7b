"""The relevance query set (tests/search/relevance.py) on the embedded backend, over the real demo (ingested
through the pipeline and indexed through the outbox) and the generated corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from archive import db
from archive.config import Settings
from ingest.demo import run_demo
from search import EmbeddedBackend, drain
from tests.search.relevance import DEMO_CASES, GENERATED_CASES, failures, generated_corpus


@pytest.fixture(scope="module")
def demo_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    home = tmp_path_factory.mktemp("demo")
    settings = Settings(home=home / "home")
    run_demo(settings, home / "bags", Console(quiet=True))
    backend = EmbeddedBackend(settings.home_dir / "search.sqlite3")
    counts = drain(settings, backend)
    assert counts.failed == 0, counts.errors
    yield backend
    backend.close()
    db.dispose_engines()


@pytest.fixture(scope="module")
def generated_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(Path(tmp_path_factory.mktemp("gen")) / "search.sqlite3")
    backend.index(generated_corpus())
    yield backend
    backend.close()


def test_the_set_is_big_enough() -> None:
    assert len(DEMO_CASES) + len(GENERATED_CASES) >= 40
    tags = {t for c in [*DEMO_CASES, *GENERATED_CASES] for t in c.tags}
    assert {"zh1", "zh2", "zh3", "en", "mixed", "code", "date", "facet", "leak", "fulltext"} <= tags


@pytest.mark.parametrize("case", DEMO_CASES, ids=lambda c: c.name)
def test_demo(demo_backend: EmbeddedBackend, case: object) -> None:
    assert failures(demo_backend, [case]) == []  # type: ignore[list-item]


@pytest.mark.parametrize("case", GENERATED_CASES, ids=lambda c: c.name)
def test_generated(generated_backend: EmbeddedBackend, case: object) -> None:
    assert failures(generated_backend, [case], generated_corpus()) == []  # type: ignore[list-item]
