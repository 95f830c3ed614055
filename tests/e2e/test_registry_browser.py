"""The registry on a 360 px phone, in headless Chromium against the live test server: a worker
imports a workbook (one bad row first, then corrected), finds a senior by pinyin initials, and
reads, edits and marks a senior, with nothing wider than the screen.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import translation

from config.second_factor import requires_second_factor
from eligibility.models import Senior
from tests.e2e import test_browser
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_browser import CHROMIUM, assert_fits_the_screen, font_size, t
from tests.eligibility.test_pages import (
    assert_not_in_url,
    build_city,
    give_voucher_and_services,
    one_good_one_bad,
)
from tests.second_factor import authenticator_of, current_code

with translation.override("zh-hans"):
    MOVED_OUT = str(Senior.Status.MOVED_AWAY.label)  # 已迁出 (the status in context "senior status")

# The phone, browser, live server and screenshot folder of the other browser test.
browser, phone, server, shots = (
    test_browser.browser,
    test_browser.phone,
    test_browser.server,
    test_browser.shots,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]


def sign_in(page, live_server, username: str):
    """Through the sign-in page; a finance, bureau or superuser account then gives the code of
    its authenticator app (enrolled beforehand) on the second factor's page."""
    user = get_user_model().objects.get(username=username)
    device = authenticator_of(user) if requires_second_factor(user) else None
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name=t("Sign in")).click()
    if device is not None:
        page.wait_for_url(f"{live_server.url}/otp/*")
        page.get_by_label(t("Verification code")).fill(current_code(device))
        page.get_by_role("button", name=t("Continue")).click()
    page.wait_for_url(f"{live_server.url}/")


def assert_text_at_least_16px(page):
    smallest = page.evaluate(
        """() => Math.min(...[...document.querySelectorAll('main *')]
            .filter(e => e.offsetParent !== null && [...e.childNodes].some(
                n => n.nodeType === 3 && n.textContent.trim()))
            .map(e => parseFloat(getComputedStyle(e).fontSize)))"""
    )
    assert smallest >= 16, f"{page.url} has text of {smallest}px"


@pytest.fixture
def live_city(transactional_db):
    """The registry's city of tests/eligibility/test_pages.py, committed, with 张三's voucher."""
    city = build_city()
    give_voucher_and_services(city)
    return city


def test_a_worker_imports_a_workbook_on_a_phone_then_finds_a_senior_by_initials(
    server, live_city, phone, shots
):
    # The data (and the files) come first, the browser last (see tests/e2e/test_browser.py).
    with_error = shots / "import-with-error.xlsx"
    with_error.write_bytes(one_good_one_bad(live_city.c1))
    corrected = shots / "import-corrected.xlsx"
    corrected.write_bytes(one_good_one_bad(live_city.c1, fixed=True))
    page = phone

    # Given the worker of 保俶社区, signed in on a 360 px phone, on the import page
    sign_in(page, server, "worker")
    page.get_by_role("link", name=t("Senior registry")).click()
    page.get_by_role("link", name=t("Import from Excel")).click()
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "registry-import-zh.png", full_page=True)

    # When they upload a workbook whose row 3 has a wrong ID-card number, to import it
    page.get_by_label(t("Workbook (.xlsx)")).set_input_files(str(with_error))
    page.get_by_label(t("Only check the workbook; change nothing (dry run)")).uncheck()
    page.get_by_role("button", name=t("Upload")).click()

    # Then the page lists the error with its row number, and offers the marked-up workbook
    page.get_by_role("heading", name=t("The workbook has problems")).wait_for()
    errors = page.locator(".import-errors li")
    assert errors.count() == 1
    assert errors.first.locator(".import-error-where").inner_text().startswith(t("Row %(row)s") % {"row": 3})
    assert page.get_by_role("link", name=t("Download the workbook with the problems marked")).is_visible()
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "registry-import-errors-zh.png", full_page=True)

    # When they upload the corrected workbook
    page.get_by_role("link", name=t("Upload a corrected workbook")).click()
    assert page.locator(".records .record").count() == 1  # the refused upload, among recent imports
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "registry-import-recent-zh.png", full_page=True)
    page.get_by_label(t("Workbook (.xlsx)")).set_input_files(str(corrected))
    page.get_by_label(t("Only check the workbook; change nothing (dry run)")).uncheck()
    page.get_by_role("button", name=t("Upload")).click()

    # Then both seniors are created
    page.get_by_role("heading", name=t("Imported")).wait_for()
    assert page.locator("#count-created").inner_text() == "2"
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "registry-import-done-zh.png", full_page=True)

    # When they search the registry for "oyx"
    page.get_by_role("link", name=t("Go to the registry")).click()
    page.get_by_role("searchbox").fill("oyx")
    page.get_by_role("button", name=t("Search"), exact=True).click()

    # Then 欧阳修 is the one found, and the address bar holds no query
    page.wait_for_load_state()
    assert page.locator(".record-name").all_inner_texts() == ["欧阳修"]
    assert_not_in_url("oyx", page.url)
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "registry-search-zh.png", full_page=True)


