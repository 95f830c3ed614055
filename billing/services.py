"""Writes of the billing app: the monthly settlement (统一结算).

`settle` closes a month's redemption ledger and writes one statement per provider, set-based in
SQL: one grouped query over the month's redemptions, then bulk inserts. It then re-adds everything
in the database and refuses to commit unless statement = sum of lines = sum of redemptions, to the
fen, for every provider (DESIGN.md §6.4).
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from billing.errors import BillingError
from billing.models import SettlementPeriod, Statement, StatementLine
from billing.pricing import to_fen
from config.months import format_month, last_day, month_bounds
from providers.models import Contract
from vouchers.models import ClosedMonth, Redemption
from vouchers.month_locks import freeze_month_for_settlement

CURRENCY = "CNY"
ZERO = Decimal("0.00")
HUNDREDTH = Decimal("0.01")  # quantities are recorded in steps of 0.01
BATCH = 2_000


@dataclass(frozen=True)
class SettleResult:
    period: SettlementPeriod
    statements: list[Statement]
    redemption_count: int
    total_amount: Money
    government_total: Money
    senior_total: Money

    @property
    def month(self) -> dt.date:
        return self.period.month


def _amount(value) -> Decimal:
    """A summed amount in fen. Sums come back as Decimal, Money or None depending on the query,
    and SQLite adds decimals as binary floats (60.00 comes back as Decimal("60")); a sum of fen
    is a whole number of fen, so quantising to the fen only removes that noise."""
    if isinstance(value, Money):
        value = value.amount
    return to_fen(Decimal(value if value is not None else ZERO))


def _money(value) -> Money:
    return Money(_amount(value), CURRENCY)


def check_period_over(*, month: dt.date, now: dt.datetime) -> None:
    """Refuse `period_not_over` while any moment of the month (Asia/Shanghai) is still to come."""
    _start, end = month_bounds(month)
    if now < end:
        raise BillingError(
            "period_not_over",
            _("%(month)s has not ended yet; it can be settled from the first day of the next month."),
            month=format_month(month),
        )


def _open_period_for_update(*, month: dt.date) -> SettlementPeriod:
    """The month's period row, locked; refuses `period_closed` if it is already settled.

    get_or_create then SELECT … FOR UPDATE: a concurrent settle of the same month waits here for
    the first one to commit, then sees it settled.
    """
    SettlementPeriod.objects.get_or_create(month=month)
    period = SettlementPeriod.objects.select_for_update().get(month=month)
    if period.state == SettlementPeriod.State.SETTLED:
        raise BillingError(
            "period_closed",
            _("%(month)s has already been settled; corrections go into an open month as adjustments."),
            month=format_month(month),
        )
    return period


def _grouped_redemptions(*, month: dt.date):
    """One GROUP BY over the month's non-voided redemptions: per provider, tier and service item."""
    return (
        Redemption.objects.filter(service_month=month, void__isnull=True)
        .values("provider", "tier_code", "service_item")
        .annotate(
            n=Count("id"),
            quantity_sum=Sum("quantity"),
            amount_sum=Sum("amount"),
            government_sum=Sum("government_share"),
            senior_sum=Sum("senior_share"),
        )
        .order_by("provider", "tier_code", "service_item")
    )


def _contracted_provider_ids(*, month: dt.date) -> set[int]:
    """Providers with an active contract overlapping the month: they get a statement even at zero."""
    return set(
        Contract.objects.filter(
            status=Contract.Status.ACTIVE, starts_on__lte=last_day(month), ends_on__gte=month
        )
        .order_by()
        .values_list("provider_id", flat=True)
    )


def _verify_reconciliation(*, period: SettlementPeriod, month: dt.date) -> None:
    """Re-add everything in SQL and refuse `reconciliation_failed` unless it all agrees (§6.4).

    Per statement: its totals, the sums of its lines and the sums of its provider's non-voided
    redemptions of the month. Then the month as a whole, so that no redemption is left outside
    a statement.
    """
    lines = StatementLine.objects.filter(statement=OuterRef("pk")).values("statement")
    redemptions = Redemption.objects.filter(
        provider=OuterRef("provider"), service_month=month, void__isnull=True
    ).values("provider")

    def summed(queryset, aggregate):
        # A plain numeric output field, so django-money leaves the subquery's value alone.
        number = DecimalField(max_digits=20, decimal_places=2)
        subquery = Subquery(queryset.annotate(s=aggregate).values("s"), output_field=number)
        return Coalesce(subquery, Value(ZERO, output_field=number))

    checks = (
        Statement.objects.filter(period=period)
        .order_by()
        .annotate(
            line_count=summed(lines, Sum("redemption_count")),
            line_amount=summed(lines, Sum("amount")),
            line_government=summed(lines, Sum("government_share")),
            line_senior=summed(lines, Sum("senior_share")),
            ledger_count=summed(redemptions, Count("id")),
            ledger_amount=summed(redemptions, Sum("amount")),
            ledger_government=summed(redemptions, Sum("government_share")),
            ledger_senior=summed(redemptions, Sum("senior_share")),
        )
    )
    statement_total = Decimal(0)
    statement_count = 0
    for row in checks.values(
        "redemption_count",
        "total_amount",
        "government_total",
        "senior_total",
        "line_count",
        "line_amount",
        "line_government",
        "line_senior",
        "ledger_count",
        "ledger_amount",
        "ledger_government",
        "ledger_senior",
    ):
        expected = (
            row["redemption_count"],
            _amount(row["total_amount"]),
            _amount(row["government_total"]),
            _amount(row["senior_total"]),
        )
        from_lines = (
            int(row["line_count"]),
            _amount(row["line_amount"]),
            _amount(row["line_government"]),
            _amount(row["line_senior"]),
        )
        from_ledger = (
            int(row["ledger_count"]),
            _amount(row["ledger_amount"]),
            _amount(row["ledger_government"]),
            _amount(row["ledger_senior"]),
        )
        if not expected == from_lines == from_ledger:
            raise _reconciliation_failed(month)
        statement_count += expected[0]
        statement_total += expected[1]
    month_total = Redemption.objects.filter(service_month=month, void__isnull=True).aggregate(
        n=Count("id"), amount=Sum("amount")
    )
    if (month_total["n"], _amount(month_total["amount"])) != (statement_count, statement_total):
        raise _reconciliation_failed(month)


