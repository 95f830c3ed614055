"""The monthly settlement: statements reconcile to the fen, and a settled month is closed."""

import datetime as dt
import re
import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Count, Q, Sum
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from billing import services
from billing.errors import BillingError
from billing.models import ReconciliationCheck, SettlementPeriod, Statement, StatementLine
from billing.services import settle
from config.months import SHANGHAI, month_bounds
from tests.billing.conftest import MONTH, City
from tests.factories import ContractFactory, ProviderFactory, UserFactory
from vouchers.errors import VoucherError
from vouchers.models import ClosedMonth, Redemption


def cny(text: str) -> Money:
    return Money(Decimal(text), "CNY")


def serve_a_month(city: City) -> dict:
    """A month of work across tiers, providers and items, with a shortfall and a void."""
    services_done = {
        "subsidized_cleaning": city.serve(tier="subsidized", quantity="2"),  # 80.00, all government
        "low_fee_cleaning": city.serve(tier="low_fee", quantity="1.5"),  # 60.00 = 42.00 + 18.00
        "low_fee_meal_b": city.serve(tier="low_fee", provider="prov-b", item="meal", quantity="3"),
        "paid_cleaning_b": city.serve(tier="paid", provider="prov-b", quantity="1"),  # 40.00, all senior
        # 220.00 empties the subsidized voucher (300 - 80), so the next meal is the senior's.
        "subsidized_cleaning_b": city.serve(tier="subsidized", provider="prov-b", quantity="5.5"),
        "subsidized_meal_shortfall": city.serve(tier="subsidized", item="meal", quantity="2"),
        "low_fee_small": city.serve(tier="low_fee", quantity="0.33"),  # 13.20 = 9.24 + 3.96
        "voided": city.serve(tier="paid", item="meal", quantity="1", day=9),
    }
    city.void(services_done["voided"])
    return services_done


def statement_of(month, provider_code) -> Statement:
    return Statement.objects.get(period__month=month, provider__code=provider_code)


def test_statements_add_up_to_the_fen_per_provider(city):
    # given a month of services, one of them voided
    serve_a_month(city)

    # when the month is settled
    result = settle(month=MONTH, job="test")

    # then each provider's statement shows what its staff did, priced at the moment of service
    a = statement_of(MONTH, "prov-a")
    assert (a.redemption_count, a.total_amount, a.government_total, a.senior_total) == (
        4,
        cny("183.20"),
        cny("131.24"),
        cny("51.96"),
    )
    lines_a = {
        (line.kind, line.tier_code, line.service_item.code): (
            line.redemption_count,
            line.void_count,
            line.quantity,
            line.amount,
            line.government_share,
            line.senior_share,
        )
        for line in a.lines.select_related("service_item")
    }
    assert lines_a == {
        ("service", "low_fee", "cleaning"): (2, 0, Decimal("1.83"), cny("73.20"), cny("51.24"), cny("21.96")),
        ("service", "subsidized", "cleaning"): (
            1,
            0,
            Decimal("2.00"),
            cny("80.00"),
            cny("80.00"),
            cny("0.00"),
        ),
        ("service", "subsidized", "meal"): (1, 0, Decimal("2.00"), cny("30.00"), cny("0.00"), cny("30.00")),
        # the voided meal is counted, not paid
        ("service", "paid", "meal"): (0, 1, Decimal("0.00"), cny("0.00"), cny("0.00"), cny("0.00")),
    }
    assert (a.void_count, a.adjustment_count) == (1, 0)
    b = statement_of(MONTH, "prov-b")
    assert (b.redemption_count, b.total_amount, b.government_total, b.senior_total) == (
        3,
        cny("305.00"),
        cny("251.50"),
        cny("53.50"),
    )
    # and the month's totals are the sum of the statements
    assert result.redemption_count == 7
    assert (result.total_amount, result.government_total, result.senior_total) == (
        cny("488.20"),
        cny("382.74"),
        cny("105.46"),
    )


