"""Contracts: a provider's priced items and service area, and the rule that two active contracts
of one provider never cover the same item in the same place at the same time. The service
refuses it (`contract_overlap`, naming the other contract), for a region or one above or below
it; the database refuses the same region, whoever writes (migration 0002's triggers, on
PostgreSQL and SQLite). And billing increments are data: a scan's quantity is a multiple of its
item's step (for an item priced per hour, the visit's length at check-out is billed down to it)."""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.db import IntegrityError, connection, transaction
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext

from eligibility.models import Region
from providers.errors import ProviderError
from providers.models import Contract, ContractItem, ServiceItem
from providers.services import save_contract
from tests.e2e.conftest import make_user
from tests.factories import (
    ContractFactory,
    ContractItemFactory,
    ProviderFactory,
    RegionFactory,
    ServiceItemFactory,
    make_community,
)
from tests.vouchers.conftest import NOW, build_world, check_in_and_out, scan_and_confirm
from vouchers import services
from vouchers.errors import VoucherError
from vouchers.models import Redemption

JAN_1, JUN_30, JUL_1, DEC_31 = (
    dt.date(2026, 1, 1),
    dt.date(2026, 6, 30),
    dt.date(2026, 7, 1),
    dt.date(2026, 12, 31),
)


def t(text, language: str = "zh-hans") -> str:
    """A msgid as a page in `language` shows it (English until the zh-Hans is merged)."""
    with translation.override(language):
        return escape(gettext(text))


@pytest.fixture
def bureau(db):
    return make_user("bureau-admin", "bureau", first_name="王秀英")


@pytest.fixture
def city(db):
    """A subdistrict with two communities, and the items contracts price."""
    community = make_community("K")
    sibling = RegionFactory(code="KC2", name="宝石社区", level="community", parent=community.parent)
    return {
        "community": community,
        "sibling": sibling,
        "subdistrict": community.parent,
        "provider": ProviderFactory(code="kangle", name="康乐居家养老"),
        "cleaning": ServiceItemFactory(),
        "meal": ServiceItemFactory(code="meal", name="助餐", name_en="Meal", unit="meal"),
    }


def contract(
    bureau, city, *, number="XH-2026-001", starts_on=JAN_1, ends_on=DEC_31, regions=None, items=None, **kw
):
    return save_contract(
        by=bureau,
        provider=kw.pop("provider", city["provider"]),
        number=number,
        starts_on=starts_on,
        ends_on=ends_on,
        regions=regions or [city["community"]],
        items=items or [(city["cleaning"], Decimal("40.00"))],
        **kw,
    )


# --- Saving a contract -----------------------------------------------------------------------------


def test_a_contract_is_saved_with_its_items_area_and_an_audit_entry(bureau, city):
    saved = contract(
        bureau,
        city,
        regions=[city["subdistrict"], city["community"]],  # the community is inside the subdistrict
        items=[(city["cleaning"], Decimal("40")), (city["meal"], Decimal("15.5"))],
    )

    assert saved.status == Contract.Status.ACTIVE
    assert list(saved.service_area.all()) == [city["subdistrict"]]  # covered already: stored once
    prices = {i.service_item.code: i.unit_price.amount for i in saved.items.select_related("service_item")}
    assert prices == {"cleaning": Decimal("40.00"), "meal": Decimal("15.50")}
    entry = LogEntry.objects.get(content_type__model="contract", object_id=str(saved.pk))
    assert entry.user_id == bureau.pk and entry.is_addition()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_on": dt.date(2025, 12, 31)}, "ends_on"),
        ({"number": " "}, "number"),
        ({"items": "a price of 0"}, "items"),
        ({"status": "paused"}, "status"),
    ],
)
def test_a_contract_with_bad_input_is_refused(bureau, city, changes, field):
    if changes.get("items") == "a price of 0":
        changes["items"] = [(city["cleaning"], Decimal("0"))]
    with pytest.raises(ProviderError) as refused:
        contract(bureau, city, **changes)
    assert refused.value.code == "invalid_input" and refused.value.field == field
    assert not Contract.objects.exists()


