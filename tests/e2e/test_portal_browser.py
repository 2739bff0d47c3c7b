"""The portal in a real browser: headless Debian Chromium driven by Playwright, against ``archive serve``.

A member of the public searches in Chinese, narrows by a facet (a plain link), opens a record, downloads its
file (the Chinese file name must survive ``Content-Disposition``), and switches to English; on a phone-sized
screen the search page must not scroll sideways. Screenshots go to the test's tmp dir.

Runs in CI, where ``scripts/setup.sh`` installs ``chromium`` and the ``playwright`` package (test extras):
there a missing browser fails the test; elsewhere it is skipped. ``playwright install`` is never needed —
the system executable is used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.access_portal import OPEN_PDF, PDF_NAME, PortalHome
from tests.access_portal import portal_home as portal_home  # the fixture, re-exported for pytest
from tests.e2e.helpers import free_port, serving

CHROMIUM = os.environ.get("ARCHIVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


def _need_browser() -> None:
    missing = []
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing.append(f"Chromium at {CHROMIUM} (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + ": scripts/setup.sh installs them in CI")
        pytest.skip(message)


@pytest.fixture
def portal_url(portal_home: PortalHome, tmp_path: Path) -> Iterator[str]:
    """``archive serve`` on a free 127.0.0.1 port against the demo node, until the test ends."""
    _need_browser()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(portal_home.settings.home_dir)
    with serving(env, port, tmp_path / "serve.log") as url:
        yield url


def test_search_facet_record_download_english(portal_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True, java_script_enabled=False, locale="zh-CN")
            page = context.new_page()
            page.goto(portal_url + "/")
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            assert page.locator(".tree li").count() == 3
            page.screenshot(path=str(shots / "home.png"), full_page=True)

            # search in Chinese
            page.fill("input[name=q]", "规划")
            page.locator("form.searchbox button[type=submit]").click()
            page.wait_for_load_state()
            assert "/search?q=" in page.url
            assert page.locator("li.hit").count() >= 2
            assert page.locator("li.hit mark").first.inner_text() == "规划"
            page.screenshot(path=str(shots / "search.png"), full_page=True)

            # a facet is a plain link: narrow to the province archive
            page.locator('a[data-facet="archive"]', has_text="广东省档案馆").click()
            page.wait_for_load_state()
            assert "archive=GD" in page.url
            assert page.locator("li.hit").count() == 1
            assert page.locator(".chip").count() == 1

            # open the record
            page.locator("li.hit h3 a").first.click()
            page.wait_for_load_state()
            assert page.locator("h1").inner_text() == "关于珠江三角洲经济区规划的通知"
            assert OPEN_PDF[1] in page.locator("dl.meta").inner_text()
            checksum = page.locator(".sum code").first.inner_text()
            assert len(checksum) == 64
            page.screenshot(path=str(shots / "record.png"), full_page=True)

            # download the file: the Chinese name comes through Content-Disposition
            with page.expect_download() as info:
                page.locator("a.button", has_text="下载").first.click()
            download = info.value
            assert download.suggested_filename == PDF_NAME
            saved = tmp_path / "download.pdf"
            download.save_as(saved)
            assert saved.read_bytes().startswith(b"%PDF")
            import hashlib

            assert hashlib.sha256(saved.read_bytes()).hexdigest() == checksum

            # switch to English; the choice sticks on the next page
            page.locator("a.lang").click()
            page.wait_for_load_state()
            assert page.locator("html").get_attribute("lang") == "en"
            assert page.locator("a.button", has_text="Download").count() >= 1
            page.locator("a.brand").click()
            page.wait_for_load_state()
            assert "Guangzhou Municipal Archives" in page.locator(".tree").inner_text()
            page.screenshot(path=str(shots / "home-en.png"), full_page=True)

            # a phone: nothing wider than the screen
            phone = browser.new_context(viewport={"width": 375, "height": 740}, java_script_enabled=True)
            mobile = phone.new_page()
            mobile.goto(portal_url + "/search?q=%E5%B9%BF%E5%B7%9E")
            width = mobile.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, width
            mobile.screenshot(path=str(shots / "search-phone.png"), full_page=True)
            mobile.goto(portal_url + "/records/GD/" + OPEN_PDF[1])
            assert mobile.evaluate("document.documentElement.scrollWidth") <= 375
            mobile.screenshot(path=str(shots / "record-phone.png"), full_page=True)
            phone.close()
            context.close()
        finally:
            browser.close()
    for name in ("home", "search", "record", "home-en", "search-phone", "record-phone"):
        assert (shots / f"{name}.png").stat().st_size > 1000
    keep = os.environ.get("ARCHIVE_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
