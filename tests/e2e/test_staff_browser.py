"""The staff workspace in a real browser (headless Debian Chromium, Playwright) against ``archive serve``
and a real ``archive worker``: an archivist of 广州 signs in, uploads a bag through the plain form (no
JavaScript), sees the transfer stored with its records, is refused 广东省's transfer, and signs out; and the
refusals: a wrong password, a locked account (the right password refused too), a form posted without its
CSRF token. On a phone-sized screen the transfers page does not scroll sideways."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.config import Settings
from ingest.pipeline import ingest
from tests.access_portal.staffweb import PASSWORD, add_people
from tests.e2e.helpers import free_port, serving, simple_bag
from tests.e2e.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, _need_browser
from tests.preservation.helpers import Worker

pytestmark = pytest.mark.slow

MAX_FAILURES = 3


@pytest.fixture
def workspace(home: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The portal and a worker on one home (SQLite, the server-less broker), with staff and a GD transfer."""
    _need_browser()
    add_people(home)
    gd_bag = simple_bag(tmp_path / "gd", [("卷1", "GD-900-1990-永久-0001", "省馆移交", b"gd")])
    gd_transfer = ingest(gd_bag, "GD", home).transfer_id
    env = {**os.environ, "ARCHIVE_LOGIN_MAX_FAILURES": str(MAX_FAILURES)}
    worker = Worker(tmp_path / "worker.log", env=env)
    try:
        with serving(env, free_port(), tmp_path / "serve.log") as url:
            yield {"url": url, "gd_transfer": gd_transfer, "worker": worker}
    finally:
        worker.stop()