def test_statement_equals_its_lines_equals_its_redemptions(city):
    # given a month of services
    serve_a_month(city)

    # when it is settled
    settle(month=MONTH, job="test")

    # then for every provider: statement = sum of lines = sum of non-voided redemptions (§6.4)
    for statement in Statement.objects.filter(period__month=MONTH):
        lines = statement.lines.aggregate(
            n=Sum("redemption_count"), a=Sum("amount"), g=Sum("government_share"), s=Sum("senior_share")
        )
        ledger = [
            r
            for r in Redemption.objects.filter(provider=statement.provider, service_month=MONTH)
            if not hasattr(r, "void")
        ]
        totals = (
            statement.redemption_count,
            statement.total_amount.amount,
            statement.government_total.amount,
            statement.senior_total.amount,
        )
        from_lines = tuple(
            Decimal(value or 0).quantize(Decimal("0.01")) if key != "n" else value or 0
            for key, value in lines.items()
        )
        from_ledger = (
            len(ledger),
            sum((r.amount.amount for r in ledger), Decimal("0.00")),
            sum((r.government_share.amount for r in ledger), Decimal("0.00")),
            sum((r.senior_share.amount for r in ledger), Decimal("0.00")),
        )
        assert totals == from_lines == from_ledger


def test_voided_redemptions_are_not_paid(city):
    # given a provider whose only service of the month was voided
    voided = city.serve(tier="paid", provider="prov-c", item="meal", quantity="1")
    city.void(voided)

    # when the month is settled
    settle(month=MONTH, job="test")

    # then its statement is zero, its one line counting the voided service and paying nothing
    c = statement_of(MONTH, "prov-c")
    assert (c.redemption_count, c.void_count, c.total_amount) == (0, 1, cny("0.00"))
    assert list(c.lines.values_list("redemption_count", "void_count", "amount")) == [(0, 1, Decimal("0.00"))]


def test_contracted_provider_without_services_gets_a_zero_statement(city):
    # given prov-c under contract with no services, and a provider whose contract ended before the month
    old = ProviderFactory(code="prov-old")
    ContractFactory(provider=old, starts_on=dt.date(2024, 1, 1), ends_on=dt.date(2026, 9, 30))
    city.serve(tier="paid")

    # when the month is settled
    result = settle(month=MONTH, job="test")

    # then finance sees prov-c at zero, and nothing for the provider out of contract
    codes = {s.provider.code for s in result.statements}
    assert codes == {"prov-a", "prov-b", "prov-c"}
    c = statement_of(MONTH, "prov-c")
    assert (c.redemption_count, c.total_amount, c.government_total, c.senior_total) == (
        0,
        cny("0.00"),
        cny("0.00"),
        cny("0.00"),
    )


def test_settlement_records_who_settled_and_closes_the_month(city, finance_user):
    # given a finance user and a month of services
    city.serve(tier="low_fee")
    moment = dt.datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)

    # when they settle it
    settle(month=MONTH, by=finance_user, now=moment)

    # then the period says who and when, the ledger month is closed, and the statements are drafts
    # prepared by them
    period = SettlementPeriod.objects.get(month=MONTH)
    assert (period.state, period.settled_by, period.settled_by_job, period.settled_at) == (
        SettlementPeriod.State.CLOSED,
        finance_user,
        "",
        moment,
    )
    assert ClosedMonth.objects.filter(month=MONTH).exists()
    assert {(s.state, s.prepared_by, s.prepared_by_job, s.prepared_at) for s in period.statements.all()} == {
        (Statement.State.DRAFT, finance_user, "", moment)
    }


def test_a_scheduled_settlement_records_the_job_by_name(city):
    # given a month of services
    city.serve(tier="low_fee")

    # when the scheduled job settles it
    settle(month=MONTH, job="celery:settle_month")

    # then the job's name stands where a user would
    period = SettlementPeriod.objects.get(month=MONTH)
    assert (period.settled_by, period.settled_by_job) == (None, "celery:settle_month")
    assert set(period.statements.values_list("prepared_by", "prepared_by_job")) == {
        (None, "celery:settle_month")
    }


