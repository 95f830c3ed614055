"""A closed month stays as it was settled: the services refuse writes to it on every database, and
on PostgreSQL the database itself does (triggers, billing migration 0008). And, for any mix of
services, voids in the month, voids after it and corrections, every statement is the sum of its
parts to the fen (hypothesis)."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Adjustment, ReconciliationCheck, SettlementPeriod, Statement, StatementLine
from billing.services import approve_statement, mark_paid, record_adjustment, review_statement, settle
from config.months import SHANGHAI
from tests.billing.conftest import MONTH
from tests.factories import UserFactory
from vouchers.errors import VoucherError
from vouchers.models import Redemption, RedemptionVoid
from vouchers.services import void_redemption

NOVEMBER = dt.date(2026, 11, 1)
SETTLED_AT = dt.datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
IN_NOVEMBER = dt.datetime(2026, 11, 3, 10, tzinfo=SHANGHAI)
IN_DECEMBER = dt.datetime(2026, 12, 1, 9, tzinfo=SHANGHAI)
ZERO = Decimal("0.00")


def finance(username):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="finance")[0])
    return user


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the triggers exist there only (SQLite relies on the services)")


def refused_by_the_database(write):
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


def test_a_late_scan_meets_period_closed_on_every_database(city):
    # given a settled October
    settle(month=MONTH, job="test", now=SETTLED_AT)

    # when a service of October arrives (an offline phone's, say) it is refused with the code
    with pytest.raises(VoucherError) as refused:
        city.serve(tier="paid", day=31)
    assert refused.value.code == "period_closed"
    assert not Redemption.objects.exists()


@pytest.mark.postgres
def test_the_database_refuses_redemptions_voids_and_adjustments_in_a_closed_month(city):
    postgres_only()
    # given a settled October with one service
    served = city.serve(tier="low_fee")
    settle(month=MONTH, job="test", now=SETTLED_AT)
    staff_user = city.staff["prov-a"].user

    def copy_of_the_service():
        copy = Redemption.objects.get(pk=served.pk)
        copy.pk, copy.idempotency_key = None, "copy-of-the-service"
        copy.save(force_insert=True)

    # then, whatever code writes them: no new service in October, no void without its adjustment,
    # no adjustment into October
    refused_by_the_database(copy_of_the_service)
    refused_by_the_database(
        lambda: RedemptionVoid.objects.create(
            redemption=served, reason="x", voided_by=staff_user, credited_back=Money(ZERO, "CNY")
        )
    )
    refused_by_the_database(
        lambda: Adjustment.objects.create(
            kind="correction",
            redemption=served,
            provider=served.provider,
            month=MONTH,
            tier_code=served.tier_code,
            service_item=served.service_item,
            amount=Money("-1.00", "CNY"),
            government_share=Money("-1.00", "CNY"),
            senior_share=Money(ZERO, "CNY"),
            reason="x",
            created_at=IN_NOVEMBER,
            created_by_job="test",
        )
    )
    # while the void through the service, with its adjustment in November, goes in
    void_redemption(redemption_id=served.pk, reason="late", user=staff_user, now=IN_NOVEMBER)
    assert Adjustment.objects.get(redemption=served).month == NOVEMBER


@pytest.mark.postgres
def test_the_database_freezes_an_approved_statement_and_a_locked_month(city):
    postgres_only()
    # given an approved statement
    city.serve(tier="low_fee")
    preparer, approver = finance("qian"), finance("sun")
    settle(month=MONTH, by=preparer, now=SETTLED_AT)
    statements = Statement.objects.filter(period__month=MONTH).order_by("provider__code")
    a = statements[0]
    review_statement(statement_id=a.pk, by=preparer, now=IN_NOVEMBER)
    approve_statement(statement_id=a.pk, by=approver, now=IN_NOVEMBER)

    # then its figures, lines and earlier steps do not change, nor does it go back
    approved = Statement.objects.filter(pk=a.pk)
    refused_by_the_database(lambda: approved.update(redemption_count=99))
    refused_by_the_database(lambda: approved.update(review_note="changed afterwards"))
    refused_by_the_database(
        lambda: approved.update(state="reviewed", approved_at=None, approved_by=None, due_date=None)
    )
    refused_by_the_database(lambda: StatementLine.objects.filter(statement=a).delete())
    refused_by_the_database(lambda: StatementLine.objects.filter(statement=a).update(redemption_count=5))
    refused_by_the_database(lambda: approved.delete())
    # nor does the month reopen
    refused_by_the_database(
        lambda: SettlementPeriod.objects.filter(month=MONTH).update(
            state="open", settled_at=None, settled_by=None, settled_by_job=""
        )
    )
    # but a draft of the same month still takes its review (only figures of approved ones are final)
    b = statements[1]
    review_statement(statement_id=b.pk, by=preparer, note="ok", now=IN_NOVEMBER)

    # and once every statement is paid the month is locked, every field of it
    for statement in statements:
        if statement.pk != a.pk:
            if statement.pk != b.pk:
                review_statement(statement_id=statement.pk, by=preparer, now=IN_NOVEMBER)
            approve_statement(statement_id=statement.pk, by=approver, now=IN_NOVEMBER)
        mark_paid(
            statement_id=statement.pk,
            by=approver,
            reference="PAY",
            paid_on=dt.date(2026, 11, 3),
            now=IN_NOVEMBER,
        )
    assert SettlementPeriod.objects.get(month=MONTH).state == "locked"
    refused_by_the_database(lambda: approved.update(payment_reference="PAY-2"))
    refused_by_the_database(
        lambda: SettlementPeriod.objects.filter(month=MONTH).update(locked_at=IN_DECEMBER)
    )


# --- statements are the sums of their parts, for any month ---------------------------------------

SERVICES = {"cleaning": ["0.5", "1", "1.5", "2", "0.33"], "meal": ["1", "2", "3"]}
service = st.tuples(
    st.sampled_from(["subsidized", "low_fee", "paid"]),
    st.sampled_from(["prov-a", "prov-b"]),
    st.sampled_from(sorted(SERVICES)),
    st.integers(min_value=0, max_value=4),
    st.sampled_from(["kept", "voided_in_month", "voided_late", "corrected"]),
)


def fen(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def figures(statement) -> tuple:
    return (
        statement.redemption_count,
        statement.void_count,
        statement.adjustment_count,
        statement.total_amount.amount,
        statement.government_total.amount,
        statement.senior_total.amount,
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(services=st.lists(service, max_size=8), corrections=st.lists(st.integers(-3000, 3000), max_size=8))
def test_statements_are_the_sums_of_their_parts(city, services, corrections):
    with transaction.atomic():
        # given October's services, some voided in October, then settled
        done = []
        for tier, provider, item, size, fate in services:
            quantities = SERVICES[item]
            redemption = city.serve(
                tier=tier, provider=provider, item=item, quantity=quantities[size % len(quantities)]
            )
            done.append((redemption, fate))
        for redemption, fate in done:
            if fate == "voided_in_month":
                city.void(redemption, day=25)
        settle(month=MONTH, job="test", now=SETTLED_AT)
        first = {s.provider_id: figures(s) for s in Statement.objects.filter(period__month=MONTH)}

        # when some are voided after the close and others corrected (in fen, government ≤ amount)
        for (redemption, fate), cents in zip(done, corrections + [0] * len(done), strict=False):
            if fate == "voided_late":
                void_redemption(
                    redemption_id=redemption.pk,
                    reason="late",
                    user=city.staff[redemption.provider.code].user,
                    now=IN_NOVEMBER,
                )
            elif fate == "corrected" and cents:
                amount = Decimal(cents) / 100
                record_adjustment(
                    redemption_id=redemption.pk,
                    kind="correction",
                    amount=amount,
                    government_share=fen(amount / 2),
                    reason="correction",
                    job="test",
                    now=IN_NOVEMBER,
                )
        settle(month=MONTH, job="test", now=IN_NOVEMBER)
        settle(month=NOVEMBER, job="test", now=IN_DECEMBER)

        # then October settles again the same, and every statement is, to the fen, its services
        # less those voided in the month, plus the adjustments landing in it
        assert {s.provider_id: figures(s) for s in Statement.objects.filter(period__month=MONTH)} == first
        expected = defaultdict(lambda: [0, 0, 0, ZERO, ZERO, ZERO])
        for redemption, fate in done:
            row = expected[(MONTH, redemption.provider_id)]
            if fate == "voided_in_month":
                row[1] += 1
                continue
            row[0] += 1
            row[3] += redemption.amount.amount
            row[4] += redemption.government_share.amount
            row[5] += redemption.senior_share.amount
        for adjustment in Adjustment.objects.all():
            row = expected[(adjustment.month, adjustment.provider_id)]
            row[2] += 1
            row[3] += adjustment.amount.amount
            row[4] += adjustment.government_share.amount
            row[5] += adjustment.senior_share.amount
        actual = {
            (s.period.month, s.provider_id): figures(s) for s in Statement.objects.select_related("period")
        }
        for key, value in expected.items():
            assert actual[key] == (value[0], value[1], value[2], fen(value[3]), fen(value[4]), fen(value[5]))
        for statement in Statement.objects.all():
            lines = StatementLine.objects.filter(statement=statement)
            assert statement.total_amount.amount == fen(sum((line.amount.amount for line in lines), ZERO))
        assert set(ReconciliationCheck.objects.values_list("status", flat=True)) == {"passed"}
        transaction.set_rollback(True)