def test_a_contract_needs_a_region_and_each_item_once(bureau, city):
    with pytest.raises(ProviderError) as no_region:
        save_contract(
            by=bureau,
            provider=city["provider"],
            number="X-1",
            starts_on=JAN_1,
            ends_on=DEC_31,
            regions=[],
            items=[(city["cleaning"], Decimal("40"))],
        )
    with pytest.raises(ProviderError) as twice:
        contract(bureau, city, items=[(city["cleaning"], Decimal("40")), (city["cleaning"], Decimal("45"))])
    assert (no_region.value.field, twice.value.field) == ("service_area", "items")


def test_only_the_city_wide_bureau_saves_contracts(city):
    for user in (make_user("accountant", "finance"), make_user("part", "bureau", region=city["subdistrict"])):
        with pytest.raises(ProviderError) as refused:
            contract(user, city)
        assert refused.value.code == "not_permitted"


def test_a_contract_number_is_unique(bureau, city):
    contract(bureau, city)
    with pytest.raises(ProviderError) as refused:
        contract(bureau, city, number="XH-2026-001", provider=ProviderFactory(), regions=[city["sibling"]])
    assert refused.value.code == "duplicate_contract_number"


# --- Overlaps, as the service sees them ------------------------------------------------------------


def test_an_overlapping_contract_is_refused_naming_the_other(bureau, city):
    contract(bureau, city, ends_on=JUN_30)

    with pytest.raises(ProviderError) as refused:
        contract(bureau, city, number="XH-2026-002", starts_on=dt.date(2026, 6, 30))

    assert refused.value.code == "contract_overlap"
    with translation.override("en"):
        detail = refused.value.detail
    assert "XH-2026-001" in detail and "2026-01-01 to 2026-06-30" in detail
    assert "助洁" in detail and city["community"].name in detail
    with translation.override("zh-hans"):
        assert "XH-2026-001" in refused.value.detail
    assert Contract.objects.count() == 1


def test_a_subdistrict_contract_overlaps_a_community_contract_inside_it(bureau, city):
    contract(bureau, city, regions=[city["subdistrict"]])

    with pytest.raises(ProviderError) as refused:
        contract(bureau, city, number="XH-2026-002", regions=[city["community"]])

    # (the database alone would allow it: only the service sees regions above and below)
    assert refused.value.code == "contract_overlap"
    with translation.override("en"):
        assert city["community"].name in refused.value.detail  # where both would cover it


@pytest.mark.parametrize(
    "neighbour",
    ["adjacent period", "other community", "other item", "terminated", "suspended", "other provider"],
)
def test_neighbouring_contracts_that_do_not_overlap_are_allowed(bureau, city, neighbour):
    contract(bureau, city, ends_on=JUN_30)
    kwargs = {
        "adjacent period": {"starts_on": JUL_1},
        "other community": {"regions": [city["sibling"]]},
        "other item": {"items": [(city["meal"], Decimal("15"))]},
        "terminated": {"status": Contract.Status.TERMINATED},
        "suspended": {"status": Contract.Status.SUSPENDED},
        "other provider": {"provider": ProviderFactory()},
    }[neighbour]

    saved = contract(bureau, city, number="XH-2026-002", **kwargs)

    assert Contract.objects.filter(pk=saved.pk).exists()


def test_putting_a_suspended_contract_back_in_force_is_checked_too(bureau, city):
    contract(bureau, city)
    paused = contract(bureau, city, number="XH-2026-002", status=Contract.Status.SUSPENDED)

    with pytest.raises(ProviderError) as refused:
        contract(bureau, city, contract=paused, number="XH-2026-002", status=Contract.Status.ACTIVE)

    assert refused.value.code == "contract_overlap"
    paused.refresh_from_db()
    assert paused.status == Contract.Status.SUSPENDED