@pytest.mark.parametrize("who", [{}, {"by": "user", "job": "celery:x"}])
def test_settlement_says_who_settles_exactly_once(city, finance_user, who):
    arguments = {key: finance_user if value == "user" else value for key, value in who.items()}
    with pytest.raises(BillingError) as refused:
        settle(month=MONTH, **arguments)
    assert refused.value.code == "invalid_input"
    assert not ClosedMonth.objects.exists()


def test_only_finance_staff_settle(city):
    # given a user without the finance role
    clerk = UserFactory(username="clerk")

    # when they settle a month, it is refused and nothing is closed
    with pytest.raises(BillingError) as refused:
        settle(month=MONTH, by=clerk)
    assert refused.value.code == "not_permitted"
    assert not ClosedMonth.objects.exists()


def test_a_month_settled_again_has_the_same_figures(city, finance_user):
    # given a settled month of services, one voided in the month
    serve_a_month(city)
    settle(month=MONTH, job="test")
    first = figures_of(MONTH)

    # when another finance user settles it again
    settle(month=MONTH, by=finance_user)

    # then the statements and lines are the same, now prepared by them
    assert figures_of(MONTH) == first
    assert Statement.objects.filter(period__month=MONTH).count() == 3
    assert set(Statement.objects.values_list("prepared_by", flat=True)) == {finance_user.pk}


def figures_of(month):
    statements = {
        s.provider.code: (
            s.redemption_count,
            s.void_count,
            s.adjustment_count,
            s.total_amount,
            s.government_total,
            s.senior_total,
        )
        for s in Statement.objects.filter(period__month=month).select_related("provider")
    }
    lines = {
        (line.statement.provider.code, line.kind, line.tier_code, line.service_item.code): (
            line.redemption_count,
            line.void_count,
            line.quantity,
            line.amount,
            line.government_share,
            line.senior_share,
        )
        for line in StatementLine.objects.filter(statement__period__month=month).select_related(
            "statement__provider", "service_item"
        )
    }
    return statements, lines


def test_the_current_month_cannot_be_settled(db):
    # given today's month in Shanghai
    today = dt.datetime.now(SHANGHAI)

    # when finance tries to settle it
    with pytest.raises(BillingError) as refused:
        settle(month=today.date().replace(day=1), job="test")

    # then it is refused, and nothing is written
    assert refused.value.code == "period_not_over"
    assert not SettlementPeriod.objects.exists()
    assert not ClosedMonth.objects.exists()


def test_a_month_can_be_settled_from_its_first_moment_after_it_ends(db):
    # given the last microsecond of October and the first of November, in Shanghai
    _start, end = month_bounds(MONTH)
    last_moment = end - dt.timedelta(microseconds=1)

    # when settling at the last moment, it is refused
    with pytest.raises(BillingError) as refused:
        settle(month=MONTH, job="test", now=last_moment)
    assert refused.value.code == "period_not_over"

    # and at midnight Shanghai time (16:00 UTC the day before) it goes through
    assert end.astimezone(dt.UTC) == dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC)
    assert settle(month=MONTH, job="test", now=end).period.state == SettlementPeriod.State.CLOSED


def test_a_period_is_a_month(db):
    with pytest.raises(BillingError) as refused:
        settle(month=dt.date(2026, 10, 15), job="test")
    assert refused.value.code == "invalid_input"


def test_nothing_can_be_redeemed_in_a_settled_month_and_a_void_does_not_change_it(city):
    # given a settled month with one service in it
    served = city.serve(tier="low_fee")
    settle(month=MONTH, job="test")

    # when staff record another service in that month, or void the first
    with pytest.raises(VoucherError) as redeem_refused:
        city.serve(tier="low_fee", day=30)
    city.void(served, day=30)

    # then the service is refused, the void recorded, and the statement still matches the ledger
    # as it was when settled (the void is an adjustment of a later month)
    assert redeem_refused.value.code == "period_closed"
    assert Redemption.objects.filter(service_month=MONTH).count() == 1
    assert statement_of(MONTH, "prov-a").total_amount == cny("40.00")


