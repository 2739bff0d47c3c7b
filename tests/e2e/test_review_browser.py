"""Opening review in a real browser (Playwright driving Debian's Chromium, no JavaScript) against ``archive
serve``: an archivist signs in, restricts a record from its page, puts it up for review, opens it from the
queue with a checkbox and a reason, sees it on the public search, and signs out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from archive import db, services
from tests.access_portal import PortalHome, build_portal_home, open_records
from tests.access_portal.staffweb import PASSWORD, add_people
from tests.e2e.helpers import free_port, serving
from tests.e2e.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, _need_browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def review_home(tmp_path_factory: pytest.TempPathFactory) -> PortalHome:
    home = build_portal_home(Path(tmp_path_factory.mktemp("review-browser")))
    add_people(home.settings)
    return home


@pytest.fixture
def portal_url(review_home: PortalHome, tmp_path: Path) -> Iterator[str]:
    _need_browser()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(review_home.settings.home_dir)
    with serving(env, port, tmp_path / "serve.log") as url:
        yield url


def test_sign_in_open_a_record_by_review_see_it_public(
    review_home: PortalHome, portal_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    code = next(c for a, c in open_records(review_home.settings) if a == "GZ")
    with db.read_session(review_home.settings) as s:
        title = services.get_record(s, "GZ", code).title
    record_page = f"{portal_url}/staff/records/GZ/{quote(code)}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, locale="zh-CN")
            page = context.new_page()
            page.goto(record_page)
            assert "/staff/login" in page.url  # not signed in yet
            page.fill("#login", "gz")
            page.fill("#password", PASSWORD)
            page.locator("form button[type=submit]", has_text="登录").click()
            page.wait_for_load_state()
            assert page.url == record_page

            # restrict it first, then put it up for review
            access = page.locator("form[action$='/access']")
            access.locator("input[name=status][value=restricted]").check()
            access.locator("input[name=reason]").fill("待开放审核")
            access.locator("button[type=submit]").click()
            page.wait_for_load_state()
            assert page.locator("[data-access]").get_attribute("data-access") == "restricted"
            page.goto(f"{portal_url}/search?q={quote(title)}")
            assert code not in page.content()

            page.goto(record_page)
            page.locator("form[action$='/review'] input[name=note]").fill("申请开放")
            page.locator("form[action$='/review'] button[type=submit]").click()
            page.wait_for_load_state()
            page.screenshot(path=str(shots / "record.png"), full_page=True)

            # the queue: tick it, open it with a reason
            page.goto(f"{portal_url}/staff/reviews")
            row = page.locator("tr", has_text=code)
            row.locator("input[name=review_id]").check()
            page.locator("input[name=status][value=open]").check()
            page.locator("fieldset.decision input[name=reason]").fill("开放审核通过")
            page.screenshot(path=str(shots / "queue.png"), full_page=True)
            page.locator("fieldset.decision button[type=submit]").click()
            page.wait_for_load_state()
            assert "done=1" in page.url
            assert page.locator("p.notice").count() == 1

            # the public search finds it
            page.goto(f"{portal_url}/search?q={quote(title)}")
            assert page.locator("li.hit", has_text=title).count() >= 1
            page.screenshot(path=str(shots / "public.png"), full_page=True)

            # sign out
            page.goto(f"{portal_url}/staff")
            page.locator("form.logout button[type=submit]").click()
            page.wait_for_load_state()
            assert "/staff/login" in page.url
            page.goto(f"{portal_url}/staff/reviews")
            assert "/staff/login" in page.url
            context.close()
        finally:
            browser.close()