def test_an_edit_that_moves_both_period_and_area_is_allowed(bureau, city):
    # Given last year's contract in the sibling community, and this year's there too
    last = contract(
        bureau, city, starts_on=dt.date(2025, 1, 1), ends_on=dt.date(2025, 12, 31), regions=[city["sibling"]]
    )
    contract(bureau, city, number="XH-2026-002", regions=[city["sibling"]])

    # When last year's moves to this year and to the other community at once: a valid end state
    # whose halves, written period first, would overlap this year's contract for a moment
    contract(bureau, city, contract=last, number="XH-2025-001", regions=[city["community"]])

    # Then it is saved
    last.refresh_from_db()
    assert (last.starts_on, list(last.service_area.all())) == (JAN_1, [city["community"]])


def test_editing_items_changes_prices_adds_and_removes(bureau, city):
    saved = contract(bureau, city)

    contract(
        bureau, city, contract=saved, items=[(city["cleaning"], Decimal("42")), (city["meal"], Decimal("15"))]
    )
    prices = dict(saved.items.values_list("service_item__code", "unit_price"))
    assert prices == {"cleaning": Decimal("42.00"), "meal": Decimal("15.00")}

    contract(bureau, city, contract=saved, items=[(city["meal"], Decimal("15"))])
    assert list(saved.items.values_list("service_item__code", flat=True)) == ["meal"]


# --- Overlaps, as the database sees them (whoever writes) -----------------------------------------


def refused_by_the_database(write):
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        write()
    assert "contract_overlap" in str(refused.value)


def test_the_database_refuses_an_overlapping_item_area_or_period_written_past_the_service(city):
    provider, cleaning, community = city["provider"], city["cleaning"], city["community"]
    first = ContractFactory(provider=provider, starts_on=JAN_1, ends_on=JUN_30, area=[community])
    ContractItemFactory(contract=first, service_item=cleaning)

    # An item added to a contract already covering the community
    second = ContractFactory(provider=provider, starts_on=JUN_30, ends_on=DEC_31, area=[community])
    refused_by_the_database(lambda: ContractItemFactory(contract=second, service_item=cleaning))

    # An area added to a contract already holding the item
    third = ContractFactory(provider=provider, starts_on=JUN_30, ends_on=DEC_31)
    ContractItemFactory(contract=third, service_item=cleaning)
    refused_by_the_database(lambda: third.service_area.add(community))

    # A terminated contract over the same ground is allowed, until it is put back in force
    fourth = ContractFactory(provider=provider, status=Contract.Status.TERMINATED, area=[community])
    ContractItemFactory(contract=fourth, service_item=cleaning)
    refused_by_the_database(lambda: Contract.objects.filter(pk=fourth.pk).update(status="active"))

    # An adjacent contract is allowed, until its period is stretched over the first one's
    fifth = ContractFactory(provider=provider, starts_on=JUL_1, ends_on=DEC_31, area=[community])
    ContractItemFactory(contract=fifth, service_item=cleaning)
    refused_by_the_database(lambda: Contract.objects.filter(pk=fifth.pk).update(starts_on=JUN_30))

    assert ContractItem.objects.filter(service_item=cleaning).count() == 4  # first, third, fourth, fifth


