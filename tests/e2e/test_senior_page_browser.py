"""The senior's own page on a 360 × 740 phone, in headless Chromium against the live server: the
balance on one line and nothing wider than the screen, at normal and at 200 % text; whom to call;
and "this service did not happen" from the button to the confirmation, recorded once.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

from pathlib import Path

import pytest
from django.db import connections

from tests.e2e import test_browser
from tests.e2e.test_browser import CHROMIUM, t
from vouchers.models import Dispute, Redemption

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

DOUBLE_TEXT = "200%"  # the root font size of a phone set to the largest text
WORKER_PHONE = "0571-87991001"


@pytest.fixture
def with_contacts(live_senior_voucher):
    """The community's worker and the provider's hotline, set before the browser starts."""
    community = live_senior_voucher.senior.community
    community.contact_name, community.contact_phone = "陈晓燕", WORKER_PHONE
    community.save()
    provider = live_senior_voucher.provider
    provider.contact_phone = "13957101234"
    provider.save()
    cleaning = Redemption.objects.get(voucher=live_senior_voucher.voucher, void__isnull=True)
    return cleaning


@pytest.fixture
def orm_beside_the_browser():
    """This test reads the database after the browser's steps. Inside Playwright's event loop
    Django hands the ORM a connection of its own (tests/e2e/test_browser.py), which it closes
    here, in the same loop, so the test database can be dropped at the end."""
    yield
    connections.close_all()


def assert_fits_a_360_px_phone(page):
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    # A mobile browser widens its layout to what overflows: the screen is 360 px, not innerWidth.
    assert width == [360, 360], f"{page.url} is {width[0]} px wide on a 360 px screen"


def assert_balance_on_one_line(page, text: str):
    balance = page.locator("#balance")
    assert balance.inner_text() == text
    box = balance.evaluate(
        """element => {
            const style = getComputedStyle(element);
            return {height: element.getBoundingClientRect().height, line: parseFloat(style.lineHeight),
                    size: parseFloat(style.fontSize), scroll: element.scrollWidth, client: element.clientWidth};
        }"""
    )
    assert box["height"] < 1.5 * box["line"], f"the balance takes {box['height'] / box['line']:.1f} lines"
    assert box["scroll"] <= box["client"], "the balance is wider than its box"
    return box["size"]


def test_the_page_at_normal_and_double_text_size(server, live_senior_voucher, with_contacts, phone, shots):
    page = phone
    for label, style in (("", None), ("-200", DOUBLE_TEXT)):
        page.goto(f"{server.url}{live_senior_voucher.url()}")
        body = float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
        if style:
            # Set through the DOM: the Content-Security-Policy refuses an injected <style>.
            page.evaluate("size => { document.documentElement.style.fontSize = size; }", style)
            assert float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")) == 2 * body

        # The balance is on one line, large, and the page is no wider than the phone
        size = assert_balance_on_one_line(page, "¥144.00")
        assert size >= 40
        assert_fits_a_360_px_phone(page)
        # Whom to call: large tap targets that dial the number
        call = page.locator(f'a[href="tel:{WORKER_PHONE.replace("-", "")}"]')
        assert call.is_visible() and call.bounding_box()["height"] >= 48
        # Each service has its button, as wide as the card, at least 48 px high
        button = page.get_by_role("button", name=t("This service did not happen"))
        assert button.count() == 1 and button.bounding_box()["height"] >= 48
        page.screenshot(path=shots / f"senior-active{label}.png", full_page=True)


def test_a_senior_reports_that_a_service_did_not_happen(
    server, live_senior_voucher, with_contacts, phone, shots, orm_beside_the_browser
):
    cleaning = with_contacts
    page = phone

    # Given the senior's page on a phone, with this month's cleaning on it
    page.goto(f"{server.url}{live_senior_voucher.url()}")
    assert page.locator(".service").count() == 1

    # When they press "this service did not happen" under it
    page.get_by_role("button", name=t("This service did not happen")).click()

    # Then they are asked to confirm, seeing the service, with room for a note and a phone
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == t("Did this service not happen?")
    assert_fits_a_360_px_phone(page)
    page.screenshot(path=shots / "senior-dispute-confirm.png", full_page=True)
    page.get_by_label(t("A few words (optional)")).fill("那天没有人来，我一直在家。")
    page.get_by_label(t("Phone number to call you back (optional)")).fill("139 1234 5678")
    page.get_by_role("button", name=t("Yes, this service did not happen")).click()

    # And after confirming, a plain confirmation in large type
    page.wait_for_load_state()
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == t("Recorded")
    assert test_browser.font_size(heading) >= 32
    assert_fits_a_360_px_phone(page)
    page.screenshot(path=shots / "senior-dispute-recorded.png", full_page=True)

    # And back on their page, the service says it was reported, with no second button
    page.get_by_role("link", name=t("Back to my voucher")).click()
    page.wait_for_load_state()
    assert page.get_by_role("button", name=t("This service did not happen")).count() == 0
    reported = t("You reported that this service did not happen. The civil-affairs bureau will check.")
    assert page.get_by_text(reported).is_visible()
    page.screenshot(path=shots / "senior-dispute-after.png", full_page=True)

    # And the dispute is recorded once, with the note and the phone
    (dispute,) = Dispute.objects.all()
    assert dispute.redemption_id == cleaning.pk
    assert (dispute.note, dispute.callback_phone, dispute.status) == (
        "那天没有人来，我一直在家。",
        "13912345678",
        Dispute.Status.OPEN,
    )