def _sign_in(page: Any, url: str, login: str, password: str) -> None:
    page.goto(url + "/staff/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.locator("form[action='/staff/login'] button[type=submit]").click()
    page.wait_for_load_state()


def _zip(tmp_path: Path) -> Path:
    bag = simple_bag(tmp_path / "upload", [("卷1", "GZ-901-1990-永久-0001", "浏览器上传测试", b"hello")])
    return Path(shutil.make_archive(str(tmp_path / "bag"), "zip", root_dir=bag.parent, base_dir=bag.name))


def test_sign_in_upload_stored_refused_elsewhere_sign_out(workspace: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = workspace["url"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    bag = _zip(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, locale="zh-CN")
            page = context.new_page()
            page.goto(url + "/staff/transfers")
            assert "/staff/login?next=" in page.url  # not signed in: the sign-in page

            # a wrong password, then the right one
            page.fill("#login", "gz")
            page.fill("#password", "not the password")
            page.locator("form[action='/staff/login'] button[type=submit]").click()
            page.wait_for_load_state()
            assert "SES001" in page.locator("p.problem").inner_text()
            page.screenshot(path=str(shots / "wrong-password.png"), full_page=True)
            page.fill("#password", PASSWORD)
            page.locator("form[action='/staff/login'] button[type=submit]").click()
            page.wait_for_load_state()
            assert page.url.endswith("/staff/transfers")
            assert page.locator("header .who").inner_text() == "当前用户：gz"

            # upload through the plain form; the worker ingests it
            page.locator("nav a", has_text="上传").click()
            page.wait_for_load_state()
            page.select_option("#u-archive", "GZ")
            page.set_input_files("#u-file", str(bag))
            page.locator("form.upload button[type=submit]").click()
            page.wait_for_load_state()
            assert "/staff/transfers/" in page.url
            deadline = time.monotonic() + 180
            while page.locator("#stage").get_attribute("data-status") not in ("stored", "rejected"):
                assert time.monotonic() < deadline, workspace["worker"].text()[-3000:]
                time.sleep(1)
                page.reload()
            assert page.locator("#stage").get_attribute("data-status") == "stored"
            assert page.locator("ul.records a").inner_text() == "GZ/GZ-901-1990-永久-0001"
            assert page.locator("table.history strong.person", has_text="gz").count() >= 1  # who uploaded it
            page.screenshot(path=str(shots / "transfer-stored.png"), full_page=True)
            page.goto(url + "/staff/transfers")
            assert page.locator("tr[data-transfer] td", has_text="gz").count() >= 1  # who uploaded

            # another archive's transfer: the 404 page, as for one that does not exist
            page.goto(url + f"/staff/transfers/{workspace['gd_transfer']}")
            assert page.locator("section.error h1").inner_text() == "未找到"

            # sign out: the session is over
            page.locator("form.logout button").click()
            page.wait_for_load_state()
            assert "/staff/login" in page.url and page.locator("p.notice").count() == 1
            page.goto(url + "/staff")
            assert "/staff/login?next=" in page.url
            context.close()
        finally:
            browser.close()


def test_refusals_locked_account_and_missing_csrf_token(workspace: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = workspace["url"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, locale="zh-CN")
            page = context.new_page()
            for n in range(MAX_FAILURES):
                _sign_in(page, url, "gd", f"guess {n}")
                assert "SES001" in page.locator("p.problem").inner_text()
            _sign_in(page, url, "gd", PASSWORD)  # the right password, during the lockout
            assert "SES002" in page.locator("p.problem").inner_text()
            assert "/staff/login" in page.url
            page.screenshot(path=str(tmp_path / "locked.png"), full_page=True)
            context.close()

            # a form posted with its CSRF field removed is refused, and nothing happens
            scripted = browser.new_context(java_script_enabled=True, locale="zh-CN")
            page = scripted.new_page()
            _sign_in(page, url, "aud", PASSWORD)
            assert page.url.endswith("/staff")
            page.evaluate("document.querySelector('form.logout input[name=csrf_token]').remove()")
            page.locator("form.logout button").click()
            page.wait_for_load_state()
            assert "SES003" in page.locator("section.error").inner_text()
            page.goto(url + "/staff")
            assert page.locator("header .who").count() == 1  # still signed in

            # a phone: the transfers table scrolls in its box, the page does not
            phone = browser.new_context(viewport={"width": 375, "height": 740}, java_script_enabled=True)
            mobile = phone.new_page()
            _sign_in(mobile, url, "root", PASSWORD)
            mobile.goto(url + "/staff/transfers")
            assert mobile.evaluate("document.documentElement.scrollWidth") <= 375
            mobile.screenshot(path=str(tmp_path / "transfers-phone.png"), full_page=True)
            phone.close()
            scripted.close()
        finally:
            browser.close()


def test_upload_page_resumes_a_cut_connection(workspace: dict[str, Any], tmp_path: Path) -> None:
    """With JavaScript the upload page sends the bag through tus in chunks; the second chunk's connection is
    cut, and the client asks where the upload stands and goes on from there (not from the start)."""
    from playwright.sync_api import sync_playwright

    url = workspace["url"]
    chunk = 1024 * 1024
    content = os.urandom(3 * chunk)
    bag = simple_bag(tmp_path / "big", [("卷1", "GZ-902-1990-永久-0001", "分块上传测试", content)])
    packed = Path(shutil.make_archive(str(tmp_path / "big"), "zip", root_dir=bag.parent, base_dir=bag.name))
    chunks = -(-packed.stat().st_size // chunk)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(java_script_enabled=True, locale="zh-CN")
            page = context.new_page()
            _sign_in(page, url, "gz", PASSWORD)
            patches: list[str] = []

            def cut_the_second_chunk(route: Any) -> None:
                if route.request.method == "PATCH":
                    patches.append(route.request.headers.get("upload-offset", ""))
                    if len(patches) == 2:
                        route.abort("connectionreset")
                        return
                route.continue_()

            page.route("**/api/v1/uploads/*", cut_the_second_chunk)
            page.goto(url + f"/staff/upload?chunk={chunk}")
            page.select_option("#u-archive", "GZ")
            page.set_input_files("#u-file", str(packed))
            page.locator("form.upload button[type=submit]").click()
            page.wait_for_url("**/staff/transfers/T*", timeout=120_000)
            # the cut chunk is sent again from its own offset, the rest once each
            assert patches[1] == patches[2] == str(chunk), patches
            assert len(patches) == chunks + 1, patches
            deadline = time.monotonic() + 180
            while page.locator("#stage").get_attribute("data-status") not in ("stored", "rejected"):
                assert time.monotonic() < deadline, workspace["worker"].text()[-3000:]
                time.sleep(1)
                page.reload()
            assert page.locator("#stage").get_attribute("data-status") == "stored"
            assert page.locator("ul.records a").inner_text() == "GZ/GZ-902-1990-永久-0001"
            context.close()
        finally:
            browser.close()
