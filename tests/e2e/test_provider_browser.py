"""A provider's manager runs their team on a 360 px phone, in headless Chromium against the live
server: from the home page to their staff, add a staff member, revoke a staff member's lost
phone on the devices page, and that phone's next scan is refused by the API; the month's
redemptions read with their totals. Nothing is wider than the screen.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connections

from config.roles import setup_roles
from providers.models import Device, StaffMember
from providers.services import register_device
from tests.e2e import test_browser
from tests.e2e.conftest import make_user
from tests.e2e.test_browser import CHROMIUM, assert_fits_the_screen, t
from tests.e2e.test_registry_browser import sign_in
from tests.factories import StaffMemberFactory

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


@pytest.fixture
def live_team(live_senior_voucher):
    """康乐家政 (its month: 2 hours of cleaning that count, a voided meal), its manager, and a
    staff member with a signed-in phone."""
    setup_roles()  # a transactional test before this one may have flushed the role groups away
    provider = live_senior_voucher.provider
    manager = make_user("provider", "provider", first_name="吴海峰")
    StaffMemberFactory(user=manager, provider=provider, employee_number="KL-M01", display_name="吴海峰")
    staff = StaffMemberFactory(
        user=make_user("hongmei", "staff", first_name="李红梅"), provider=provider, display_name="李红梅"
    )
    device, token = register_device(user=staff.user, name="红米手机")
    return {"provider": provider, "device": device, "token": token, "voucher": live_senior_voucher.token}


@pytest.fixture
def orm_beside_the_browser():
    """This test reads the database between the browser's steps; inside Playwright's event loop
    Django hands the ORM a connection of its own, closed here so the test database can be
    dropped (as in tests/e2e/test_policy_browser.py)."""
    yield
    connections.close_all()


def scan(server, token: str, voucher: str) -> tuple[int, dict]:
    """What the scanner's phone gets for a verify, over HTTP as the phone sends it."""
    request = urllib.request.Request(  # noqa: S310 - the live test server's own http:// address
        f"{server.url}/api/v1/vouchers/verify/",
        data=json.dumps({"token": voucher}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_manager_adds_staff_and_revokes_a_lost_phone_on_a_phone(
    server, live_team, phone, shots, orm_beside_the_browser
):
    provider, device = live_team["provider"], live_team["device"]
    assert scan(server, live_team["token"], live_team["voucher"])[0] == 200  # the phone works
    page = phone

    # Given the manager, signed in on a phone: their home page leads to their staff
    sign_in(page, server, "provider")
    page.locator('a.link-card[href="/providers/staff/"]').click()
    page.wait_for_url(f"{server.url}/providers/{provider.pk}/staff/")
    assert "李红梅" in page.locator("main").inner_text()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "team-staff.png", full_page=True)

    # When they add a staff member
    page.get_by_role("link", name=t("Add a staff member")).click()
    page.get_by_label(t("Full name")).fill("钱小红")
    page.get_by_label(t("Employee number")).fill("KL-S09")
    page.get_by_label(t("Username")).fill("qianxiaohong")
    page.get_by_label(t("First password")).fill("Lantern-river-2025")
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "team-staff-add.png", full_page=True)
    page.get_by_role("button", name=t("Add the staff member")).click()

    # Then they are on the staff list, and can sign in as service staff
    page.wait_for_url(f"{server.url}/providers/{provider.pk}/staff/")
    assert "钱小红" in page.locator("main").inner_text()
    added = StaffMember.objects.select_related("user").get(provider=provider, employee_number="KL-S09")
    assert added.user.username == "qianxiaohong" and added.user.check_password("Lantern-river-2025")
    assert list(added.user.groups.values_list("name", flat=True)) == ["staff"]

    # When they revoke 李红梅's lost phone on the devices page
    page.locator("nav.team-nav").get_by_role("link", name=t("Devices")).click()
    page.wait_for_url(f"{server.url}/providers/{provider.pk}/devices/")
    card = page.locator(f"#device-{device.pk}")
    assert "红米手机" in card.inner_text() and device.token_prefix in card.inner_text()
    assert_fits_the_screen(page)
    card.get_by_role("button", name=t("Revoke this phone")).click()
    page.wait_for_url(f"{server.url}/providers/{provider.pk}/devices/")
    assert t("Phone revoked") in page.locator(f"#device-{device.pk}").inner_text()
    assert page.locator(f"#device-{device.pk}").get_by_role("button").count() == 0
    page.screenshot(path=shots / "team-devices.png", full_page=True)

    # Then that phone's next scan is refused, as a revoked token is
    status, body = scan(server, live_team["token"], live_team["voucher"])
    assert (status, body["code"]) == (401, "not_authenticated")
    assert Device.objects.get(pk=device.pk).revoked_at is not None

    # And the month's redemptions read with their totals: 2 h of cleaning at ¥40, the meal voided
    page.locator("nav.team-nav").get_by_role("link", name=t("Redemptions")).click()
    page.wait_for_url(f"{server.url}/providers/{provider.pk}/redemptions/")
    assert page.locator("#total-count").inner_text() == "1"
    assert page.locator("#total-amount").inner_text() == "¥80.00"
    assert page.locator("#total-government").inner_text() == "¥56.00"
    assert page.locator("li.service-voided").count() == 1
    assert "李*国" in page.locator("main").inner_text()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "team-redemptions.png", full_page=True)
