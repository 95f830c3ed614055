"""Reads of the billing app: who may see what, and what the finance pages show.

One place decides what a user may see (`visible_to`): finance staff, bureau administrators and
superusers see every provider's statements; a provider's manager their own provider's; nobody
else any. Every selector taking `user` goes through it. Only finance staff act (`can_settle`).
"""

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from billing.models import (
    Adjustment,
    ReconciliationCheck,
    SettlementExport,
    SettlementPeriod,
    Statement,
    StatementLine,
)
from billing.reconciliation import CHECKS
from config.months import local_date, month_of
from config.roles import BUREAU, FINANCE, PROVIDER, roles_of
from eligibility.models import Tier
from eligibility.selectors import cached_progress
from providers.models import Provider
from vouchers.models import Redemption, Voucher

SETTLEMENT_ROLES = frozenset({FINANCE, BUREAU})
EXPORT_CHUNK = 2_000
_export_log = logging.getLogger("billing.exports")


def can_view_settlements(user) -> bool:
    """Finance staff, bureau administrators and superusers see every provider's statements."""
    return user.is_authenticated and (
        user.is_superuser or bool(SETTLEMENT_ROLES.intersection(roles_of(user)))
    )


def can_settle(user) -> bool:
    """Finance staff (and superusers) settle, review, approve and record payments; the bureau reads."""
    return user.is_authenticated and (user.is_superuser or FINANCE in roles_of(user))


def _own_provider_id(user) -> int | None:
    staff = getattr(user, "staff_member", None)
    if staff is not None and PROVIDER in roles_of(user):
        return staff.provider_id
    return None


def visible_to(user) -> QuerySet[Statement]:
    """Statements a user may see: every provider's for finance, the bureau and superusers; a
    provider manager their own provider's; nobody else any."""
    if not user.is_authenticated:
        return Statement.objects.none()
    if can_view_settlements(user):
        return Statement.objects.all()
    provider_id = _own_provider_id(user)
    if provider_id is not None:
        return Statement.objects.filter(provider_id=provider_id)
    return Statement.objects.none()


def _paid_in_month() -> Q:
    """Redemptions a month's statement pays: not voided, or voided only after the month closed
    (that void is an adjustment in a later month)."""
    late_void = Adjustment.objects.filter(redemption=OuterRef("pk"), kind=Adjustment.Kind.VOID)
    return Q(void__isnull=True) | Q(Exists(late_void))


def _voided_in_month() -> Q:
    return Q(void__isnull=False) & ~Q(
        Exists(Adjustment.objects.filter(redemption=OuterRef("pk"), kind="void"))
    )


def settled_period(*, month: dt.date) -> SettlementPeriod | None:
    """The month's period if it has been settled (closed or locked), else None."""
    return SettlementPeriod.objects.filter(month=month).exclude(state=SettlementPeriod.State.OPEN).first()


def provider_by_code(*, code: str) -> Provider | None:
    return Provider.objects.filter(code=code).first()


@dataclass(frozen=True)
class MonthRow:
    """One month in the periods list: its period (None for a month never settled, such as the
    current one), state, and the month's services so far from the ledger, voids included."""

    month: dt.date
    period: SettlementPeriod | None
    state: str
    recorded: int
    voided: int
    paid: int
    amount: object
    government: object
    senior: object
    statements: list = field(default_factory=list)

    @property
    def is_current(self) -> bool:
        return self.month == month_of(timezone.now())


def settlement_periods(*, user) -> QuerySet[SettlementPeriod]:
    """Settled periods, newest first, with their settler, the statements `user` may see (with
    providers) and the month's totals over those statements (`statement_count`,
    `redemption_total`, `void_total`, `amount_total`, `government_sum`, `senior_sum`)."""
    visible = visible_to(user)
    return (
        SettlementPeriod.objects.exclude(state=SettlementPeriod.State.OPEN)
        .select_related("settled_by")
        .annotate(
            statement_count=Count("statements", filter=Q(statements__in=visible)),
            redemption_total=Sum("statements__redemption_count", filter=Q(statements__in=visible)),
            void_total=Sum("statements__void_count", filter=Q(statements__in=visible)),
            amount_total=Sum("statements__total_amount", filter=Q(statements__in=visible)),
            government_sum=Sum("statements__government_total", filter=Q(statements__in=visible)),
            senior_sum=Sum("statements__senior_total", filter=Q(statements__in=visible)),
        )
        .prefetch_related(
            Prefetch("statements", queryset=visible.select_related("provider").order_by("provider__name"))
        )
        .order_by("-month")
    )