def test_a_statement_that_does_not_add_up_fails_its_check_and_cannot_be_approved(city, monkeypatch):
    # given a month of services, and a settlement that counts each service line twice (once more
    # as an adjustment line, of adjustments that do not exist: which should never happen)
    serve_a_month(city)
    monkeypatch.setattr(
        services.settlement_sql,
        "adjustment_lines",
        lambda: """
        INSERT INTO billing_statementline (
            statement_id, kind, tier_code, service_item_id, redemption_count, void_count, quantity,
            amount, amount_currency, government_share, government_share_currency,
            senior_share, senior_share_currency, service_item_name)
        SELECT statement_id, 'adjustment', tier_code, service_item_id, redemption_count, 0, quantity,
            amount, 'CNY', government_share, 'CNY', senior_share, 'CNY', service_item_name
        FROM billing_statementline WHERE kind = 'service'
        AND statement_id IN (SELECT id FROM billing_statement WHERE period_id = %(period)s)
        """,
    )

    # when the month is settled
    settle(month=MONTH, job="test")

    # then the reconciliation check fails, naming the statements that do not add up
    check = ReconciliationCheck.objects.get(period__month=MONTH, code="statements_add_up")
    a, b = statement_of(MONTH, "prov-a"), statement_of(MONTH, "prov-b")
    assert (check.status, sorted(check.sample)) == ("failed", sorted([a.pk, b.pk]))
    # and such a statement is not approved
    reviewer, approver = make_finance("rev"), make_finance("appr")
    services.review_statement(statement_id=a.pk, by=reviewer)
    with pytest.raises(BillingError) as refused:
        services.approve_statement(statement_id=a.pk, by=approver)
    assert refused.value.code == "reconciliation_failed"


def make_finance(username):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="finance")[0])
    return user


def test_an_empty_month_settles_to_zero_statements_for_contracted_providers(city):
    result = settle(month=MONTH, job="test")
    assert len(result.statements) == 3
    assert result.redemption_count == 0
    assert result.total_amount == cny("0.00")
    assert not StatementLine.objects.exists()


@pytest.mark.parametrize("services_count", [1, 40])
def test_settlement_does_a_bounded_number_of_queries(city, services_count, django_assert_max_num_queries):
    # given a month with few or many services
    tiers = ["paid", "low_fee", "subsidized"]
    for i in range(services_count):
        city.serve(
            tier=tiers[i % 3],
            provider=("prov-a", "prov-b")[i % 2],
            item=("cleaning", "meal")[i % 2],
            quantity="1",
            day=1 + i % 28,
        )

    # when it is settled, the number of queries does not depend on the number of services
    # (a few set-based statements and the reconciliation checks; there is no loop over them)
    with django_assert_max_num_queries(30):
        result = settle(month=MONTH, job="test")

    assert result.redemption_count == services_count


def test_the_lines_are_one_grouped_insert_over_the_ledger(city):
    # given some services
    for tier in ("paid", "low_fee", "subsidized"):
        city.serve(tier=tier)

    # when settling, with the queries captured
    with CaptureQueriesContext(connection) as captured:
        settle(month=MONTH, job="test")

    # then the service lines come from one grouped pass over the ledger (SQLite: an INSERT …
    # SELECT … GROUP BY; PostgreSQL: a plain SELECT … GROUP BY, which may run in parallel, and one
    # INSERT of the lines it answered), the statements' figures from one UPDATE over the lines,
    # and nothing reads the ledger row by row
    queries = [q["sql"] for q in captured.captured_queries]
    lines = [sql for sql in queries if "INSERT INTO billing_statementline" in sql]
    assert len(lines) == 2  # services, adjustments
    by_line = re.compile(r"GROUP BY (r\.)?provider_id, (r\.)?tier_code, (r\.)?service_item_id")
    passes = [sql for sql in queries if "FROM vouchers_redemption r" in sql and by_line.search(sql)]
    assert len(passes) == 1
    if connection.vendor == "postgresql":
        assert not passes[0].lstrip().startswith("INSERT") and "unnest(" in lines[0]
    else:
        assert passes == [lines[0]]
    assert len([sql for sql in queries if sql.lstrip().startswith("UPDATE billing_statement SET")]) == 1
    ledger = connection.ops.quote_name(Redemption._meta.db_table)
    assert not [sql for sql in queries if f"FROM {ledger}" in sql]