def test_the_database_allows_neighbours_and_leaves_regions_above_and_below_to_the_service(city):
    provider, cleaning = city["provider"], city["cleaning"]
    first = ContractFactory(provider=provider, area=[city["community"]])
    ContractItemFactory(contract=first, service_item=cleaning)

    for area, item, other_provider in (
        ([city["sibling"]], cleaning, None),
        ([city["community"]], city["meal"], None),
        ([city["community"]], cleaning, ProviderFactory()),
        ([city["subdistrict"]], cleaning, None),  # above the community: the service's to refuse
    ):
        neighbour = ContractFactory(provider=other_provider or provider, area=area)
        ContractItemFactory(contract=neighbour, service_item=item)

    assert Contract.objects.count() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="parallel writers need PostgreSQL (SQLite has one writer)"
)
def test_two_writers_at_once_cannot_both_commit_an_overlap():
    # Given two contracts of one provider, both with cleaning, neither with an area yet
    community = make_community("R")
    provider = ProviderFactory()
    cleaning = ServiceItemFactory()
    contracts = [ContractFactory(provider=provider), ContractFactory(provider=provider)]
    for each in contracts:
        ContractItemFactory(contract=each, service_item=cleaning)
    barrier, errors = threading.Barrier(2), []

    def give_the_community(index):
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                time.sleep(0.3 * index)  # the second writes while the first is still open
                contracts[index].service_area.add(community)
                time.sleep(0.6 * (1 - index))  # the first keeps its transaction open a while
        except IntegrityError as error:
            errors.append(error)
        finally:
            connection.close()

    # When two writers give each its community at the same moment (neither sees the other's
    # uncommitted row: without the triggers' lock per provider, both would commit)
    threads = [threading.Thread(target=give_the_community, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then the second waits for the first, sees it, and is refused
    assert len(errors) == 1 and "contract_overlap" in str(errors[0])
    assert Contract.objects.filter(service_area=community).count() == 1


# --- The contract pages ---------------------------------------------------------------------------


def contract_form(city, **changes):
    data = {
        "number": "XH-2026-010",
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
        "items-1-service_item": str(city["meal"].pk),
        "items-1-unit_price": "15",
        "items-2-service_item": "",
        "items-2-unit_price": "",
    }
    return {**data, **changes}


def test_the_bureau_creates_and_edits_a_contract_on_its_page(client, bureau, city):
    client.force_login(bureau)
    provider = city["provider"]
    form_page = client.get(f"/providers/{provider.pk}/contracts/new/").content.decode()
    assert f'value="{city["community"].pk}"' in form_page and city["sibling"].name in form_page

    created = client.post(f"/providers/{provider.pk}/contracts/new/", contract_form(city))

    saved = Contract.objects.get(number="XH-2026-010")
    assert (
        created.status_code == 302 and created["Location"] == f"/providers/{provider.pk}/#contract-{saved.pk}"
    )
    assert list(saved.service_area.all()) == [city["subdistrict"]]
    assert saved.items.count() == 2
    edit = client.get(f"/providers/contracts/{saved.pk}/").content.decode()
    assert 'value="40.00"' in edit and "checked" in edit
    assert 'value="2026-01-01"' in edit  # a date input's own (ISO) format, in any language

    # Taking the meal off and raising the cleaning price
    changes = {
        "items-INITIAL_FORMS": "2",
        "items-0-unit_price": "45",
        "items-1-DELETE": "on",
    }
    changed = client.post(f"/providers/contracts/{saved.pk}/", contract_form(city, **changes))
    assert changed.status_code == 302
    assert dict(saved.items.values_list("service_item__code", "unit_price")) == {"cleaning": Decimal("45.00")}
    page = client.get(f"/providers/{provider.pk}/").content.decode()
    assert "XH-2026-010" in page and "¥45.00" in page and city["subdistrict"].name in page


def test_an_overlap_is_explained_on_the_contract_page_and_nothing_is_saved(client, bureau, city):
    contract(bureau, city)  # XH-2026-001, the community, cleaning
    client.force_login(bureau)

    response = client.post(
        f"/providers/{city['provider'].pk}/contracts/new/", contract_form(city), HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "XH-2026-001" in page and "overlaps" in page
    assert not Contract.objects.filter(number="XH-2026-010").exists()


def test_a_price_of_zero_is_refused_on_the_page(client, bureau, city):
    client.force_login(bureau)

    response = client.post(
        f"/providers/{city['provider'].pk}/contracts/new/", contract_form(city, **{"items-0-unit_price": "0"})
    )

    assert response.status_code == 400
    assert not Contract.objects.exists()


@pytest.mark.parametrize("role", ["worker", "staff", "finance", "provider"])
def test_only_the_bureau_opens_the_contract_pages(client, bureau, city, role):
    saved = contract(bureau, city)
    client.force_login(make_user(f"a-{role}", role))

    assert client.get(f"/providers/{city['provider'].pk}/contracts/new/").status_code == 403
    assert client.post(f"/providers/contracts/{saved.pk}/", contract_form(city)).status_code == 403
    saved.refresh_from_db()
    assert saved.number == "XH-2026-001"


# --- Billing increments ---------------------------------------------------------------------------


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return build_world()


def scan(world, *, item, quantity, key, language="zh-hans"):
    """A scan with a quantity, the senior's share confirmed when asked (as the scanner does)."""
    body = {"token": world.token(), "service_item": item, "quantity": quantity, "idempotency_key": key}
    return scan_and_confirm(world.client(language), body)


def record_hours(world, quantity, key):
    """Hours recorded directly, as the demo's history and scripts do (not through the scanner)."""
    return services.redeem(
        token=world.token(),
        service_item_code="cleaning",
        quantity=quantity,
        idempotency_key=key,
        staff=world.staff,
    )


def rounded_to_quarter_hours(world):
    ContractItem.objects.filter(contract=world.contract, service_item__code="cleaning").update(
        visit_increment_minutes=15
    )


def test_an_hourly_item_billed_by_the_half_hour_takes_half_hours_only(world, monkeypatch):
    ServiceItem.objects.filter(code="cleaning").update(quantity_step=Decimal("0.5"))
    rounded_to_quarter_hours(world)

    # At the door: a 30-minute visit bills half an hour, one of 75 minutes (1.25 h) an hour
    half = check_in_and_out(world, monkeypatch, minutes=30, key="visit-half")
    quarter = check_in_and_out(world, monkeypatch, minutes=75, key="visit-quar")
    # Recorded directly, a quarter hour is refused with the item's step
    assert record_hours(world, "0.5", "script-half").redemption.amount.amount == Decimal("20.00")
    with translation.override("en"):
        with pytest.raises(VoucherError) as refused:
            record_hours(world, "1.25", "script-quar")
        refused_detail = refused.value.detail

    assert half.status_code == 201, half.content
    assert (half.json()["quantity"], half.json()["amount"]) == ("0.50", "20.00")
    assert quarter.status_code == 201, quarter.content
    assert (quarter.json()["quantity"], quarter.json()["amount"]) == ("1.00", "40.00")
    assert refused.value.code == "invalid_input"
    assert refused_detail == "This service is counted in steps of 0.5 hour."
    assert Redemption.objects.count() == 3


def test_hours_keep_todays_hundredths_unless_the_bureau_sets_a_step(world, monkeypatch):
    assert ServiceItem.objects.get(code="cleaning").quantity_step == Decimal("0.01")
    rounded_to_quarter_hours(world)

    visit = check_in_and_out(world, monkeypatch, minutes=75)

    assert visit.status_code == 201, visit.content
    assert (visit.json()["quantity"], visit.json()["amount"]) == ("1.25", "50.00")
    assert record_hours(world, "1.25", "script-hund").redemption.quantity == Decimal("1.25")


def test_meals_and_visits_are_counted_whole(world):
    ServiceItemFactory(code="bathing", name="助浴", unit="visit")
    ContractItemFactory(contract=world.contract, service_item=ServiceItem.objects.get(code="bathing"))

    meals = scan(world, item="meal", quantity="1.5", key="scan-meal-01", language="en")
    visits = scan(world, item="bathing", quantity="1.5", key="scan-bath-01", language="en")
    two_visits = scan(world, item="bathing", quantity="2", key="scan-bath-02")

    assert meals.status_code == visits.status_code == 400
    assert meals.json()["detail"] == "This service is counted in steps of 1 meal."
    assert visits.json()["detail"] == "This service is counted in steps of 1 visit."
    assert two_visits.status_code == 201


def test_the_database_refuses_a_step_that_is_not_above_zero(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        ServiceItem.objects.create(
            code="odd", name="怪", unit="hour", category="care", quantity_step=Decimal("0")
        )


def test_removing_an_item_with_recorded_services_is_refused(world, bureau):
    assert scan(world, item="meal", quantity="1", key="scan-meal-02").status_code == 201
    contract_ = world.contract
    regions = list(Region.objects.filter(pk__in=contract_.service_area.values("pk")))
    cleaning = ServiceItem.objects.get(code="cleaning")

    with pytest.raises(ProviderError) as refused:
        save_contract(
            by=bureau,
            provider=contract_.provider,
            contract=contract_,
            number=contract_.number,
            starts_on=contract_.starts_on,
            ends_on=contract_.ends_on,
            regions=regions,
            items=[(cleaning, Decimal("40"))],
        )

    assert refused.value.code == "item_in_use"
    assert contract_.items.count() == 2
