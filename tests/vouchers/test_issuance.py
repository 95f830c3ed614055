"""Issuing the month's vouchers: one per qualifying senior, idempotent, set-based."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from config.months import SHANGHAI
from eligibility.models import Senior
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from tests.factories import make_community, make_id_card_number
from vouchers.errors import VoucherError
from vouchers.models import Voucher
from vouchers.services import issue_vouchers

NOVEMBER, DECEMBER = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9), tzinfo=SHANGHAI)


@pytest.fixture
def seniors(db):
    ensure_default_policy()
    community = make_community()
    facts = [{"three_no": True}, {"hardship_assessed": True}, {}, {}]
    made = [
        register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1950, 1, 1 + i)),
            name="孙桂芝",
            community=community,
            **f,
        )
        for i, f in enumerate(facts)
    ]
    evaluate_eligibility(as_of=NOVEMBER)
    return made


def test_each_qualifying_senior_gets_one_voucher_with_the_tier_terms(seniors):
    result = issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    assert result.issued == 4
    by_tier = {v.tier_code: v for v in Voucher.objects.all()}
    assert (
        by_tier["subsidized"].face_value.amount == by_tier["subsidized"].balance.amount == Decimal("300.00")
    )
    assert by_tier["low_fee"].face_value.amount == Decimal("200.00")
    assert by_tier["low_fee"].government_share_rate == Decimal("0.7000")
    assert by_tier["paid"].face_value.amount == Decimal("0.00")
    voucher = by_tier["paid"]
    assert (voucher.valid_from, voucher.valid_until, voucher.status) == (
        NOVEMBER,
        dt.date(2026, 11, 30),
        "active",
    )


def test_running_twice_issues_nothing_new(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER)).issued == 0
    assert Voucher.objects.count() == 4


def test_a_new_month_expires_the_old_vouchers(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    result = issue_vouchers(period=DECEMBER, now=at(DECEMBER))
    assert (result.issued, result.expired) == (4, 4)
    assert set(Voucher.objects.filter(period=NOVEMBER).values_list("status", flat=True)) == {"expired"}


def test_issuing_next_month_early_leaves_this_month_usable(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    result = issue_vouchers(period=DECEMBER, now=at(dt.date(2026, 11, 25)))
    assert (result.issued, result.expired) == (4, 0)
    assert set(Voucher.objects.filter(period=NOVEMBER).values_list("status", flat=True)) == {"active"}


def test_a_far_future_month_is_refused_and_changes_nothing(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    with pytest.raises(VoucherError) as refusal:
        issue_vouchers(period=dt.date(2099, 12, 1), now=at(NOVEMBER))
    assert refusal.value.code == "invalid_input"
    assert set(Voucher.objects.values_list("status", flat=True)) == {"active"}


def test_seniors_who_are_not_active_get_no_voucher(seniors):
    Senior.objects.filter(pk=seniors[0].pk).update(status=Senior.Status.DECEASED)
    assert issue_vouchers(period=NOVEMBER, now=at(NOVEMBER)).issued == 3


def test_issuance_is_one_statement_whatever_the_number_of_seniors(seniors, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))


def test_the_database_refuses_a_second_voucher_or_a_negative_balance(seniors):
    issue_vouchers(period=NOVEMBER, now=at(NOVEMBER))
    voucher = Voucher.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(balance=Decimal("-0.01"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(balance=voucher.face_value.amount + Decimal("0.01"))
    voucher.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        voucher.save()


def test_issue_vouchers_command(seniors, capsys, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: at(NOVEMBER))
    call_command("issue_vouchers", "--period", "2026-11")
    assert "issued 4" in capsys.readouterr().out
    with pytest.raises(Exception, match="YYYY-MM"):
        call_command("issue_vouchers", "--period", "2026-13")


def test_a_past_month_is_refused_and_issues_nothing(seniors):
    # Given it is December: November's services are over
    with pytest.raises(VoucherError) as refusal:
        issue_vouchers(period=NOVEMBER, now=at(DECEMBER))
    assert refusal.value.code == "invalid_input" and "2026-11" in refusal.value.detail
    assert not Voucher.objects.exists()
    # And this month is still issued
    assert issue_vouchers(period=DECEMBER, now=at(DECEMBER)).issued == 4
