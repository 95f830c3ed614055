"""How a contract's per-hour items count their visits (签到签退): the bureau sets, per item row of
the contract page, the minutes a visit's length is rounded to and the longest visit before it is
closed as an exception. Checked on the row (a multiple of 3 minutes from 3 to 240 that is a
whole number of the item's billing steps; a longest visit from the rounding to 1440 minutes),
carried through `save_contract` (pairs keep an item's values), logged like a price change,
shown on the provider's page, and used by the next check-out. Other units keep the defaults."""

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext
from hypothesis import given
from hypothesis import strategies as st

from config.roles import setup_roles
from eligibility.models import Region
from providers.errors import ProviderError
from providers.models import Contract, ContractItem, ServiceItem
from providers.services import (
    VISIT_INCREMENT_MINUTES,
    ContractItemTerms,
    _smallest_increment,
    check_visit_limits,
    save_contract,
)
from tests.e2e import test_browser
from tests.e2e.conftest import make_user
from tests.e2e.test_browser import CHROMIUM, PHONE, assert_fits_the_screen
from tests.e2e.test_registry_browser import sign_in
from tests.factories import ProviderFactory, ServiceItemFactory, make_community
from tests.vouchers.conftest import NOW, build_world, check_in_and_out

browser, server, shots = test_browser.browser, test_browser.server, test_browser.shots

MULTIPLE_OF_3 = "visits are rounded to a multiple of 3 minutes, from 3 to 240."
WHOLE_MINUTES = "Give a whole number of minutes."
LONGEST = "the longest visit is at least the rounding"


def t(text, language: str = "zh-hans") -> str:
    """A msgid as a page in `language` shows it (English until the zh-Hans is merged)."""
    with translation.override(language):
        return escape(gettext(text))


@pytest.fixture
def bureau(db):
    return make_user("bureau-admin", "bureau", first_name="王秀英")


@pytest.fixture
def city(db):
    community = make_community("V")
    return {
        "community": community,
        "subdistrict": community.parent,
        "provider": ProviderFactory(code="kangle", name="康乐居家养老"),
        "cleaning": ServiceItemFactory(),  # per hour, billed in hundredths
        "meal": ServiceItemFactory(code="meal", name="助餐", name_en="Meal", unit="meal"),
    }


def contract_form(city, **changes):
    """The contract page's form as a browser sends it: cleaning (per hour) on row 0, the meal on
    row 1, one empty row; every row sends its minutes, as the page fills them."""
    data = {
        "number": "XH-2026-020",
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        "status": "active",
        "service_area": [str(city["subdistrict"].pk)],
        "items-TOTAL_FORMS": "3",
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "60",
        "items-0-service_item": str(city["cleaning"].pk),
        "items-0-unit_price": "40.00",
        "items-0-visit_increment_minutes": "30",
        "items-0-visit_max_minutes": "240",
        "items-1-service_item": str(city["meal"].pk),
        "items-1-unit_price": "15",
        "items-1-visit_increment_minutes": "30",
        "items-1-visit_max_minutes": "240",
        "items-2-service_item": "",
        "items-2-unit_price": "",
        "items-2-visit_increment_minutes": "30",
        "items-2-visit_max_minutes": "240",
    }
    return {**data, **changes}


def limits(contract) -> dict:
    rows = contract.items.values_list("service_item__code", "visit_increment_minutes", "visit_max_minutes")
    return {code: (increment, longest) for code, increment, longest in rows}


def item_rows(page: str) -> list[str]:
    """The contract page's item rows (<li>), in order."""
    return page.split('<li class="item-row')[1:]


def field_marked(row: str, field: str) -> bool:
    return re.search(rf'<div class="field field-error">\s*<label for="id_items-\d+-{field}"', row) is not None


def new_contract_url(city) -> str:
    return f"/providers/{city['provider'].pk}/contracts/new/"


# --- On the contract page ---------------------------------------------------------------------


