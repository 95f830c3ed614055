"""Reads of the billing app: who may see settlements, periods, statements and export rows."""

import datetime as dt
from collections.abc import Iterator

from django.db.models import Count, Prefetch, QuerySet, Sum

from billing.models import SettlementPeriod, Statement, StatementLine
from config.roles import BUREAU, FINANCE, PROVIDER, roles_of
from eligibility.models import Tier
from providers.models import Provider
from vouchers.models import Redemption

SETTLEMENT_ROLES = frozenset({FINANCE, BUREAU})
EXPORT_CHUNK = 2_000


def can_view_settlements(user) -> bool:
    """Finance staff, bureau administrators and superusers see every provider's statements."""
    return user.is_superuser or bool(SETTLEMENT_ROLES.intersection(roles_of(user)))


def settled_period(*, month: dt.date) -> SettlementPeriod | None:
    return SettlementPeriod.objects.filter(month=month, state=SettlementPeriod.State.SETTLED).first()


def provider_by_code(*, code: str) -> Provider | None:
    return Provider.objects.filter(code=code).first()


def settlement_periods(*, user) -> QuerySet[SettlementPeriod]:
    """Periods, newest first, with the statements `user` may see (and providers) and the month's
    totals. The totals are sums over the statements in the same query (the page is for those who
    see every statement); statements come in one prefetch, through `visible_to`."""
    return (
        SettlementPeriod.objects.select_related("settled_by")
        .annotate(
            statement_count=Count("statements"),
            redemption_total=Sum("statements__redemption_count"),
            amount_total=Sum("statements__total_amount"),
            government_sum=Sum("statements__government_total"),
            senior_sum=Sum("statements__senior_total"),
        )
        .prefetch_related(
            Prefetch(
                "statements",
                queryset=visible_to(user).select_related("provider").order_by("provider__code"),
            )
        )
        .order_by("-month")
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
                    "tier_code", "service_item__code"
                ),
            )
        )
        .order_by("provider__code")
    )


def statement_lines(*, statement: Statement) -> QuerySet[StatementLine]:
    return statement.lines.select_related("service_item").order_by("tier_code", "service_item__code")


def tier_names() -> dict[str, str]:
    """Tier code -> its name, the newest policy's name winning (redemptions keep only the code)."""
    rows = Tier.objects.order_by("policy__effective_from", "policy__version").values_list("code", "name")
    return dict(rows)


REDEMPTION_EXPORT_FIELDS = (
    "id",
    "provider__code",
    "provider__name",
    "served_at",
    "voucher__senior__name",
    "voucher_id",
    "tier_code",
    "service_item__code",
    "service_item__name",
    "quantity",
    "unit_price",
    "amount",
    "government_share",
    "senior_share",
    "staff__display_name",
)


def redemption_rows_for_export(*, month: dt.date, provider_code: str | None = None) -> Iterator[dict]:
    """Every non-voided redemption of a month as flat dicts, streamed from the database.

    `values()` joins what the export shows in the same query (no N+1) and `iterator()` reads it
    in chunks, so a city's month never sits in memory at once. Ordered by provider, then time.
    """
    rows = Redemption.objects.filter(service_month=month, void__isnull=True)
    if provider_code:
        rows = rows.filter(provider__code=provider_code)
    return (
        rows.order_by("provider__code", "served_at", "id")
        .values(*REDEMPTION_EXPORT_FIELDS)
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def visible_to(user) -> QuerySet[Statement]:
    """Statements a user may see: every provider's for finance, the bureau and superusers; a
    provider manager their own provider's; nobody else any."""
    if not user.is_authenticated:
        return Statement.objects.none()
    if can_view_settlements(user):
        return Statement.objects.all()
    staff = getattr(user, "staff_member", None)
    if PROVIDER in roles_of(user) and staff is not None:
        return Statement.objects.filter(provider_id=staff.provider_id)
    return Statement.objects.none()
