"""A senior who moves out or dies stops receiving public money at once (issue: status changes)."""

import datetime as dt

import pytest

from eligibility.models import Determination
from eligibility.services import change_senior_status, evaluate_eligibility
from tests.vouchers.conftest import MONTH, NOW, scan_and_confirm
from tests.vouchers.test_api import REDEEM, assert_refused, redeem_body
from vouchers.models import Redemption, Voucher
from vouchers.services import issue_vouchers

NEXT_MONTH = dt.date(2026, 12, 1)


@pytest.mark.parametrize("status", ["deceased", "moved_away"])
def test_leaving_revokes_the_current_voucher_and_the_next_month_issues_none(world, status):
    # Given 李建国's voucher for this month, which scans
    voucher = world.vouchers["low_fee"]
    senior = voucher.senior
    assert scan_and_confirm(world.client(), redeem_body(world.token())).status_code == 201

    # When the worker records that he died (or moved out) yesterday
    change_senior_status(senior=senior, status=status, on=NOW.date() - dt.timedelta(days=1), by=None)

    # Then his voucher is revoked in the same transaction, and a scan is refused voucher_revoked
    assert Voucher.objects.get(pk=voucher.pk).status == Voucher.Status.REVOKED
    refused = world.client().post(REDEEM, redeem_body(world.token(), key="scan-0000002"), format="json")
    assert_refused(refused, 409, "voucher_revoked")
    assert Redemption.objects.filter(voucher=voucher).count() == 1
    # And his determination is retired at once (no tier on his page), and next month skips him
    assert not Determination.objects.filter(senior=senior, is_current=True).exists()
    evaluate_eligibility(as_of=NEXT_MONTH)
    issue_vouchers(period=NEXT_MONTH, now=NOW)
    assert not Determination.objects.filter(senior=senior, is_current=True).exists()
    assert not Voucher.objects.filter(senior=senior, period=NEXT_MONTH).exists()
    assert Voucher.objects.filter(period=NEXT_MONTH).count() == len(world.vouchers) - 1
    # And the other seniors' vouchers of this month are untouched
    others = Voucher.objects.filter(period=MONTH).exclude(pk=voucher.pk)
    assert set(others.values_list("status", flat=True)) == {Voucher.Status.ACTIVE}


def test_a_voucher_that_ended_before_the_date_of_leaving_is_kept_as_it_was(world):
    # Given last month's voucher, already expired, and this month's
    voucher = world.vouchers["subsidized"]
    Voucher.objects.filter(pk=voucher.pk).update(status=Voucher.Status.EXPIRED)

    # When the senior is recorded as moved out today
    change_senior_status(senior=voucher.senior, status="moved_away", on=NOW.date(), by=None)

    # Then the expired voucher stays expired: its services were real
    assert Voucher.objects.get(pk=voucher.pk).status == Voucher.Status.EXPIRED


def test_next_months_voucher_issued_early_is_revoked_too(world):
    # Given next month's vouchers, issued on the last days of this month
    issue_vouchers(period=NEXT_MONTH, now=NOW)
    senior = world.vouchers["low_fee"].senior
    early = Voucher.objects.get(senior=senior, period=NEXT_MONTH)

    # When he is recorded as deceased today
    change_senior_status(senior=senior, status="deceased", on=NOW.date(), by=None)

    # Then both this month's and next month's vouchers are revoked
    statuses = set(Voucher.objects.filter(senior=senior).values_list("status", flat=True))
    assert statuses == {Voucher.Status.REVOKED} and Voucher.objects.get(pk=early.pk).status == "revoked"