def months(*, user, now: dt.datetime | None = None, only: dt.date | None = None) -> list[MonthRow]:
    """Every month with services or a period, newest first, the current month (so far) included,
    for the providers `user` may see. A settled month shows its statements' figures (services
    paid and voided, amounts including the adjustments that landed in it); a month not settled
    yet, its services so far from the ledger (recorded, voided in the month, the paid ones'
    amounts). One grouped query over the open months' services, one over the statements.
    `only`: that month's row alone, if it has one."""
    if not can_view_settlements(user) and _own_provider_id(user) is None:
        return []
    settled = SettlementPeriod.objects.exclude(state=SettlementPeriod.State.OPEN)
    ledger = Redemption.objects.exclude(service_month__in=settled.values("month"))
    periods = SettlementPeriod.objects.select_related("settled_by")
    statements = visible_to(user).exclude(period__state=SettlementPeriod.State.OPEN)
    if only is not None:
        ledger, periods = ledger.filter(service_month=only), periods.filter(month=only)
        statements = statements.filter(period__month=only)
    provider_id = None if can_view_settlements(user) else _own_provider_id(user)
    if provider_id is not None:
        ledger = ledger.filter(provider_id=provider_id)
    paid = _paid_in_month()
    rows = {
        row["service_month"]: row
        for row in ledger.values("service_month")
        .annotate(
            recorded=Count("id"),
            voided=Count("id", filter=_voided_in_month()),
            amount=Sum("amount", filter=paid),
            government=Sum("government_share", filter=paid),
            senior=Sum("senior_share", filter=paid),
        )
        .order_by()
    }
    for row in (
        statements.values("period__month")
        .annotate(
            paid=Sum("redemption_count"),
            voided=Sum("void_count"),
            amount=Sum("total_amount"),
            government=Sum("government_total"),
            senior=Sum("senior_total"),
        )
        .order_by()
    ):
        rows[row["period__month"]] = {**row, "recorded": (row["paid"] or 0) + (row["voided"] or 0)}
    periods = {period.month: period for period in periods}
    current = month_of(now or timezone.now())
    result = []
    shown = set(rows) | set(periods) | ({current} if only in (None, current) else set())
    for month in sorted(shown, reverse=True):
        row = rows.get(month, {})
        period = periods.get(month)
        recorded, voided = row.get("recorded") or 0, row.get("voided") or 0
        result.append(
            MonthRow(
                month=month,
                period=period,
                state=period.state if period else SettlementPeriod.State.OPEN,
                recorded=recorded,
                voided=voided,
                paid=recorded - voided,
                amount=row.get("amount") or 0,
                government=row.get("government") or 0,
                senior=row.get("senior") or 0,
            )
        )
    return result


def month_row(*, user, month: dt.date, now: dt.datetime | None = None) -> MonthRow | None:
    """One month as `months` shows it, or None if it has neither services nor a period (and is
    not the current month)."""
    found = months(user=user, now=now, only=month)
    return found[0] if found else None


@dataclass(frozen=True)
class PeriodSummary:
    period: SettlementPeriod
    statements: list  # Statement, with provider, ordered by provider name
    tiers: list  # dicts: tier_code, tier_name, redemption_count, void_count, amount, government, senior
    spend: list  # dicts: provider_name, tier_code, amount (for the chart, and its table)
    checks: list  # ReconciliationCheck


def period_summary(*, user, month: dt.date) -> PeriodSummary | None:
    """A settled month as `user` may see it: its statements by provider name (with state, counts
    incl. voids, totals), totals by tier and spend per provider and tier from the statement lines,
    and its reconciliation checks. None if the month is not settled or nothing is visible."""
    period = settled_period(month=month)
    if period is None:
        return None
    statements = list(
        visible_to(user)
        .filter(period=period)
        .select_related("provider", "prepared_by", "reviewed_by", "approved_by", "paid_by")
        .order_by("provider__name")
    )
    if not statements:
        return None
    lines = StatementLine.objects.filter(statement__in=[s.pk for s in statements])
    names = tier_names()
    tiers = [
        {**row, "tier_name": names.get(row["tier_code"], row["tier_code"])}
        for row in lines.values("tier_code")
        .annotate(
            redemption_count=Sum("redemption_count", filter=Q(kind="service")),
            void_count=Sum("void_count"),
            amount=Sum("amount"),
            government=Sum("government_share"),
            senior=Sum("senior_share"),
        )
        .order_by("tier_code")
    ]
    spend = list(
        lines.values("statement__provider__name", "tier_code")
        .annotate(amount=Sum("amount"))
        .order_by("statement__provider__name", "tier_code")
    )
    spend = [
        {
            "provider_name": row["statement__provider__name"],
            "tier_code": row["tier_code"],
            "amount": row["amount"],
        }
        for row in spend
    ]
    return PeriodSummary(
        period=period, statements=statements, tiers=tiers, spend=spend, checks=checks_of(period=period)
    )