def _reconciliation_failed(month: dt.date) -> BillingError:
    return BillingError(
        "reconciliation_failed",
        _("The statements of %(month)s do not add up to their redemptions; nothing was settled."),
        month=format_month(month),
    )


@transaction.atomic
def settle(*, month: dt.date, settled_by=None, now: dt.datetime | None = None) -> SettleResult:
    """Settle one month: close its ledger and write one statement per provider, in one transaction.

    Guarantees: on PostgreSQL the month is frozen first (`vouchers.month_locks`: redeems and voids
    of this month in flight finish, new ones wait; other months are untouched), so the statements
    are a snapshot no redeem or void is changing; the month is closed
    (`vouchers.ClosedMonth`) in the same transaction, so redeem and void refuse it afterwards;
    every provider with redemptions, or with an active contract overlapping the month, gets a
    statement (possibly zero) with one line per tier and service item; statement = sum of lines =
    sum of non-voided redemptions, to the fen, checked in SQL before committing.

    Refuses: `invalid_input` (not the first day of a month), `period_not_over` (the month has not
    ended in Asia/Shanghai), `period_closed` (already settled), `reconciliation_failed`.
    """
    if not isinstance(month, dt.date) or isinstance(month, dt.datetime) or month.day != 1:
        raise BillingError("invalid_input", _("A settlement period is a month (its first day)."))
    now = now or timezone.now()
    check_period_over(month=month, now=now)

    freeze_month_for_settlement(month)
    period = _open_period_for_update(month=month)
    ClosedMonth.objects.get_or_create(month=month)
    period.state = SettlementPeriod.State.SETTLED
    period.settled_at = now
    period.settled_by = settled_by
    period.save(update_fields=["state", "settled_at", "settled_by"])

    lines_by_provider: dict[int, list[dict]] = defaultdict(list)
    for row in _grouped_redemptions(month=month):
        lines_by_provider[row["provider"]].append(row)
    provider_ids = sorted(set(lines_by_provider) | _contracted_provider_ids(month=month))

    statements = []
    for provider_id in provider_ids:
        rows = lines_by_provider.get(provider_id, [])
        statements.append(
            Statement(
                period=period,
                provider_id=provider_id,
                redemption_count=sum(row["n"] for row in rows),
                total_amount=_money(sum((_amount(row["amount_sum"]) for row in rows), ZERO)),
                government_total=_money(sum((_amount(row["government_sum"]) for row in rows), ZERO)),
                senior_total=_money(sum((_amount(row["senior_sum"]) for row in rows), ZERO)),
            )
        )
    Statement.objects.bulk_create(statements, batch_size=BATCH)
    if any(statement.pk is None for statement in statements):
        # Only backends that cannot return ids from a bulk insert (not PostgreSQL, not SQLite ≥ 3.35).
        ids = dict(Statement.objects.filter(period=period).values_list("provider_id", "id"))
        for statement in statements:
            statement.pk = ids[statement.provider_id]
    statement_ids = {statement.provider_id: statement.pk for statement in statements}
    StatementLine.objects.bulk_create(
        (
            StatementLine(
                statement_id=statement_ids[provider_id],
                tier_code=row["tier_code"],
                service_item_id=row["service_item"],
                redemption_count=row["n"],
                quantity=Decimal(row["quantity_sum"]).quantize(HUNDREDTH),
                amount=_money(row["amount_sum"]),
                government_share=_money(row["government_sum"]),
                senior_share=_money(row["senior_sum"]),
            )
            for provider_id, rows in lines_by_provider.items()
            for row in rows
        ),
        batch_size=BATCH,
    )
    _verify_reconciliation(period=period, month=month)

    return SettleResult(
        period=period,
        statements=statements,
        redemption_count=sum(s.redemption_count for s in statements),
        total_amount=_money(sum((s.total_amount.amount for s in statements), ZERO)),
        government_total=_money(sum((s.government_total.amount for s in statements), ZERO)),
        senior_total=_money(sum((s.senior_total.amount for s in statements), ZERO)),
    )