def test_a_worker_reads_edits_and_marks_a_senior_on_a_phone(server, live_city, phone, shots):
    page = phone

    # Given the worker of 保俶社区 on the registry, searching for 张三 by pinyin initials
    sign_in(page, server, "worker")
    page.goto(f"{server.url}/registry/")
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "registry-list-zh.png", full_page=True)
    page.locator(".filters summary").click()
    page.get_by_label(t("Tier")).select_option("subsidized")
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "registry-filters-zh.png", full_page=True)
    page.get_by_role("button", name=t("Apply the filters")).click()
    page.wait_for_load_state()
    assert page.locator(".record-name").all_inner_texts() == ["张三"]
    assert "tier=subsidized" in page.url
    page.get_by_role("searchbox").fill("zs")
    page.get_by_role("button", name=t("Search"), exact=True).click()
    page.wait_for_load_state()
    assert page.locator(".record-name").all_inner_texts() == ["张三"]
    assert_not_in_url("zs", page.url)

    # When they open 张三's card
    page.locator(".record").first.click()

    # Then the page shows the tier and why, the voucher and services, and fits the phone
    page.get_by_role("heading", name="张三").wait_for()
    assert page.get_by_text("无偿").first.is_visible()
    assert font_size(page.locator(".pairs dd").first) >= 16
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "registry-senior-zh.png", full_page=True)

    # When they edit: a phone number that is not one, and a fact ticked
    page.get_by_role("link", name=t("Edit"), exact=True).click()
    page.locator("#id_phone").fill("12345")
    page.locator("label[for=id_dementia]").click()
    page.get_by_role("button", name=t("Save the changes")).click()

    # Then the phone field carries the error, and the page still fits
    page.locator("#id_phone_error").wait_for()
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "registry-edit-error-zh.png", full_page=True)

    # When they correct it and save, the history shows the change
    page.locator("#id_phone").fill("13700002222")
    page.get_by_role("button", name=t("Save the changes")).click()
    page.get_by_role("heading", name="张三").wait_for()
    assert "13700002222" in page.locator(".history").inner_text()
    page.screenshot(path=shots / "registry-senior-history-zh.png", full_page=True)

    # When they mark 张三 moved out, they are asked to confirm first
    page.get_by_role("link", name=t("Moved out or deceased")).click()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "registry-status-zh.png", full_page=True)
    page.locator("label.choice", has_text=MOVED_OUT).click()
    page.get_by_role("button", name=t("Continue")).click()
    page.get_by_role("heading", name=t("Please confirm")).wait_for()
    assert page.get_by_text(t("Their current voucher is revoked at once.")).is_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "registry-status-confirm-zh.png", full_page=True)
    page.locator("form button[type=submit]").last.click()
    page.get_by_role("heading", name="张三").wait_for()
    assert page.locator(".record-head .status").inner_text() == MOVED_OUT
    page.screenshot(path=shots / "registry-senior-moved-zh.png", full_page=True)

    # And the registration form fits the phone too
    page.goto(f"{server.url}/registry/new/")
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "registry-new-zh.png", full_page=True)