def test_the_bureau_sets_how_an_hourly_items_visits_are_counted(client, bureau, city):
    client.force_login(bureau)
    blank = client.get(new_contract_url(city)).content.decode()
    assert 'name="items-0-visit_increment_minutes" value="30"' in blank
    assert 'name="items-0-visit_max_minutes" value="240"' in blank
    assert 'data-unit="hour"' in blank and 'data-unit="meal"' in blank  # what the CSS shows rows by

    created = client.post(
        new_contract_url(city),
        contract_form(city, **{"items-0-visit_increment_minutes": "15", "items-0-visit_max_minutes": "120"}),
    )

    assert created.status_code == 302
    saved = Contract.objects.get(number="XH-2026-020")
    assert limits(saved) == {"cleaning": (15, 120), "meal": (30, 240)}
    edit = client.get(f"/providers/contracts/{saved.pk}/").content.decode()
    assert 'name="items-0-visit_increment_minutes" value="15"' in edit
    assert 'name="items-0-visit_max_minutes" value="120"' in edit
    page = client.get(f"/providers/{city['provider'].pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    cleaning_row, meal_row = re.findall(r"<tr><td>.*?</tr>", page)
    assert "Rounded to 15 min, at most 2 h" in cleaning_row
    assert "Rounded to" not in meal_row  # meals are scanned, not checked in and out


def test_a_longest_visit_of_part_of_an_hour_is_shown_in_minutes(client, bureau, city):
    client.force_login(bureau)
    changes = {"items-0-visit_increment_minutes": "6", "items-0-visit_max_minutes": "90"}
    assert client.post(new_contract_url(city), contract_form(city, **changes)).status_code == 302

    page = client.get(f"/providers/{city['provider'].pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "Rounded to 6 min, at most 90 min" in page


@pytest.mark.parametrize(
    ("increment", "longest", "field", "message"),
    [
        ("7", "240", "visit_increment_minutes", MULTIPLE_OF_3),
        ("0", "240", "visit_increment_minutes", MULTIPLE_OF_3),
        ("243", "300", "visit_increment_minutes", MULTIPLE_OF_3),
        ("half", "240", "visit_increment_minutes", WHOLE_MINUTES),
        ("", "240", "visit_increment_minutes", WHOLE_MINUTES),
        ("30", "20", "visit_max_minutes", LONGEST),
        ("30", "1443", "visit_max_minutes", LONGEST),
        ("30", "2.5", "visit_max_minutes", WHOLE_MINUTES),
    ],
)
def test_a_wrong_rounding_or_longest_visit_is_marked_on_its_row(
    client, bureau, city, increment, longest, field, message
):
    client.force_login(bureau)
    changes = {"items-0-visit_increment_minutes": increment, "items-0-visit_max_minutes": longest}

    response = client.post(new_contract_url(city), contract_form(city, **changes), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    cleaning_row, meal_row, _empty = item_rows(response.content.decode())
    assert message in cleaning_row and field_marked(cleaning_row, field)
    assert "error-text" not in meal_row
    assert not Contract.objects.exists()


def test_the_rounding_is_a_whole_number_of_the_items_billing_steps(client, bureau, city):
    ServiceItem.objects.filter(pk=city["cleaning"].pk).update(quantity_step=Decimal("0.5"))
    client.force_login(bureau)

    quarter = client.post(
        new_contract_url(city),
        contract_form(city, **{"items-0-visit_increment_minutes": "15"}),
        HTTP_ACCEPT_LANGUAGE="en",
    )
    half_hour = client.post(new_contract_url(city), contract_form(city))  # the default 30 minutes

    assert quarter.status_code == 400
    row = item_rows(quarter.content.decode())[0]
    assert "is billed in steps of 0.5 hour: round its visits to a multiple of 30 minutes." in row
    assert field_marked(row, "visit_increment_minutes")
    assert half_hour.status_code == 302
    assert limits(Contract.objects.get()) == {"cleaning": (30, 240), "meal": (30, 240)}


def test_the_messages_are_in_the_pages_language(client, bureau, city):
    client.force_login(bureau)

    response = client.post(
        new_contract_url(city), contract_form(city, **{"items-0-visit_increment_minutes": "7"})
    )

    expected = t("%(item)s: visits are rounded to a multiple of 3 minutes, from 3 to 240.") % {"item": "助洁"}
    assert expected in item_rows(response.content.decode())[0]


def test_other_units_keep_their_defaults_whatever_their_row_sends(client, bureau, city):
    # A meal row's minutes are not used (the page hides them): they neither refuse nor change it
    client.force_login(bureau)
    changes = {"items-1-visit_increment_minutes": "7", "items-1-visit_max_minutes": "lots"}

    response = client.post(new_contract_url(city), contract_form(city, **changes))

    assert response.status_code == 302
    assert limits(Contract.objects.get()) == {"cleaning": (30, 240), "meal": (30, 240)}


def test_a_change_of_the_minutes_alone_is_logged_like_a_price_change(client, bureau, city):
    client.force_login(bureau)
    assert client.post(new_contract_url(city), contract_form(city)).status_code == 302
    saved = Contract.objects.get()
    edit_url = f"/providers/contracts/{saved.pk}/"
    editing = {"items-INITIAL_FORMS": "2"}

    unchanged = client.post(edit_url, contract_form(city, **editing))
    longer = client.post(edit_url, contract_form(city, **editing, **{"items-0-visit_max_minutes": "300"}))

    assert unchanged.status_code == longer.status_code == 302
    assert limits(saved) == {"cleaning": (30, 300), "meal": (30, 240)}
    entries = LogEntry.objects.filter(content_type__model="contract", object_id=str(saved.pk)).order_by("pk")
    assert [entry.is_addition() for entry in entries] == [True, False]  # nothing logged for no change
    assert entries.last().user_id == bureau.pk
    assert json.loads(entries.last().change_message) == [{"changed": {"fields": ["items"]}}]


# --- The service, whoever calls it ----------------------------------------------------------------


def save(bureau, city, *, items, contract=None) -> Contract:
    return save_contract(
        by=bureau,
        provider=city["provider"],
        contract=contract,
        number="XH-2026-021",
        starts_on=dt.date(2026, 1, 1),
        ends_on=dt.date(2026, 12, 31),
        regions=[city["community"]],
        items=items,
    )


def test_pairs_still_save_and_keep_an_items_minutes(bureau, city):
    saved = save(bureau, city, items=[ContractItemTerms(city["cleaning"], Decimal("40"), 15, 120)])

    save(
        bureau, city, contract=saved, items=[(city["cleaning"], Decimal("42")), (city["meal"], Decimal("15"))]
    )

    prices = dict(saved.items.values_list("service_item__code", "unit_price"))
    assert prices == {"cleaning": Decimal("42.00"), "meal": Decimal("15.00")}
    assert limits(saved) == {"cleaning": (15, 120), "meal": (30, 240)}  # kept; a new item the defaults


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"visit_increment_minutes": 20}, "visit_increment_minutes"),
        ({"visit_increment_minutes": True}, "visit_increment_minutes"),
        ({"visit_max_minutes": 1441}, "visit_max_minutes"),
        ({"visit_increment_minutes": 60}, "visit_max_minutes"),  # above the kept longest visit, 45
    ],
)
def test_the_service_refuses_minutes_the_page_would_refuse(bureau, city, terms, field):
    saved = save(bureau, city, items=[ContractItemTerms(city["cleaning"], Decimal("40"), 15, 45)])

    with pytest.raises(ProviderError) as refused:
        save(
            bureau, city, contract=saved, items=[ContractItemTerms(city["cleaning"], Decimal("41"), **terms)]
        )

    assert (refused.value.code, refused.value.field) == ("invalid_input", field)
    assert limits(saved) == {"cleaning": (15, 45)}
    assert saved.items.get().unit_price.amount == Decimal("40.00")  # nothing of the edit was kept


