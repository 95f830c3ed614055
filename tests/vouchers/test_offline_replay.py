"""Services scanned offline and sent later (`scanned_at`): priced as of the scan, within the
grace window, never into a settled month, refused if the card was revoked before the scan or the
balance no longer covers the government share; a flush is not rate limited."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.test import override_settings

from billing.services import settle
from tests.vouchers.conftest import NOW, balance_of
from vouchers import services
from vouchers.errors import VoucherError
from vouchers.models import Redemption, Voucher
from vouchers.tokens import voucher_token

REDEEM = "/api/v1/redemptions/"


def replay_body(token, *, scanned_at, item="meal", quantity="1", key=None):
    return {
        "token": token,
        "service_item": item,
        "quantity": quantity,
        "idempotency_key": key or f"off-{uuid.uuid4().hex[:16]}",
        "scanned_at": scanned_at.isoformat(),
    }


def redeem_offline(world, *, tier="subsidized", scanned_at, now=NOW, quantity="1", token=None):
    return services.redeem(
        token=token or world.token(tier),
        service_item_code="meal",
        quantity=quantity,
        idempotency_key=f"off-{uuid.uuid4().hex[:16]}",
        staff=world.staff,
        device=world.device,
        now=now,
        scanned_at=scanned_at,
        from_scanner=True,
    )


def refused(code, call, *args, **kwargs):
    with pytest.raises(VoucherError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.detail
    return caught.value


def test_a_service_scanned_offline_is_recorded_at_its_own_time(world):
    scanned = NOW - dt.timedelta(hours=5)
    response = world.client().post(
        REDEEM, replay_body(world.token("subsidized"), scanned_at=scanned), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["offline"] is True
    redemption = Redemption.objects.get()
    assert redemption.served_at == scanned and redemption.offline and redemption.recorded_at == NOW


def test_the_low_fee_share_needs_no_confirmation_offline(world):
    result = redeem_offline(world, tier="low_fee", scanned_at=NOW - dt.timedelta(hours=1))
    assert result.redemption.senior_share.amount == Decimal("4.50")


def test_beyond_the_grace_window_is_refused_with_its_own_code(world):
    redeem_offline(world, scanned_at=NOW - dt.timedelta(hours=71, minutes=59))
    error = refused(
        "offline_too_late", redeem_offline, world, scanned_at=NOW - dt.timedelta(hours=72, minutes=1)
    )
    assert "72" in error.detail
    with override_settings(SCAN_OFFLINE_GRACE_HOURS=100):
        redeem_offline(world, scanned_at=NOW - dt.timedelta(hours=80))


def test_a_phone_clock_ahead_of_the_server_is_refused(world):
    redeem_offline(world, scanned_at=NOW + dt.timedelta(minutes=4))
    refused("invalid_input", redeem_offline, world, scanned_at=NOW + dt.timedelta(minutes=6))


def test_a_scan_in_a_month_settled_since_is_refused_period_closed(world):
    december = dt.datetime(2026, 12, 2, 9, 0, tzinfo=NOW.tzinfo)
    settle(month=dt.date(2026, 11, 1), job="test", now=december)
    refused(
        "period_closed", redeem_offline, world, scanned_at=december - dt.timedelta(hours=40), now=december
    )


def test_a_card_revoked_before_the_scan_is_refused_after_it_is_accepted(world):
    voucher = world.vouchers["subsidized"]
    Voucher.objects.filter(pk=voucher.pk).update(
        status=Voucher.Status.REVOKED, revoked_at=NOW - dt.timedelta(hours=2)
    )
    redeem_offline(world, scanned_at=NOW - dt.timedelta(hours=3))
    refused("voucher_revoked", redeem_offline, world, scanned_at=NOW - dt.timedelta(hours=1))
    # online, a revoked voucher is refused whatever
    refused(
        "voucher_revoked",
        services.redeem,
        token=world.token("subsidized"),
        service_item_code="meal",
        quantity="1",
        idempotency_key="online-0001",
        staff=world.staff,
        device=world.device,
        now=NOW,
    )


def test_an_old_card_scanned_before_its_reissue_still_counts(world, monkeypatch):
    voucher = world.vouchers["subsidized"]
    old_code = voucher_token(voucher)
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW - dt.timedelta(hours=2))
    services.reissue_voucher(voucher_id=voucher.pk, reason="lost")
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    redeem_offline(world, token=old_code, scanned_at=NOW - dt.timedelta(hours=3))
    refused("voucher_revoked", redeem_offline, world, token=old_code, scanned_at=NOW - dt.timedelta(hours=1))


def test_a_balance_that_no_longer_covers_an_offline_service_refuses_it(world):
    voucher = world.vouchers["subsidized"]
    Voucher.objects.filter(pk=voucher.pk).update(balance=Decimal("10.00"))
    error = refused("insufficient_balance", redeem_offline, world, scanned_at=NOW - dt.timedelta(hours=1))
    assert "10.00" in error.detail
    assert balance_of(voucher) == Decimal("10.00") and not Redemption.objects.exists()


def test_a_queue_flush_is_not_rate_limited(world, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**SimpleRateThrottle.THROTTLE_RATES, "scan": "3/min", "scan_replay": "100/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    client = world.client()
    statuses = [
        client.post(
            REDEEM,
            replay_body(world.token("subsidized"), scanned_at=NOW - dt.timedelta(minutes=30 - i)),
            format="json",
        ).status_code
        for i in range(8)
    ]
    assert statuses == [201] * 8
    assert Redemption.objects.count() == 8
    # scans made now keep their own limit
    online = [
        client.post(
            "/api/v1/vouchers/verify/", {"token": world.token("subsidized")}, format="json"
        ).status_code
        for _ in range(4)
    ]
    assert online == [200, 200, 200, 429]


def test_a_repeat_past_the_grace_window_is_answered_with_its_record(world, monkeypatch):
    """The answer to an offline service was lost; the phone sends it again hours later."""
    scanned = NOW - dt.timedelta(hours=70)
    request = replay_body(world.token("subsidized"), scanned_at=scanned, key="late-repeat-0001")
    assert world.client().post(REDEEM, request, format="json").status_code == 201
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW + dt.timedelta(hours=10))
    again = world.client().post(REDEEM, request, format="json")
    assert again.status_code == 200, again.content
    assert Redemption.objects.count() == 1
    # a new request that late is still refused
    late = replay_body(world.token("subsidized"), scanned_at=scanned, key="late-new-0001")
    assert world.client().post(REDEEM, late, format="json").json()["code"] == "offline_too_late"


def test_a_months_balance_carried_over_is_not_spent_again_by_a_late_scan(world, monkeypatch):
    from vouchers.services import issue_vouchers

    december = dt.datetime(2026, 12, 1, 9, 0, tzinfo=NOW.tzinfo)
    issue_vouchers(period=dt.date(2026, 12, 1), now=NOW)
    monkeypatch.setattr("django.utils.timezone.now", lambda: december)
    november = world.vouchers["subsidized"]
    Voucher.objects.filter(senior=november.senior, period=dt.date(2026, 12, 1)).update(
        carried_over_at=december
    )
    error = refused(
        "voucher_expired", redeem_offline, world, scanned_at=december - dt.timedelta(hours=12), now=december
    )
    assert "2026-11" in error.detail
    assert not Redemption.objects.exists()
    # before the balance moved, the same late scan is paid from November's voucher
    Voucher.objects.filter(senior=november.senior, period=dt.date(2026, 12, 1)).update(carried_over_at=None)
    assert redeem_offline(world, scanned_at=december - dt.timedelta(hours=12), now=december).redemption
