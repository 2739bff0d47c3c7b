"""The Elasticsearch test server (``ARCHIVE_TEST_ELASTICSEARCH_URL``, started by ``scripts/services.sh``):
its URL, a session client, and a session index prefix whose indices are deleted at the end. The fixtures are
imported (re-exported) by the test modules that use them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import elasticsearch
import pytest


def es_url() -> str:
    url = os.environ.get("ARCHIVE_TEST_ELASTICSEARCH_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail(
                "ARCHIVE_TEST_ELASTICSEARCH_URL is not set: scripts/services.sh must start Elasticsearch"
            )
        pytest.skip("Elasticsearch not started (run scripts/services.sh start elasticsearch)")
    return url


@pytest.fixture(scope="session")
def es_client() -> Iterator[elasticsearch.Elasticsearch]:
    client = elasticsearch.Elasticsearch(es_url(), request_timeout=60)
    client.cluster.health(wait_for_status="yellow", timeout="60s")
    yield client
    client.close()


@pytest.fixture(scope="session")
def es_prefix(es_client: elasticsearch.Elasticsearch) -> Iterator[str]:
    """A prefix unique to this test session; every index under it is deleted at the end."""
    prefix = f"pearl-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    delete_indices(es_client, prefix)


def delete_indices(client: elasticsearch.Elasticsearch, prefix: str) -> None:
    # destructive_requires_name refuses wildcard deletes: resolve the names first
    names = list(client.indices.get(index=f"{prefix}*", expand_wildcards="all").body)
    if names:
        client.indices.delete(index=",".join(names))
