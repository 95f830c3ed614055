"""The staff's phone scanner, /scan/, end to end: headless Chromium as a 360 × 740 phone whose
camera (tests/e2e/fake_camera.py) shows the senior's card, against the live server. The phone
signs in, scans, records a meal with the senior's share confirmed; does the same with the
network cut and uploads it once when it is back; checks a visit in and out; and is refused a
replaced card in plain words. Each checks the database: exactly what the page said was recorded.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.months import month_of
from config.roles import setup_roles
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from providers.models import StaffMember
from tests.e2e import test_browser
from tests.e2e.conftest import PASSWORD
from tests.e2e.fake_camera import chromium_camera_args, write_y4m
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, t
from tests.factories import (
    ProviderFactory,
    StaffMemberFactory,
    make_community,
    make_id_card_number,
    make_priced_contract,
)
from vouchers.models import Redemption, ScanAttempt, Visit, Voucher
from vouchers.services import issue_vouchers, reissue_voucher
from vouchers.tokens import voucher_token

server, shots = test_browser.server, test_browser.shots

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]

TIMEOUT_MS = 15_000
KINDS = ("redeem", "check_in", "check_out")
AT_THE_DOOR = {"latitude": 30.274085, "longitude": 120.15507, "accuracy": 25}
# An older phone's WebCrypto, without Ed25519: the page checks cards with its vendored library.
NO_WEBCRYPTO_ED25519 = """
const importKey = crypto.subtle.importKey.bind(crypto.subtle);
crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
  (algorithm && (algorithm.name || algorithm)) === "Ed25519"
    ? Promise.reject(new DOMException("Unrecognized name.", "NotSupportedError"))
    : importKey(format, key, algorithm, ...rest);
