"""Check-in and check-out of items priced per hour (签到签退): the length is rounded to the
contract item's increment, capped by its maximum, priced in the month of check-in."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import strategies as st

from billing.services import settle
from providers.models import ContractItem
from tests.vouchers.conftest import NOW, balance_of
from vouchers import services
from vouchers.errors import VoucherError
from vouchers.models import Redemption, Visit

CHECK_IN = "/api/v1/visits/check-in/"


def key() -> str:
    return f"k-{uuid.uuid4().hex[:20]}"


def check_in(world, *, tier="subsidized", at=NOW, **kwargs):
    return services.check_in(
        token=world.token(tier),
        service_item_code="cleaning",
        idempotency_key=kwargs.pop("idempotency_key", key()),
        staff=world.staff,
        device=world.device,
        now=at,
        **kwargs,
    ).visit


def check_out(world, visit, *, tier="subsidized", at, **kwargs):
    return services.check_out(
        visit_id=visit.pk,
        token=world.token(tier),
        idempotency_key=kwargs.pop("idempotency_key", key()),
        staff=world.staff,
        device=world.device,
        now=at,
        **kwargs,
    )


def refused(code, call, *args, **kwargs):
    with pytest.raises(VoucherError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.detail
    return caught.value


@pytest.mark.parametrize(
    ("minutes", "hours"),
    [(62, "1.00"), (44, "0.50"), (45, "1.00"), (15, "0.50"), (89, "1.50"), (120, "2.00"), (239, "4.00")],
)
def test_check_out_prices_the_length_rounded_to_the_half_hour(world, minutes, hours):
    visit = check_in(world)
    before = balance_of(world.vouchers["subsidized"])
    result = check_out(world, visit, at=NOW + dt.timedelta(minutes=minutes))
    redemption = result.redemption
    assert redemption.quantity == Decimal(hours)
    assert redemption.amount.amount == Decimal("40.00") * Decimal(hours)
    assert redemption.started_at == NOW and redemption.ended_at == NOW + dt.timedelta(minutes=minutes)
    assert redemption.served_at == NOW
    assert balance_of(world.vouchers["subsidized"]) == before - redemption.government_share.amount
    visit.refresh_from_db()
    assert visit.status == Visit.Status.CLOSED and visit.redemption_id == redemption.pk


@given(
    minutes=st.floats(min_value=0, max_value=24 * 60, allow_nan=False),
    increment=st.sampled_from([6, 15, 30, 60]),
)
def test_the_billed_hours_are_the_nearest_increment_in_hundredths(minutes, increment):
    hours = services.visit_quantity(minutes=minutes, increment_minutes=increment, step=Decimal("0.01"))
    assert hours == hours.quantize(Decimal("0.01"))
    assert abs(hours * 60 - Decimal(str(minutes))) <= Decimal(increment) / 2 + Decimal("0.0001")
    assert (hours * 60) % increment == 0


def test_a_visit_shorter_than_half_an_increment_is_not_charged_and_stays_open(world):
    visit = check_in(world)
    refused("visit_too_short", check_out, world, visit, at=NOW + dt.timedelta(minutes=14))
    visit.refresh_from_db()
    assert visit.status == Visit.Status.OPEN and not Redemption.objects.exists()


def test_a_visit_past_its_maximum_closes_as_an_exception_and_charges_nothing(world):
    visit = check_in(world)
    assert visit.max_minutes == 240
    error = refused("visit_overdue", check_out, world, visit, at=NOW + dt.timedelta(minutes=241))
    assert "4" in error.detail
    visit.refresh_from_db()
    assert visit.status == Visit.Status.OVERDUE and visit.redemption is None
    assert not Redemption.objects.exists()
    refused("visit_overdue", check_out, world, visit, at=NOW + dt.timedelta(minutes=250))


def test_the_schedule_closes_visits_left_open_past_their_maximum(world):
    visit = check_in(world)
    assert services.close_overdue_visits(now=NOW + dt.timedelta(minutes=239)) == 0
    assert services.close_overdue_visits(now=NOW + dt.timedelta(minutes=241)) == 1
    visit.refresh_from_db()
    assert visit.status == Visit.Status.OVERDUE and visit.closed_at is not None


def test_the_increment_and_maximum_are_the_contract_items_data(world):
    ContractItem.objects.filter(service_item__code="cleaning").update(
        visit_increment_minutes=15, visit_max_minutes=60
    )
    visit = check_in(world)
    assert (visit.increment_minutes, visit.max_minutes) == (15, 60)
    assert check_out(world, visit, at=NOW + dt.timedelta(minutes=52)).redemption.quantity == Decimal("0.75")
    # A later edit of the contract item does not change a visit already begun.
    second = check_in(world, at=NOW + dt.timedelta(hours=2))
    ContractItem.objects.filter(service_item__code="cleaning").update(visit_max_minutes=600)
    refused("visit_overdue", check_out, world, second, at=NOW + dt.timedelta(hours=2, minutes=61))


def test_the_database_refuses_an_increment_that_is_not_whole_hundredths_of_an_hour(world):
    item = ContractItem.objects.get(service_item__code="cleaning")
    with pytest.raises(IntegrityError), transaction.atomic():
        ContractItem.objects.filter(pk=item.pk).update(visit_increment_minutes=10)


def test_one_open_visit_per_staff_member(world):
    first = check_in(world)
    error = refused("visit_open", check_in, world, tier="low_fee", at=NOW + dt.timedelta(minutes=5))
    assert error.extra["visit_id"] == first.pk
    services.cancel_visit(visit_id=first.pk, reason="scanned the wrong card", staff=world.staff)
    assert check_in(world, tier="low_fee", at=NOW + dt.timedelta(minutes=6)).status == Visit.Status.OPEN
    with pytest.raises(IntegrityError), transaction.atomic():
        Visit.objects.filter(pk=first.pk).update(status=Visit.Status.OPEN)


def test_a_repeated_check_in_key_returns_the_same_visit_and_check_out_too(world):
    same = key()
    visit = check_in(world, idempotency_key=same)
    assert check_in(world, idempotency_key=same).pk == visit.pk
    out_key = key()
    first = check_out(world, visit, at=NOW + dt.timedelta(hours=1), idempotency_key=out_key)
    again = check_out(world, visit, at=NOW + dt.timedelta(hours=1, minutes=3), idempotency_key=out_key)
    assert again.replayed and again.redemption.pk == first.redemption.pk
    assert Redemption.objects.count() == 1
    refused("visit_closed", check_out, world, visit, at=NOW + dt.timedelta(hours=2))


def test_check_out_needs_the_same_card(world):
    visit = check_in(world)
    error = refused("invalid_token", check_out, world, visit, tier="low_fee", at=NOW + dt.timedelta(hours=1))
    assert "card" in error.detail or "卡" in error.detail


def test_per_visit_items_are_not_checked_in(world):
    refused(
        "not_per_hour",
        services.check_in,
        token=world.token(),
        service_item_code="meal",
        idempotency_key=key(),
        staff=world.staff,
        device=world.device,
        now=NOW,
    )


def test_a_visit_across_the_month_end_is_priced_in_the_month_of_check_in(world):
    night = dt.datetime(2026, 11, 30, 23, 10, tzinfo=NOW.tzinfo)
    visit = check_in(world, at=night)
    result = check_out(world, visit, at=night + dt.timedelta(minutes=95))
    assert result.redemption.service_month == dt.date(2026, 11, 1)
    assert (
        result.redemption.ended_at.month == 12
        or result.redemption.ended_at.astimezone(NOW.tzinfo).month == 12
    )


def test_check_out_after_the_month_of_check_in_was_settled_is_refused(world):
    night = dt.datetime(2026, 11, 30, 23, 10, tzinfo=NOW.tzinfo)
    visit = check_in(world, at=night)
    settle(month=dt.date(2026, 11, 1), job="test", now=dt.datetime(2026, 12, 1, 0, 30, tzinfo=NOW.tzinfo))
    refused("period_closed", check_out, world, visit, at=night + dt.timedelta(minutes=95))


def test_the_low_fee_share_is_confirmed_at_check_out_through_the_api(world):
    client = world.client()
    visit = client.post(
        CHECK_IN,
        {
            "token": world.token("low_fee"),
            "service_item": "cleaning",
            "idempotency_key": key(),
            "location": {"latitude": 30.274084123, "longitude": 120.155070, "accuracy": 12.4},
        },
        format="json",
    )
    assert visit.status_code == 201, visit.content
    assert visit.json()["status"] == "open"
    Visit.objects.filter(pk=visit.json()["id"]).update(started_at=NOW - dt.timedelta(minutes=62))
    out = f"/api/v1/visits/{visit.json()['id']}/check-out/"
    body = {"token": world.token("low_fee"), "idempotency_key": key()}
    asked = client.post(out, body, format="json")
    assert asked.status_code == 409 and asked.json()["code"] == "confirmation_required"
    quote = asked.json()["quote"]
    assert quote == {
        "amount": "40.00",
        "government_share": "28.00",
        "senior_share": "12.00",
        "remaining_balance": f"{balance_of(world.vouchers['low_fee']) - Decimal('28.00'):.2f}",
        "shortfall": "0.00",
    }
    done = client.post(out, {**body, "confirm_senior_share": quote["senior_share"]}, format="json")
    assert done.status_code == 201, done.content
    redemption = Redemption.objects.get()
    assert done.json()["started_at"] and done.json()["ended_at"] and done.json()["quantity"] == "1.00"
    assert (redemption.latitude, redemption.longitude, redemption.location_accuracy) == (
        Decimal("30.274084"),
        Decimal("120.155070"),
        12,
    )
    assert client.get("/api/v1/visits/?status=open").json() == []
    assert client.get("/api/v1/visits/").json()[0]["redemption_id"] == redemption.pk


def test_a_check_out_made_offline_in_time_counts_though_the_schedule_closed_the_visit(world):
    visit = check_in(world)
    assert services.close_overdue_visits(now=NOW + dt.timedelta(hours=5)) == 1
    late_upload = NOW + dt.timedelta(hours=5, minutes=10)
    result = check_out(world, visit, at=late_upload, scanned_at=NOW + dt.timedelta(minutes=200))
    assert result.redemption.quantity == Decimal("3.50") and result.redemption.offline
    visit.refresh_from_db()
    assert visit.status == Visit.Status.CLOSED and visit.close_reason == ""
