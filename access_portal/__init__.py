"""The public access portal: FastAPI pages and JSON API over the open records of this node.

    from access_portal import create_app
    app = create_app(settings)        # uvicorn access_portal.app:create_app --factory, or `archive serve`

Routes: ``/`` (archives tree with open-record counts), ``/search``, ``/records/{archive}/{code}`` (and its
``/files/{path}`` downloads), ``/archives/{code}/catalogue`` (+ ``.csv``), ``/api/v1/...``, ``/docs``,
``/healthz``; federation: ``/federation/v1/...`` (signed node-to-node calls), ``/remote/{node}/records/...``
(records of peer nodes) and ``scope=region`` on the searches (:mod:`access_portal.routes.federation`,
:mod:`access_portal.regional`). Every public read goes through :mod:`access_portal.services`, which applies
:func:`archive.access.is_public` at each exit.

``create_app`` is imported lazily, so that the ``archive`` CLI (which loads :mod:`access_portal.cli`) does
not pay for FastAPI on every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from access_portal.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from access_portal.app import create_app

        return create_app
    raise AttributeError(f"module 'access_portal' has no attribute {name!r}")
