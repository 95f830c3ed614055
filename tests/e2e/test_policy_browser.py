"""A policy change end to end, on a 360 px phone in headless Chromium against the live server:
the bureau copies the policy in force, lowers the low-fee age from 80 to 75 in the draft,
simulates it (the moves are shown), and activates it from next month. The next evaluation moves
exactly the affected senior; last month's vouchers and redemptions are unchanged.

Screenshots go to E2E_SCREENSHOT_DIR when set (to look at them), else to the test's tmp dir.
"""

import copy
import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from config.months import month_of, next_month
from config.roles import setup_roles
from eligibility.models import Determination, Policy
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from tests.e2e import test_browser
from tests.e2e.conftest import make_user
from tests.e2e.test_browser import CHROMIUM, assert_fits_the_screen, t
from tests.e2e.test_registry_browser import sign_in
from tests.factories import StaffMemberFactory, make_community, make_id_card_number, make_priced_contract
from vouchers.models import Redemption, Voucher
from vouchers.services import issue_vouchers, redeem
from vouchers.tokens import voucher_token

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

RULE = "low_fee_80_empty_nest_no_assistance"
EMPTY_NEST = {"living_arrangement": "empty_nest", "children_in_city": False}


def aged(years: int, on: dt.date, days_after_birthday: int = 30) -> dt.date:
    """A birth date of someone `years` old on `on` (their birthday a month before)."""
    return on.replace(year=on.year - years) - dt.timedelta(days=days_after_birthday)


@pytest.fixture
def live_city(transactional_db):
    """Four seniors, evaluated and with last month's vouchers, one of them served last month."""
    ensure_default_policy()
    setup_roles()  # a transactional test before this one may have flushed the role groups away
    make_user("bureau", "bureau", first_name="王秀英", is_staff=True)
    today = timezone.localdate()
    this_month = month_of(timezone.now())
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    next_first = next_month(this_month)
    community = make_community("P")

    def senior(name, years, **facts):
        return register_senior(
            id_card_number=make_id_card_number(birth_date=aged(years, next_first)),
            name=name,
            community=community,
            **facts,
        )

    seniors = {
        # 77, empty-nest: paid under 80+, low fee under 75+ — the one who moves
        "mover": senior("周桂英", 77, **EMPTY_NEST),
        # 82, empty-nest: low fee either way
        "low_fee": senior("吴建华", 82, **EMPTY_NEST),
        # 77, living with family: paid either way
        "family": senior("郑淑芬", 77),
        # 73, empty-nest: too young either way
        "young": senior("冯志强", 73, **EMPTY_NEST),
    }
    evaluate_eligibility(as_of=last_month)
    issued_at = timezone.make_aware(dt.datetime.combine(last_month, dt.time(0, 30)))
    issue_vouchers(period=last_month, now=issued_at)
    staff = StaffMemberFactory(provider=make_priced_contract(area=[community]).provider)
    served_at = issued_at + dt.timedelta(days=9, hours=10)
    redeem(
        token=voucher_token(Voucher.objects.get(senior=seniors["low_fee"], period=last_month)),
        service_item_code="cleaning",
        quantity=Decimal("2"),
        idempotency_key=uuid.uuid4().hex,
        staff=staff,
        now=served_at,
    )
    evaluate_eligibility(as_of=today)
    return {"seniors": seniors, "last_month": last_month, "next_first": next_first}


def ledger(month) -> list[tuple]:
    vouchers = list(
        Voucher.objects.filter(period=month)
        .order_by("id")
        .values_list(
            "id", "senior_id", "tier_id", "tier_code", "government_share_rate", "face_value", "balance"
        )
    )
    redemptions = list(
        Redemption.objects.order_by("id").values_list(
            "id", "voucher_id", "amount", "government_share", "senior_share", "tier_code"
        )
    )
    return [vouchers, redemptions]


def current_tiers(seniors) -> dict:
    rows = Determination.objects.filter(is_current=True, senior__in=seniors.values()).select_related("tier")
    codes = {row.senior_id: row.tier.code for row in rows}
    return {key: codes[senior.pk] for key, senior in seniors.items()}