def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: table locks and concurrent transactions")


@pytest.fixture
def committed_city(transactional_db):
    _postgres_only()
    return City()


@pytest.mark.postgres
def test_settlement_waits_for_a_redemption_being_written(committed_city):
    # given a redemption in October being written right now by another connection
    city = committed_city
    written, release = threading.Event(), threading.Event()
    errors = []

    def scan_in_flight():
        from django.db import transaction

        try:
            with transaction.atomic():
                city.serve(tier="low_fee", day=31)
                written.set()
                release.wait(timeout=10)
        except Exception as error:  # reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    worker = threading.Thread(target=scan_in_flight)
    worker.start()
    assert written.wait(timeout=10)

    # when finance settles October while it is in flight (released a moment later)
    threading.Timer(0.5, release.set).start()
    result = settle(month=MONTH, job="test")
    worker.join(timeout=10)

    # then the settlement waited for it and paid it
    assert errors == []
    assert result.redemption_count == 1
    assert statement_of(MONTH, "prov-a").total_amount == cny("40.00")


@pytest.mark.postgres
def test_two_settlements_of_the_same_month_settle_it_once(committed_city):
    # given services in October
    committed_city.serve(tier="paid")
    outcomes = []
    start = threading.Barrier(2)

    def settle_concurrently():
        try:
            start.wait(timeout=10)
            outcomes.append(settle(month=MONTH, job="test").redemption_count)
        except BillingError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    # when two finance users settle it at the same moment
    threads = [threading.Thread(target=settle_concurrently) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    # then one settles it, and the other, waiting for it, settles it again with the same figures
    assert outcomes == [1, 1]
    assert Statement.objects.filter(period__month=MONTH).count() == 3


@pytest.mark.postgres
@pytest.mark.parametrize("action", ["redeem", "void"])
def test_a_write_that_checked_the_month_open_cannot_land_after_settlement(
    committed_city, monkeypatch, action
):
    # given a redeem (or void) in October that has passed its "month open" check but not yet written
    import vouchers.services

    city = committed_city
    served = city.serve(tier="low_fee", day=10) if action == "void" else None
    checked, settled = threading.Event(), threading.Event()
    # A redeem checks the month with its contract item (one statement on PostgreSQL), a void alone.
    check = "_open_month_contract_item" if action == "redeem" else "month_is_closed"
    original_check = getattr(vouchers.services, check)
    worker_ident = []

    def check_then_pause(**kwargs):
        found = original_check(**kwargs)
        if threading.get_ident() in worker_ident:
            checked.set()
            settled.wait(timeout=3)  # a settlement that is blocked by us never sets it
        return found

    monkeypatch.setattr(vouchers.services, check, check_then_pause)
    outcome = []

    def write():
        worker_ident.append(threading.get_ident())
        try:
            if action == "redeem":
                city.serve(tier="low_fee", day=31)
            else:
                city.void(served, day=31)
            outcome.append("written")
        except VoucherError as error:
            outcome.append(error.code)
        finally:
            connection.close()

    worker = threading.Thread(target=write)
    worker.start()
    assert checked.wait(timeout=10)

    # when finance settles October meanwhile
    settle(month=MONTH, job="test")
    settled.set()
    worker.join(timeout=10)

    # then either the write was refused or the statement includes it: the ledger matches (§6.4);
    # a void that lands after the settlement leaves the month as settled (an adjustment follows)
    late = Redemption.objects.filter(adjustments__kind="void").values("pk")
    ledger = Redemption.objects.filter(Q(void__isnull=True) | Q(pk__in=late), service_month=MONTH).aggregate(
        n=Count("id"), amount=Sum("amount")
    )
    statement = statement_of(MONTH, "prov-a")
    assert (statement.redemption_count, statement.total_amount.amount) == (
        ledger["n"],
        Decimal(ledger["amount"] or 0),
    ), outcome