def test_an_item_billed_in_steps_longer_than_any_rounding_is_refused_saying_so(bureau, city):
    ServiceItem.objects.filter(pk=city["cleaning"].pk).update(quantity_step=Decimal("5"))
    city["cleaning"].refresh_from_db()

    with translation.override("en"), pytest.raises(ProviderError) as refused:
        save(bureau, city, items=[ContractItemTerms(city["cleaning"], Decimal("40"), 240, 480)])

    with translation.override("en"):
        assert "change its billing increment in the service catalogue" in refused.value.detail
    assert not Contract.objects.exists()


@given(
    hundredths=st.integers(min_value=1, max_value=9999),
    increment=st.sampled_from(list(VISIT_INCREMENT_MINUTES)),
)
def test_a_rounding_fits_a_step_exactly_when_it_is_a_multiple_of_the_smallest(hundredths, increment):
    # Given any billing step (in hundredths of an hour) and any rounding allowed
    item = ServiceItem(name="助洁", unit="hour", quantity_step=Decimal(hundredths) / 100)
    smallest = _smallest_increment(item.quantity_step)

    # When the rounding is checked against the step
    try:
        check_visit_limits(service_item=item, increment_minutes=increment, max_minutes=None)
        fits = True
    except ProviderError:
        fits = False

    # Then it fits exactly when it is whole steps, which is when it is a multiple of the smallest
    assert fits == (Decimal(increment) / 60 % item.quantity_step == 0) == (increment % smallest == 0)
    assert smallest % 3 == 0 and Decimal(smallest) / 60 % item.quantity_step == 0


# --- At the door: the next check-out counts by the contract's rounding -------------------------


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return build_world()