def statement_detail(*, user, statement_id: int) -> Statement | None:
    """One statement `user` may see, with its period, provider, the people of its life, its
    lines (service lines, then adjustment lines, with service items) and its adjustments (with
    their redemptions and who recorded them) as `statement.adjustments`."""
    statement = (
        visible_to(user)
        .select_related("period", "provider", "prepared_by", "reviewed_by", "approved_by", "paid_by")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=StatementLine.objects.select_related("service_item").order_by(
                    "-kind", "tier_code", "service_item__code"
                ),
            )
        )
        .filter(pk=statement_id)
        .first()
    )
    if statement is not None:
        statement.adjustments = list(adjustments_of(statement=statement))
    return statement


def statement_by_month_and_provider(*, user, month: dt.date, provider_code: str) -> Statement | None:
    found = (
        visible_to(user)
        .filter(period__month=month, provider__code=provider_code)
        .values_list("pk", flat=True)
    )
    pk = found.first()
    return statement_detail(user=user, statement_id=pk) if pk else None


def adjustments_of(*, statement: Statement) -> QuerySet[Adjustment]:
    """The adjustments that landed in a statement (its provider, its month), oldest first."""
    return (
        Adjustment.objects.filter(provider_id=statement.provider_id, month=statement.period.month)
        .select_related("redemption", "service_item", "created_by")
        .order_by("created_at", "id")
    )


def statement_redemptions(
    *,
    statement: Statement,
    voided: bool | None = None,
    service_item_code: str | None = None,
    tier_code: str | None = None,
    staff_id: int | None = None,
    served_on: dt.date | None = None,
) -> QuerySet[Redemption]:
    """The month's redemptions behind a statement (pass one from `statement_detail`, so the user
    may see it), voided ones included and annotated `voided_in_month` (True: voided while the month
    was open, not paid) and `voided_later` (True: paid here, reversed by an adjustment in a later
    month); filterable, newest first, ready for a Paginator (its service item, staff and voucher
    joined; senior names are the caller's to mask)."""
    late_void = Exists(Adjustment.objects.filter(redemption=OuterRef("pk"), kind=Adjustment.Kind.VOID))
    rows = (
        Redemption.objects.filter(provider_id=statement.provider_id, service_month=statement.period.month)
        .select_related("service_item", "staff", "voucher__senior", "void")
        .annotate(voided_later=late_void)
        .annotate(voided_in_month=Q(void__isnull=False) & Q(voided_later=False))
        .order_by("-served_at", "-id")
    )
    if voided is True:
        rows = rows.filter(void__isnull=False)
    elif voided is False:
        rows = rows.filter(void__isnull=True)
    if service_item_code:
        rows = rows.filter(service_item__code=service_item_code)
    if tier_code:
        rows = rows.filter(tier_code=tier_code)
    if staff_id:
        rows = rows.filter(staff_id=staff_id)
    if served_on:
        rows = rows.filter(served_at__date=served_on)
    return rows


def checks_of(*, period: SettlementPeriod) -> list[ReconciliationCheck]:
    """The period's reconciliation checks in the order of `billing.reconciliation.CHECKS`."""
    order = list(CHECKS)
    return sorted(
        period.checks.all(), key=lambda check: order.index(check.code) if check.code in order else 99
    )


def rows_behind(*, check: ReconciliationCheck) -> QuerySet | list:
    """The rows behind a failed check (its stored sample): statements, redemptions, vouchers, or
    tier codes, as billing.reconciliation describes each check."""
    ids = check.sample
    if check.code == "statements_add_up":
        return Statement.objects.filter(pk__in=ids).select_related("provider")
    if check.code in ("within_validity", "within_contract"):
        return Redemption.objects.filter(pk__in=ids).select_related(
            "voucher", "contract_item__contract", "provider"
        )
    if check.code == "voucher_not_overspent":
        return Voucher.objects.filter(pk__in=ids)
    return list(ids)


def overdue_statements(*, user, today: dt.date | None = None) -> QuerySet[Statement]:
    """Approved statements past their due date and not paid, the most overdue first."""
    today = today or local_date(timezone.now())
    return (
        visible_to(user)
        .filter(state=Statement.State.APPROVED, due_date__lt=today)
        .select_related("period", "provider")
        .order_by("due_date", "provider__name")
    )


