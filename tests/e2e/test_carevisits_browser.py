"""A care visit recorded on a 360 px phone, in headless Chromium against the live test server: the
worker opens "my visits", records a home visit with a finding in a few taps, and the community's
visit rate on the monthly page goes from 0 to 100 %, with nothing wider than the screen.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

from pathlib import Path

import pytest

from carevisits import services
from carevisits.models import VisitRecord
from tests.carevisits.conftest import build_world
from tests.e2e import test_browser
from tests.e2e.test_browser import CHROMIUM, assert_fits_the_screen
from tests.e2e.test_registry_browser import assert_text_at_least_16px, sign_in

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
def live_world(transactional_db):
    world = build_world()
    senior = world.senior("A")
    services.pair_contact(senior=senior, by=world.worker1, visitor=world.worker1)
    return world, senior


def test_a_worker_records_a_home_visit_on_a_phone_and_the_rate_goes_up(server, live_world, phone, shots):
    world, _senior = live_world
    page = phone
    # Given the worker of 保俶社区, signed in on a 360 px phone: the month's rate is 0 %
    sign_in(page, server, "worker")
    page.goto(f"{server.url}/visits/")
    assert page.locator(".rate").first.inner_text() == "0.0%"
    # When they open "my visits": the senior is due, with a button to record
    page.get_by_role("link", name="我的探访").first.click()
    assert page.get_by_text("逾期：须入户").is_visible()
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "care-my-visits.png", full_page=True)
    page.get_by_role("link", name="记录探访").first.click()
    # Then the form shows the emergency contact and defaults to a home visit now
    assert (
        page.get_by_text("王小明").is_visible() and page.get_by_role("link", name="13900001111").is_visible()
    )
    assert page.get_by_label("入户探访").is_checked()
    assert_fits_the_screen(page)
    assert_text_at_least_16px(page)
    page.screenshot(path=shots / "care-record.png", full_page=True)
    # When they tap one finding, write a word and save
    page.get_by_text("身体状况变差").click()
    page.get_by_label("情况记录").fill("血压偏高，已提醒服药")
    page.get_by_role("button", name="保存探访记录").click()
    page.wait_for_url(f"{server.url}/visits/mine/")
    assert page.get_by_text("探访已记录").is_visible()
    # Then the community's rate on the monthly page is 100 %
    page.goto(f"{server.url}/visits/")
    assert page.locator(".rate").first.inner_text() == "100.0%"
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "care-picture.png", full_page=True)
    record = VisitRecord.objects.get()
    assert (record.mode, record.health_problem, record.recorded_by_id) == ("home", True, world.worker1.pk)