def test_a_visit_is_counted_by_the_rounding_set_on_the_contract_page(client, bureau, world, monkeypatch):
    contract = world.contract
    cleaning, meal = (ServiceItem.objects.get(code=code) for code in ("cleaning", "meal"))
    region = Region.objects.filter(pk__in=contract.service_area.values("pk")).get()
    client.force_login(bureau)
    form = {
        "number": contract.number,
        "starts_on": f"{contract.starts_on:%Y-%m-%d}",
        "ends_on": f"{contract.ends_on:%Y-%m-%d}",
        "status": "active",
        "service_area": [str(region.pk)],
        "items-TOTAL_FORMS": "2",
        "items-INITIAL_FORMS": "2",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "60",
        "items-0-service_item": str(cleaning.pk),
        "items-0-unit_price": "40.00",
        "items-0-visit_increment_minutes": "15",
        "items-0-visit_max_minutes": "240",
        "items-1-service_item": str(meal.pk),
        "items-1-unit_price": "15.00",
    }
    assert client.post(f"/providers/contracts/{contract.pk}/", form).status_code == 302

    visit = check_in_and_out(world, monkeypatch, minutes=80)  # 80 minutes: five quarter hours

    assert visit.status_code == 201, visit.content
    assert (visit.json()["quantity"], visit.json()["amount"]) == ("1.25", "50.00")
    assert ContractItem.objects.get(contract=contract, service_item=meal).visit_increment_minutes == 30


# --- On a phone, without JavaScript ---------------------------------------------------------------


@pytest.fixture
def live_contract(transactional_db):
    """The bureau, and a contract with cleaning (per hour) and meals, made through the service
    (before the browser starts: the test uses no ORM inside Playwright's loop)."""
    setup_roles()  # a transactional test before this one may have flushed the role groups away
    bureau = make_user("bureau", "bureau", first_name="王秀英")
    community = make_community("P")
    cleaning = ServiceItemFactory()
    meal = ServiceItemFactory(code="meal", name="助餐", name_en="Meal", unit="meal")
    saved = save_contract(
        by=bureau,
        provider=ProviderFactory(code="kangle", name="康乐居家养老"),
        number="XH-2026-030",
        starts_on=dt.date(2026, 1, 1),
        ends_on=dt.date(2026, 12, 31),
        regions=[community.parent],
        items=[(cleaning, Decimal("40")), (meal, Decimal("15"))],
    )
    return {"contract": saved.pk, "cleaning": cleaning.pk}


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}")
def test_on_a_phone_the_minutes_show_for_hourly_rows_only_without_script(
    server, live_contract, browser, shots
):
    context = browser.new_context(**PHONE, locale="zh-CN", java_script_enabled=False)
    page = context.new_page()
    try:
        # Given the bureau on the contract's page, on a phone with JavaScript off
        sign_in(page, server, "bureau")
        page.goto(f"{server.url}/providers/contracts/{live_contract['contract']}/")
        rows = page.locator(".item-row")

        # Then the cleaning row (per hour) shows its minutes; the meal row and empty rows do not
        assert rows.nth(0).locator(".visit-fields").is_visible()
        assert rows.nth(1).locator(".visit-fields").is_hidden()
        assert rows.nth(2).locator(".visit-fields").is_hidden()
        assert_fits_the_screen(page)
        rows.nth(0).scroll_into_view_if_needed()
        page.screenshot(path=shots / "contract_visit.png")

        # When an empty row takes an hourly item, its minutes appear (and go when it is cleared)
        rows.nth(2).locator("select").select_option(value=str(live_contract["cleaning"]))
        assert rows.nth(2).locator(".visit-fields").is_visible()
        rows.nth(2).locator("select").select_option(index=0)
        assert rows.nth(2).locator(".visit-fields").is_hidden()

        # And the bureau rounds cleaning to 15 minutes, at most 2 hours, and saves
        rows.nth(0).locator("input[name$=visit_increment_minutes]").fill("15")
        rows.nth(0).locator("input[name$=visit_max_minutes]").fill("120")
        page.locator("main button[type=submit]").click()
        page.wait_for_url(re.compile(rf"{server.url}/providers/\d+/#contract-\d+$"))

        # Then the provider's page says how cleaning visits are counted
        shown = page.locator(".contract-items").inner_text()
        assert any(text in shown for text in ("Rounded to 15 min, at most 2 h", "按15分钟取整，最长2小时"))
        assert_fits_the_screen(page)
    finally:
        context.close()
