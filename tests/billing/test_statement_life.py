"""The life of a settled month: review, four-eyes approval, payment, the lock, and late voids that
become adjustments in the next open month (issue 10)."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.test import override_settings
from djmoney.money import Money
from openpyxl import load_workbook

from billing import selectors
from billing.errors import BillingError
from billing.exports import export_settlement
from billing.models import Adjustment, ReconciliationCheck, SettlementPeriod, Statement, StatementLine
from billing.services import approve_statement, mark_paid, record_adjustment, review_statement, settle
from config.months import SHANGHAI
from tests.billing.conftest import MONTH
from tests.factories import StaffMemberFactory, UserFactory
from vouchers.models import RedemptionVoid, Voucher
from vouchers.services import void_redemption

NOVEMBER = dt.date(2026, 11, 1)
SETTLED_AT = dt.datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
IN_NOVEMBER = dt.datetime(2026, 11, 3, 10, tzinfo=SHANGHAI)
IN_DECEMBER = dt.datetime(2026, 12, 1, 9, tzinfo=SHANGHAI)


def cny(text: str) -> Money:
    return Money(Decimal(text), "CNY")


def finance(username: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="finance")[0])
    return user


@pytest.fixture
def people(db):
    return {"preparer": finance("qian"), "approver": finance("sun"), "clerk": UserFactory(username="clerk")}


def statement_of(month, code) -> Statement:
    return Statement.objects.select_related("period").get(period__month=month, provider__code=code)


def test_a_late_void_becomes_an_adjustment_line_of_the_next_month(city, people):
    # given October served by provider A (two services) and settled
    kept = city.serve(tier="low_fee", quantity="1")  # 40.00 = 28.00 + 12.00
    late = city.serve(tier="subsidized", quantity="2")  # 80.00, all government
    settle(month=MONTH, by=people["preparer"], now=SETTLED_AT)
    october = statement_of(MONTH, "prov-a")
    assert (october.redemption_count, october.total_amount) == (2, cny("120.00"))
    balance_before = Voucher.objects.get(pk=late.voucher_id).balance

    # when the second service is voided in November, after the close
    void = void_redemption(
        redemption_id=late.pk, reason="服务未发生", user=city.staff["prov-a"].user, now=IN_NOVEMBER
    )

    # then the void is recorded, nothing goes back onto October's voucher, October's statement is
    # as it was (and settles again the same), and an adjustment of -80.00 waits in November
    assert RedemptionVoid.objects.get(redemption=late) == void
    assert void.credited_back == cny("0.00")
    assert Voucher.objects.get(pk=late.voucher_id).balance == balance_before
    adjustment = Adjustment.objects.get(redemption=late)
    assert (adjustment.kind, adjustment.month, adjustment.provider.code) == ("void", NOVEMBER, "prov-a")
    assert (adjustment.amount, adjustment.government_share, adjustment.senior_share, adjustment.quantity) == (
        cny("-80.00"),
        cny("-80.00"),
        cny("0.00"),
        Decimal("-2.00"),
    )
    assert (adjustment.created_by, adjustment.reason) == (city.staff["prov-a"].user, "服务未发生")
    settle(month=MONTH, by=people["preparer"], now=IN_NOVEMBER)
    again = statement_of(MONTH, "prov-a")
    assert (again.pk, again.redemption_count, again.void_count, again.total_amount) == (
        october.pk,
        2,
        0,
        cny("120.00"),
    )

    # and when November is settled, provider A's statement carries it as its own line
    settle(month=NOVEMBER, by=people["preparer"], now=IN_DECEMBER)
    november = statement_of(NOVEMBER, "prov-a")
    assert (november.redemption_count, november.adjustment_count, november.total_amount) == (
        0,
        1,
        cny("-80.00"),
    )
    assert (november.government_total, november.senior_total) == (cny("-80.00"), cny("0.00"))
    line = StatementLine.objects.get(statement=november)
    assert (line.kind, line.tier_code, line.service_item.code, line.redemption_count, line.amount) == (
        "adjustment",
        "subsidized",
        "cleaning",
        1,
        cny("-80.00"),
    )
    # (and the workbook's summary shows it as an adjustment)
    buffer = io.BytesIO()
    export_settlement(month=NOVEMBER, out=buffer, provider_code="prov-a")
    summary = load_workbook(io.BytesIO(buffer.getvalue()))["汇总"]
    rows = {row[3]: row[6] for row in summary.iter_rows(min_row=2, values_only=True)}
    assert rows["调整：助洁"] == -80
    detail = selectors.statement_detail(user=people["approver"], statement_id=november.pk)
    assert [a.pk for a in detail.adjustments] == [adjustment.pk]
    # and every reconciliation check of both months passed
    assert set(ReconciliationCheck.objects.values_list("status", flat=True)) == {"passed"}
    # and the October statement's drill-down still shows the service, marked voided later
    rows = selectors.statement_redemptions(statement=again)
    assert {(r.pk, r.voided_in_month, r.voided_later) for r in rows} == {
        (kept.pk, False, False),
        (late.pk, False, True),
    }


def test_a_statement_goes_from_draft_to_paid_and_the_month_locks(city, people):
    # given a settled October with services of provider A only (B and C have zero statements)
    city.serve(tier="low_fee")
    settle(month=MONTH, by=people["preparer"], now=SETTLED_AT)
    statements = list(Statement.objects.filter(period__month=MONTH).order_by("provider__code"))
    approved_at = dt.datetime(2026, 11, 5, 10, tzinfo=SHANGHAI)

    # when each is reviewed, approved by the second finance user and paid
    with override_settings(STATEMENT_PAYMENT_DAYS=10):
        for statement in statements:
            review_statement(
                statement_id=statement.pk, by=people["preparer"], note="核对无误", now=approved_at
            )
            approve_statement(statement_id=statement.pk, by=people["approver"], now=approved_at)
    first = Statement.objects.get(pk=statements[0].pk)
    assert (first.state, first.review_note, first.approved_by, first.due_date) == (
        "approved",
        "核对无误",
        people["approver"],
        dt.date(2026, 11, 15),
    )
    # (past its due date and unpaid, it is overdue)
    assert (
        list(selectors.overdue_statements(user=people["approver"], today=dt.date(2026, 11, 16))) == statements
    )
    assert not selectors.overdue_statements(user=people["approver"], today=dt.date(2026, 11, 15)).exists()
    for statement in statements[:-1]:
        mark_paid(
            statement_id=statement.pk, by=people["preparer"], reference="PAY-1", paid_on=dt.date(2026, 11, 6)
        )
    assert SettlementPeriod.objects.get(month=MONTH).state == "closed"
    mark_paid(
        statement_id=statements[-1].pk, by=people["preparer"], reference="PAY-2", paid_on=dt.date(2026, 11, 6)
    )

    # then the month is locked and nothing of it changes any more
    period = SettlementPeriod.objects.get(month=MONTH)
    assert period.state == "locked" and period.locked_at is not None
    paid = Statement.objects.get(pk=statements[0].pk)
    assert (paid.state, paid.payment_reference, paid.paid_on, paid.paid_by) == (
        "paid",
        "PAY-1",
        dt.date(2026, 11, 6),
        people["preparer"],
    )
    for refused_call in (
        lambda: settle(month=MONTH, by=people["preparer"]),
        lambda: review_statement(statement_id=paid.pk, by=people["preparer"]),
    ):
        with pytest.raises(BillingError) as refused:
            refused_call()
        assert refused.value.code == "period_locked"


def test_four_eyes_the_preparer_cannot_approve(city, people):
    # given a statement prepared and reviewed by the same finance user
    city.serve(tier="paid")
    settle(month=MONTH, by=people["preparer"], now=SETTLED_AT)
    statement = statement_of(MONTH, "prov-a")
    review_statement(statement_id=statement.pk, by=people["preparer"])

    # when they approve it themselves, the service refuses
    with pytest.raises(BillingError) as refused:
        approve_statement(statement_id=statement.pk, by=people["preparer"])
    assert refused.value.code == "four_eyes"
    assert statement_of(MONTH, "prov-a").state == "reviewed"

    # and so does the database, whatever code writes it
    with pytest.raises(IntegrityError), transaction.atomic():
        Statement.objects.filter(pk=statement.pk).update(
            state="approved", approved_by=people["preparer"], approved_at=SETTLED_AT, due_date=MONTH
        )


def test_four_eyes_a_statement_a_job_prepared_is_approved_by_someone_other_than_its_reviewer(city, people):
    # given a statement drafted by the scheduled job and reviewed by a finance user
    city.serve(tier="paid")
    settle(month=MONTH, job="celery:settle_month", now=SETTLED_AT)
    statement = statement_of(MONTH, "prov-a")
    review_statement(statement_id=statement.pk, by=people["preparer"])

    # when the reviewer approves it too, the service refuses (one person would have done both)
    with pytest.raises(BillingError) as refused:
        approve_statement(statement_id=statement.pk, by=people["preparer"])
    assert refused.value.code == "four_eyes"
    # and so does the database
    with pytest.raises(IntegrityError), transaction.atomic():
        Statement.objects.filter(pk=statement.pk).update(
            state="approved", approved_by=people["preparer"], approved_at=SETTLED_AT, due_date=MONTH
        )

    # and a second finance user may
    approved = approve_statement(statement_id=statement.pk, by=people["approver"])
    assert (approved.state, approved.approved_by) == ("approved", people["approver"])


def test_the_database_refuses_a_state_without_its_fields(city, people):
    settle(month=MONTH, by=people["preparer"], now=SETTLED_AT)
    statement = statement_of(MONTH, "prov-a")
    for fields in (
        {"state": "reviewed"},  # nobody reviewed it
        {
            "state": "paid",
            "reviewed_by": people["preparer"],
            "reviewed_at": SETTLED_AT,
        },  # nor approved, nor paid
        {"approved_by": people["approver"]},  # a draft with an approver
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Statement.objects.filter(pk=statement.pk).update(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        # a settler is a user or a job, never both
        SettlementPeriod.objects.filter(month=MONTH).update(settled_by_job="cron")


def test_steps_out_of_order_and_by_the_wrong_people_are_refused(city, people):
    city.serve(tier="paid")
    settle(month=MONTH, by=people["preparer"], now=SETTLED_AT)
    statement = statement_of(MONTH, "prov-a")
    cases = [
        (lambda: approve_statement(statement_id=statement.pk, by=people["approver"]), "not_reviewed"),
        (
            lambda: mark_paid(statement_id=statement.pk, by=people["approver"], reference="X", paid_on=MONTH),
            "not_approved",
        ),
        (lambda: review_statement(statement_id=statement.pk, by=people["clerk"]), "not_permitted"),
        (lambda: review_statement(statement_id=10**9, by=people["approver"]), "not_found"),
    ]
    for call, code in cases:
        with pytest.raises(BillingError) as refused:
            call()
        assert refused.value.code == code
    review_statement(statement_id=statement.pk, by=people["approver"])
    with pytest.raises(BillingError) as refused:
        review_statement(statement_id=statement.pk, by=people["approver"])
    assert refused.value.code == "not_draft"
    approve_statement(statement_id=statement.pk, by=people["approver"], now=IN_NOVEMBER)
    for reference, paid_on in (
        ("", dt.date(2026, 11, 4)),
        ("PAY", dt.date(2026, 11, 2)),
        ("PAY", dt.date(2099, 1, 1)),
    ):
        with pytest.raises(BillingError) as refused:
            mark_paid(statement_id=statement.pk, by=people["approver"], reference=reference, paid_on=paid_on)
        assert refused.value.code == "invalid_input"
    # and the approved month is not settled again: its figures are final
    with pytest.raises(BillingError) as refused:
        settle(month=MONTH, by=people["preparer"])
    assert refused.value.code == "already_approved"


def test_a_correction_lands_in_the_next_open_month(city, people):
    # given October served; a correction before it is settled is refused (void it instead)
    served = city.serve(tier="low_fee", quantity="1")
    correction = {
        "redemption_id": served.pk,
        "kind": "correction",
        "amount": Decimal("-10"),
        "government_share": Decimal("-7"),
        "reason": "多计时长",
        "by": people["approver"],
        "now": IN_NOVEMBER,
    }
    with pytest.raises(BillingError) as refused:
        record_adjustment(**correction)
    assert refused.value.code == "period_open"

    # when October is settled and finance records the correction (over-charged 10.00, 7.00 government)
    settle(month=MONTH, job="test", now=SETTLED_AT)
    adjustment = record_adjustment(**correction)

    # then it lands in November with the senior's share the rest
    assert (adjustment.month, adjustment.senior_share, adjustment.created_by) == (
        NOVEMBER,
        cny("-3.00"),
        people["approver"],
    )
    # and a correction needs a reason, finance staff, and a government share within the amount
    for change, code in (
        ({"reason": ""}, "invalid_input"),
        ({"by": people["clerk"]}, "not_permitted"),
        ({"amount": Decimal("5")}, "invalid_input"),
        ({"kind": "void"}, "invalid_input"),
    ):
        with pytest.raises(BillingError) as refused:
            record_adjustment(**{**correction, **change})
        assert refused.value.code == code
    assert Adjustment.objects.count() == 1


def test_only_the_own_provider_sees_its_statements(city, people):
    settle(month=MONTH, job="test", now=SETTLED_AT)
    manager = UserFactory(username="mgr")
    manager.groups.add(Group.objects.get_or_create(name="provider")[0])
    StaffMemberFactory(user=manager, provider=city.providers["prov-b"])
    bureau = UserFactory(username="bur")
    bureau.groups.add(Group.objects.get_or_create(name="bureau")[0])

    assert {s.provider.code for s in selectors.visible_to(manager)} == {"prov-b"}
    assert selectors.visible_to(bureau).count() == selectors.visible_to(people["approver"]).count() == 3
    assert not selectors.visible_to(people["clerk"]).exists()
    summary = selectors.period_summary(user=manager, month=MONTH)
    assert [s.provider.code for s in summary.statements] == ["prov-b"]
    assert selectors.statement_detail(user=manager, statement_id=statement_of(MONTH, "prov-a").pk) is None
    assert selectors.can_settle(people["approver"]) and not selectors.can_settle(bureau)