def statements_for_period(*, month: dt.date, provider_code: str | None = None) -> QuerySet[Statement]:
    """A month's statements by provider code, each with its provider and its lines (prefetched)."""
    statements = Statement.objects.filter(period__month=month)
    if provider_code:
        statements = statements.filter(provider__code=provider_code)
    return (
        statements.select_related("provider", "period")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=StatementLine.objects.select_related("service_item").order_by(
                    "-kind", "tier_code", "service_item__code"
                ),
            )
        )
        .order_by("provider__code")
    )


def statement_lines(*, statement: Statement) -> QuerySet[StatementLine]:
    return statement.lines.select_related("service_item").order_by("-kind", "tier_code", "service_item__code")


def tier_names() -> dict[str, str]:
    """Tier code -> its name, the newest policy's name winning (redemptions keep only the code)."""
    rows = Tier.objects.order_by("policy__effective_from", "policy__version").values_list("code", "name")
    return dict(rows)


REDEMPTION_EXPORT_FIELDS = (
    "id",
    "provider_id",
    "provider__code",
    "provider__name",
    "served_at",
    "voucher__senior__name",
    "voucher_id",
    "tier_code",
    "service_item__code",
    "service_item_id",
    "service_item__name",
    "quantity",
    "unit_price",
    "amount",
    "government_share",
    "senior_share",
    "staff__display_name",
)


def own_provider_id(user) -> int | None:
    """The provider whose statements `user` sees as its manager (None for anyone else)."""
    return _own_provider_id(user) if user.is_authenticated else None


def provider_by_id(*, provider_id: int) -> Provider:
    return Provider.objects.get(pk=provider_id)


def redemption_rows_for_detail(*, month: dt.date, provider_code: str | None = None) -> Iterator[dict]:
    """Every redemption of a month, voided ones included, as flat dicts streamed from the database
    (the detail of the workbook and of the CSV): `REDEMPTION_EXPORT_FIELDS` plus `voided_in_month` (voided while the month was
    open: not paid) and `voided_later` (paid here; reversed by an adjustment of a later month)."""
    late_void = Exists(Adjustment.objects.filter(redemption=OuterRef("pk"), kind=Adjustment.Kind.VOID))
    rows = Redemption.objects.filter(service_month=month).annotate(
        voided_later=late_void, voided_in_month=Q(void__isnull=False) & ~Q(late_void)
    )
    if provider_code:
        rows = rows.filter(provider__code=provider_code)
    return (
        rows.order_by("provider__code", "served_at", "id")
        .values(*REDEMPTION_EXPORT_FIELDS, "voided_in_month", "voided_later")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_progress_key(export_id: int) -> str:
    """The cache key under which a workbook being written keeps (services done, services in all)."""
    return f"billing:export-progress:{export_id}"


def export_rows(*, month: dt.date, provider_code: str | None = None) -> int:
    """How many services (voided ones included) a settled month's workbook lists in its detail."""
    statements = Statement.objects.filter(period__month=month)
    if provider_code:
        statements = statements.filter(provider__code=provider_code)
    totals = statements.aggregate(n=Sum("redemption_count"), v=Sum("void_count"))
    return (totals["n"] or 0) + (totals["v"] or 0)


def exports_visible_to(user) -> QuerySet[SettlementExport]:
    """The workbooks `user` may see and download: finance, the bureau and superusers every one; a
    provider's manager those of their own provider only; anyone else none."""
    exports = SettlementExport.objects.select_related("provider", "requested_by")
    if can_view_settlements(user):
        return exports
    own = own_provider_id(user)
    return exports.filter(provider_id=own) if own is not None else exports.none()


def export_for(*, user, export_id: int) -> SettlementExport | None:
    return exports_visible_to(user).filter(pk=export_id).first()


def recent_exports(*, user, month: dt.date, provider_id: int | None = None, limit: int = 5) -> list:
    """The latest workbooks of a month (of one provider's, given `provider_id`), newest first."""
    exports = exports_visible_to(user).filter(month=month)
    if provider_id is not None:
        exports = exports.filter(provider_id=provider_id)
    return list(exports[:limit])


def export_progress(*, export: SettlementExport) -> tuple[int, int]:
    """(services done, services in all) of a workbook, for the page's bar: a finished one is
    complete; one being written shows what its worker last put in the cache (0 when the cache
    has nothing or fails: it is a helper, and the bar simply waits)."""
    total = export.rows_total
    if export.state in (SettlementExport.State.DONE, SettlementExport.State.FAILED):
        return total, total
    value = cached_progress(export_progress_key(export.pk), log=_export_log, what=f"export {export.pk}")
    if not value:
        return 0, total
    done, total = value
    return min(done, total), total
