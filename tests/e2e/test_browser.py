"""The pages on a phone, in headless Chromium against the live test server: sign in, see your
role, switch to English, and read a voucher in large print, with nothing wider than the screen.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

import os
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.roles import ROLE_NAMES
from tests.e2e.conftest import PASSWORD, make_user
from tests.second_factor import current_code

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]


def t(text: str, language: str = "zh-hans") -> str:
    with translation.override(language):
        return gettext(text)


def role_name(role: str, language: str) -> str:
    with translation.override(language):
        return str(ROLE_NAMES[role])


@pytest.fixture
def server(django_db_setup, live_server):
    """The live server, started once the test database exists, so that it stops (and lets go of
    its connection) before the database is dropped."""
    return live_server


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def phone(browser):
    context = browser.new_context(**PHONE, locale="zh-CN")
    yield context.new_page()
    context.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("E2E_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_fits_the_screen(page):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def font_size(locator) -> float:
    return float(locator.evaluate("element => getComputedStyle(element).fontSize").removesuffix("px"))


@pytest.fixture
def bureau_user(transactional_db):
    return make_user("bureau", "bureau", first_name="王秀英")


# The data come first, the browser last: the ORM must not run inside Playwright's event loop,
# where Django would hand it a connection of its own that nobody closes.
def test_on_a_phone_sign_in_switch_language_and_read_a_voucher(
    server, live_senior_voucher, bureau_user, phone, shots
):
    page = phone

    # Given the sign-in page on a 360 px phone, in Chinese
    page.goto(f"{server.url}/login/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "login-zh.png", full_page=True)

    # When the bureau administrator signs in through the form, the first time
    page.get_by_label("用户名").fill("bureau")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name=t("Sign in")).click()

    # Then they enrol their authenticator app: a QR code on a page that fits the phone
    page.wait_for_url(f"{server.url}/otp/setup/*")
    qr = page.get_by_role("img", name=t("QR code for the authenticator app"))
    assert qr.is_visible() and qr.bounding_box()["width"] >= 200
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "second-factor-setup-zh.png", full_page=True)
    pending = TOTPDevice.objects.get(user=bureau_user, confirmed=False)
    page.get_by_label(t("Verification code")).fill(current_code(pending))
    page.get_by_role("button", name=t("Confirm")).click()

    # And keep their ten recovery codes, shown once
    page.wait_for_url(f"{server.url}/otp/recovery-codes/*")
    assert page.locator("#recovery-codes li").count() == 10
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "second-factor-codes-zh.png", full_page=True)
    page.get_by_role("link", name=t("I have written them down; continue")).click()

    # Then the home page greets them by name and role, and fits the screen
    page.wait_for_url(f"{server.url}/")
    assert page.get_by_role("heading", level=1).inner_text().endswith("王秀英")
    assert page.locator("main").get_by_text(role_name("bureau", "zh-hans")).is_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "home-zh.png", full_page=True)

    # When they switch the language to English
    page.get_by_role("button", name="English").click()

    # Then the same page is in English
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("button", name="Sign out").is_visible()
    assert page.locator("main").get_by_text("Bureau administrator").is_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "home-en.png", full_page=True)

    # And a senior's voucher shows its balance in large print
    page.goto(f"{server.url}{live_senior_voucher.url()}")
    balance = page.locator("#balance")
    assert balance.is_visible() and balance.inner_text() == "¥144.00"
    assert font_size(balance) >= 32
    assert font_size(page.locator(".service").first) >= 20
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "voucher-en.png", full_page=True)

    page.get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("#balance").inner_text() == "¥144.00"
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "voucher-zh.png", full_page=True)

    # And a forged code gets the plain "not valid" page
    page.goto(f"{server.url}/v/forged-code/")
    assert page.get_by_role("heading", name=t("This code is not valid")).is_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "voucher-invalid-zh.png", full_page=True)

    # And a missing page is a friendly one with a way home
    response = page.goto(f"{server.url}/no-such-page/")
    assert response.status == 404
    assert page.get_by_role("heading", name=t("Page not found")).is_visible()
    assert page.get_by_role("link", name=t("Go to the home page")).is_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "not-found-zh.png", full_page=True)