@pytest.fixture
def orm_beside_the_browser():
    """This test reads the database between the browser's steps. Inside Playwright's event loop
    Django hands the ORM a connection of its own (tests/e2e/test_browser.py), which it closes
    here, in the same loop, so the test database can be dropped at the end."""
    yield
    connections.close_all()


def test_the_bureau_lowers_the_low_fee_age_and_only_the_affected_senior_moves(
    server, live_city, phone, shots, orm_beside_the_browser
):
    seniors, next_first = live_city["seniors"], live_city["next_first"]
    before = ledger(live_city["last_month"])
    assert current_tiers(seniors) == {
        "mover": "paid",
        "low_fee": "low_fee",
        "family": "paid",
        "young": "paid",
    }
    in_force = Policy.objects.get(status="active")
    condition = copy.deepcopy(in_force.rules.get(code=RULE).condition)
    ages = [part for part in condition["all"] if part.get("fact") == "age"]
    assert [part["value"] for part in ages] == [80]
    ages[0]["value"] = 75
    page = phone

    # Given the bureau, signed in on a phone, on the policies page: the policy in plain words
    sign_in(page, server, "bureau")
    page.goto(f"{server.url}/policies/")
    assert "年满80周岁" in page.content(), page.locator("main").inner_text()[:1500]
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "policies.png", full_page=True)

    # When they copy it to a draft
    page.get_by_role("button", name=t("Copy to a new draft")).first.click()
    page.wait_for_url(f"{server.url}/policies/*/")
    draft = Policy.objects.get(status="draft")
    assert draft.version == in_force.version + 1

    # And lower the low-fee age to 75 in the rule's condition, preview it, and save it
    page.locator(f"#rule-{RULE} summary").click()
    page.locator(f"#rule-{RULE}-condition").fill(json.dumps(condition))
    page.locator(f"#rule-{RULE}").get_by_role("button", name=t("Preview")).click()
    assert "年满75周岁" in page.locator(f"#rule-{RULE}").inner_text()
    page.locator(f"#rule-{RULE}").get_by_role("button", name=t("Save the rule")).click()
    assert draft.rules.get(code=RULE).condition == condition
    assert in_force.rules.get(code=RULE).condition != condition  # the policy in force is untouched
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "policy-draft.png", full_page=True)

    # And simulate it: one senior moves from paid to low fee; nothing is written
    determinations = Determination.objects.count()
    page.goto(f"{server.url}/policies/{draft.pk}/simulate/")
    moved = page.locator("table").first.locator("tr.row-moved")
    assert moved.count() == 1
    cells = [cell.strip() for cell in moved.first.inner_text().split("\t")]
    assert cells[0] == "有偿" and cells[2].startswith("低偿") and cells[-1] == "1", cells
    assert Determination.objects.count() == determinations
    assert_fits_the_screen(page)
    page.screenshot(path=shots / "policy-simulate.png", full_page=True)

    # And activate it from the first of next month (the form's default)
    page.goto(f"{server.url}/policies/{draft.pk}/activate/")
    assert page.locator("input[name=effective_from]").input_value() == next_first.isoformat()
    page.screenshot(path=shots / "policy-activate.png", full_page=True)
    page.get_by_role("button", name=t("Activate from this date")).click()
    page.wait_for_url(f"{server.url}/policies/{draft.pk}/")
    draft.refresh_from_db()
    in_force.refresh_from_db()
    assert (draft.status, draft.effective_from) == ("active", next_first)
    assert (in_force.status, in_force.effective_until) == ("retired", next_first - dt.timedelta(days=1))

    # Then until next month nothing changes; the next evaluation moves exactly the affected senior
    evaluate_eligibility(as_of=timezone.localdate())
    assert current_tiers(seniors)["mover"] == "paid"
    call_command("evaluate_eligibility", "--as-of", next_first.isoformat())
    assert current_tiers(seniors) == {
        "mover": "low_fee",
        "low_fee": "low_fee",
        "family": "paid",
        "young": "paid",
    }
    current = Determination.objects.filter(is_current=True, senior__in=seniors.values())
    assert {row.policy_id for row in current} == {draft.pk}
    assert RULE in current.get(senior=seniors["mover"]).matched_rules

    # And last month's vouchers and redemptions are exactly as they were
    assert ledger(live_city["last_month"]) == before
