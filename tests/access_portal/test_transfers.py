"""access_portal.transfers.receive_bag, the one path of a bag sent in one piece (the API's POST /api/v1/transfers
and the workspace's upload form): a refused bag, whatever the reason, leaves nothing under uploads/ and
registers nothing."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from access_portal.transfers import bag_name, receive_bag
from archive import db
from archive.config import Settings
from archive.errors import BadArgument, NotFound, UploadTooLarge
from archive.models import Transfer


def nothing_kept(settings: Settings) -> bool:
    uploads = settings.home_dir / "uploads"
    with db.read_session(settings) as s:
        registered = s.execute(select(func.count()).select_from(Transfer)).scalar_one()
    return registered == 0 and (not uploads.exists() or not any(uploads.iterdir()))


@pytest.mark.parametrize("name", [None, "", ".hidden.zip", "bag.exe", "bag.zip\x00.txt", "../"])
def test_a_bad_name_is_refused_before_anything_is_written(home: Settings, name: str | None) -> None:
    with pytest.raises(BadArgument):
        receive_bag(home, "GZ", io.BytesIO(b"PK\x05\x06" + bytes(18)), name, actor="gz-archivist")
    assert nothing_kept(home)


def test_names_kept_as_sent() -> None:
    assert bag_name("/some/where/广州 2024.tar.gz") == "广州 2024.tar.gz"
    assert bag_name("BAG.ZIP") == "BAG.ZIP"


def test_more_than_the_transfer_limit_is_refused_and_removed(home: Settings) -> None:
    limited = home.model_copy(update={"max_transfer_bytes": 1000})
    with pytest.raises(UploadTooLarge):
        receive_bag(limited, "GZ", io.BytesIO(bytes(1001)), "bag.zip", actor="gz-archivist")
    assert nothing_kept(home)


def test_an_archive_the_catalogue_does_not_know_is_not_found_and_nothing_is_kept(home: Settings) -> None:
    with pytest.raises(NotFound):
        receive_bag(home, "NOPE", io.BytesIO(b"PK\x05\x06" + bytes(18)), "bag.zip", actor="gz-archivist")
    assert nothing_kept(home)