"""


@dataclass
class Card:
    voucher: Voucher
    staff: StaffMember
    qr_text: str  # what the card's QR holds: the senior's page URL


@pytest.fixture
def card(transactional_db, server) -> Card:
    """李建国's voucher this month (low fee: the voucher pays 70 % of ¥200.00), and a staff member
    of a provider contracted for meals (¥15) and cleaning (¥40 an hour, by check-in and
    check-out), committed before the browser starts."""
    setup_roles()  # a transactional test before this one may have flushed the role groups away
    ensure_default_policy()
    now = timezone.now()
    community = make_community("E")
    senior = register_senior(
        id_card_number=make_id_card_number(birth_date=dt.date(1950, 5, 1)),
        name="李建国",
        community=community,
        living_arrangement="empty_nest",
        children_in_city=False,
        self_care="disabled",
    )
    evaluate_eligibility(as_of=timezone.localdate())
    issue_vouchers(period=month_of(now), now=now)
    voucher = Voucher.objects.get(senior=senior, period=month_of(now))
    provider = ProviderFactory(code="kangle", name="康乐家政", name_en="Kangle Home Services")
    make_priced_contract(provider=provider, area=[community])
    staff = StaffMemberFactory(provider=provider, display_name="李师傅")
    return Card(voucher=voucher, staff=staff, qr_text=f"{server.url}/v/{voucher_token(voucher)}/")


@pytest.fixture
def camera(card, tmp_path):
    return write_y4m(tmp_path / "card.y4m", card.qr_text)


@pytest.fixture
def phone(camera):
    """A Pixel 7 (Chrome on Android) at 360 × 740, its rear camera filming the card."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + chromium_camera_args(camera)
        )
        device = {k: v for k, v in playwright.devices["Pixel 7"].items() if k != "default_browser_type"}
        context = browser.new_context(
            **{**device, "viewport": {"width": 360, "height": 740}},
            locale="zh-CN",
            permissions=["camera", "geolocation"],
            geolocation=AT_THE_DOOR,
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        yield page
        # The test's ORM ran inside Playwright's event loop, where Django gave it a connection of
        # its own: close it there, while the loop runs, so that the test database can be dropped.
        connections.close_all()
        context.close()
        browser.close()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in(page, server, card, shots=None):
    page.goto(f"{server.url}/scan/")
    expect(page.locator("#signin-title")).to_have_text(t("Sign this phone in"))
    if shots:
        assert_fits_a_360_px_phone(page)
        page.screenshot(path=shots / "scan_signin.png", full_page=True)
    page.get_by_label(t("Username")).fill(card.staff.user.username)
    page.get_by_label(t("Password")).fill(PASSWORD)
    page.locator("main button[type=submit]").first.click()
    expect(page.locator("#device-staff")).to_have_text(card.staff.display_name)
    # The keys, revocations and items are synced and the decoder is ready
    expect(page.locator("#scanner")).to_have_attribute("data-ready", "1")


def scan(page):
    page.locator("#scan-button").click()


def assert_fits_a_360_px_phone(page):
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width == [360, 360], f"{page.url} is {width[0]} px wide on a 360 px screen"


def figure(page, container: str, label: str):
    return page.locator(f"#{container} div").filter(has=page.get_by_text(label, exact=True)).locator("dd")


def meals(card):
    return Redemption.objects.filter(voucher=card.voucher, service_item__code="meal", void__isnull=True)


def test_scan_a_card_and_record_a_meal_the_senior_pays_part_of(server, card, phone, shots):
    page = phone
    console = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    sign_in(page, server, card, shots)
    assert page.locator("#scan-button").bounding_box()["height"] >= 96
    assert_fits_a_360_px_phone(page)
    page.screenshot(path=shots / "scan_home.png", full_page=True)

    # When the staff member scans the card
    scan(page)

    # Then the voucher shows as the scanner may see it, with the items as big buttons
    expect(page.locator("#voucher-name")).to_have_text("李*国")
    expect(page.locator("#voucher-balance")).to_have_text("¥200.00")
    meal = page.locator('#item-list button[data-code="meal"]')
    assert meal.bounding_box()["height"] >= 48
    page.screenshot(path=shots / "scan_voucher.png", full_page=True)

    # When they pick the meal: ¥15.00, of which the voucher pays 70 % (¥10.50), the senior ¥4.50
    meal.click()
    expect(page.locator("#senior-due")).to_have_text(
        t("The senior pays ¥%(amount)s now") % {"amount": "4.50"}
    )
    expect(figure(page, "preview", t("Amount"))).to_have_text("¥15.00")
    submit = page.locator("#item-submit")
    assert submit.is_disabled()  # not before the senior's share is confirmed
    page.screenshot(path=shots / "scan_item.png", full_page=True)
    page.locator("#senior-confirm").check()
    submit.click()

    # Then the priced result, in large type
    expect(page.locator("#result-title")).to_have_text(t("Recorded"))
    expect(figure(page, "result-figures", t("Amount"))).to_have_text("¥15.00")
    expect(figure(page, "result-figures", t("Paid by the voucher"))).to_have_text("¥10.50")
    expect(figure(page, "result-figures", t("Senior pays"))).to_have_text("¥4.50")
    expect(figure(page, "result-figures", t("Remaining balance"))).to_have_text("¥189.50")
    assert_fits_a_360_px_phone(page)
    page.screenshot(path=shots / "scan_result.png", full_page=True)

    # And exactly that one redemption is recorded
    (meal_row,) = meals(card)
    assert (meal_row.amount.amount, meal_row.senior_share.amount) == (Decimal("15.00"), Decimal("4.50"))
    assert not meal_row.offline
    # with where the phone was when the card was scanned
    assert (meal_row.latitude, meal_row.longitude, meal_row.location_accuracy) == (
        Decimal("30.274085"),
        Decimal("120.155070"),
        25,
    )

    # And it is listed under this phone's recent services, where it can be voided, with a reason
    page.locator("#result-next").click()
    listed = page.locator(f'#recent-list li[data-id="{meal_row.pk}"]')
    expect(listed.locator(".record-amount")).to_have_text("¥15.00")
    listed.get_by_role("button", name=t("Void"), exact=True).click()
    listed.get_by_label(t("Why void it? (required)")).fill("送错了")
    listed.get_by_role("button", name=t("Void this service")).click()
    expect(page.locator("#home-message")).to_have_text(
        t("Voided: ¥%(amount)s went back to the voucher.") % {"amount": "10.50"}
    )
    expect(listed.locator(".badge-voided")).to_have_text(t("Voided"))
    meal_row.refresh_from_db()
    assert meal_row.void.reason == "送错了"
    # And the strict Content-Security-Policy refused nothing the page needed
    assert not [text for text in console if "Content Security Policy" in text], console


def test_without_network_the_records_wait_and_upload_once_in_order(server, card, phone, shots):
    # The phone's clock starts 63 minutes ago, so that a visit checked in and out without network
    # lasts an hour and its check-out is not ahead of the server's clock.
    start = timezone.now() - dt.timedelta(minutes=63)
    if month_of(start) != month_of(timezone.now()):
        pytest.skip("the first hour of a month: the phone's clock would be in last month")
    page = phone
    page.clock.install(time=start)
    sign_in(page, server, card)
    expect(page.locator("#scanner")).to_have_attribute("data-offline-ready", "1")

    # Given the network is cut after the phone synced
    page.context.set_offline(True)
    # (and the page opens again without it, from what the phone kept)
    kept = []
    page.on("response", lambda response: kept.append(response.from_service_worker))
    page.reload()
    expect(page.locator("#device-staff")).to_have_text(card.staff.display_name)
    expect(page.locator("#net-status")).to_have_text(t("Offline"))
    assert kept and all(kept), kept

    # When the card is scanned: it is checked on the phone, and a meal is kept
    scan(page)
    expect(page.locator("#voucher-offline")).to_be_visible()
    page.locator('#item-list button[data-code="meal"]').click()
    expect(figure(page, "preview", t("Amount"))).to_have_text("¥15.00")
    page.locator("#item-submit").click()
    expect(page.locator("#result-title")).to_have_text(t("Saved on this phone, waiting to upload"))
    page.locator("#result-next").click()
    queued = page.locator("#queue-list li")
    expect(queued).to_have_attribute("data-status", "pending")
    expect(page.locator("#pending-badge")).to_have_text(f"{t('Waiting to upload')} 1")
    page.screenshot(path=shots / "scan_pending.png", full_page=True)
    scanned_at = parse_datetime(queued.locator("time").get_attribute("datetime"))

    # And a cleaning visit is checked in, and an hour later out, scanning the card again
    scan(page)
    page.locator('#item-list button[data-code="cleaning"]').click()
    page.locator("#item-submit").click()
    page.locator("#result-next").click()
    expect(page.locator("#visit-pending")).to_be_visible()
    page.clock.fast_forward("01:02:00")
    page.locator("#check-out-button").click()
    expect(page.locator("#result-title")).to_have_text(t("Saved on this phone, waiting to upload"))
    page.locator("#result-next").click()
    expect(page.locator("#pending-badge")).to_have_text(f"{t('Waiting to upload')} 3")
    assert not Redemption.objects.exists() and not Visit.objects.exists()

    # When the network is back
    page.context.set_offline(False)

    # Then each is uploaded once, in order (the check-out with its check-in's visit), and the
    # page shows the server's figures
    meal, check_in, check_out = (page.locator(f'#queue-list li[data-kind="{kind}"]') for kind in KINDS)
    for entry in (meal, check_in, check_out):
        expect(entry).to_have_attribute("data-status", "synced")
    expect(meal.locator(".record-figures")).to_contain_text("¥10.50")
    expect(check_out.locator(".record-figures")).to_contain_text("¥40.00")
    expect(page.locator("#pending-badge")).to_be_hidden()
    expect(page.locator("#open-visit")).to_be_hidden()
    page.screenshot(path=shots / "scan_synced.png", full_page=True)
    (meal_row,) = meals(card)
    assert meal_row.offline and meal_row.served_at == scanned_at
    assert (meal_row.amount.amount, meal_row.government_share.amount) == (Decimal("15.00"), Decimal("10.50"))
    (visit,) = Visit.objects.select_related("redemption")
    assert visit.offline and visit.status == Visit.Status.CLOSED
    assert visit.redemption.quantity == Decimal("1.00") and visit.redemption.offline
    assert Redemption.objects.count() == 2


def test_check_in_and_out_of_an_hourly_visit(server, card, phone, shots):
    page = phone
    sign_in(page, server, card)

    # When the staff member scans the card and checks in for cleaning (by the hour)
    scan(page)
    page.locator('#item-list button[data-code="cleaning"]').click()
    expect(page.locator("#item-submit")).to_have_text(t("Check in"))
    page.locator("#item-submit").click()
    expect(page.locator("#result-title")).to_have_text(t("Checked in"))
    visit = Visit.objects.get(voucher=card.voucher, status=Visit.Status.OPEN)

    # And 62 minutes later (the visit is rounded to 30 minutes)
    Visit.objects.filter(pk=visit.pk).update(started_at=F("started_at") - dt.timedelta(minutes=62))
    page.locator("#result-next").click()
    expect(page.locator("#open-visit")).to_be_visible()
    page.screenshot(path=shots / "scan_visit.png", full_page=True)

    # checks out, scanning the card again, and confirms the senior's share of 1 hour (¥12.00)
    page.locator("#check-out-button").click()
    expect(page.locator("#senior-due")).to_have_text(
        t("The senior pays ¥%(amount)s now") % {"amount": "12.00"}
    )
    page.locator("#senior-confirm").check()
    page.locator("#item-submit").click()

    # Then one hour is recorded, with the visit's start and end
    expect(page.locator("#result-title")).to_have_text(t("Recorded"))
    expect(figure(page, "result-figures", t("Amount"))).to_have_text("¥40.00")
    page.screenshot(path=shots / "scan_checkout.png", full_page=True)
    visit.refresh_from_db()
    redemption = visit.redemption
    assert visit.status == Visit.Status.CLOSED
    assert redemption.quantity == Decimal("1.00") and redemption.amount.amount == Decimal("40.00")
    assert redemption.started_at == visit.started_at and redemption.ended_at is not None
    page.locator("#result-next").click()
    expect(page.locator("#open-visit")).to_be_hidden()


def test_a_replaced_card_is_refused_in_plain_words_and_records_nothing(server, card, phone, shots):
    # Given the senior's card was reported lost and a new one issued
    reissue_voucher(voucher_id=card.voucher.pk, reason="丢失")
    page = phone
    page.add_init_script(NO_WEBCRYPTO_ED25519)
    sign_in(page, server, card)
    attempts = ScanAttempt.objects.count()

    # When the old card is scanned
    scan(page)

    # Then the page says why, and what the senior should do
    revoked = t(
        "This voucher was stopped or replaced by a new card. Ask the senior to contact their "
        "community worker for the new card."
    )
    expect(page.locator("#refusal-text")).to_have_text(revoked)
    expect(page.locator("#refusal-detail")).not_to_be_empty()
    assert_fits_a_360_px_phone(page)
    page.screenshot(path=shots / "scan_refused.png", full_page=True)
    # And nothing is recorded but the refused scan
    assert not Redemption.objects.exists() and not Visit.objects.exists()
    assert ScanAttempt.objects.filter(outcome="voucher_revoked").count() == 1
    assert ScanAttempt.objects.count() == attempts + 1

    # And without network the phone refuses it too, from the revocations it synced (checking the
    # signature with its vendored Ed25519, as an older phone without it in WebCrypto would)
    loaded = []
    page.on("request", lambda request: loaded.append(request.url))
    page.context.set_offline(True)
    page.locator("#refusal-back").click()
    scan(page)
    expect(page.locator("#view-refusal")).to_have_attribute("data-code", "voucher_revoked")
    expect(page.locator("#refusal-text")).to_have_text(revoked)
    page.locator("#refusal-back").click()
    expect(page.locator("#queue")).to_be_hidden()  # nothing kept to upload
    assert any(url.endswith("/vendor/noble-ed25519/index.js") for url in loaded)
