"""The reconciliation checks run by every settlement of a month, each one SQL statement, stored as
`ReconciliationCheck` rows (status, how many rows fail, the first of them) for the pages.

    statements_add_up      every statement = the sum of its lines = its paid services of the month
                           (redemptions less those voided in the month) plus the adjustments
                           landing in it, to the fen; sample: statement ids
    within_validity        no paid service outside its voucher's month and validity window;
                           sample: redemption ids
    within_contract        no paid service on another provider's contract, another item, or a
                           day outside the contract's period; sample: redemption ids
    voucher_not_overspent  no voucher of the month paid more than its face value and carry-over
                           (government shares less what voids credited back); sample: voucher ids
    tier_within_face_value per tier, the government's total ≤ face value × vouchers issued (with
                           carry-over); sample: tier codes

`statements_add_up` failing means the settlement itself is wrong: approval is refused
(`BLOCKING`). The others are findings about the month's services, shown for finance to act on
with adjustments; they do not stop the payment of what was served correctly.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Sum

from billing import settlement_sql
from billing.models import Adjustment, ReconciliationCheck, SettlementPeriod, Statement, StatementLine
from billing.settlement_sql import LEDGER, PAID, fen, fen_sum, served_on
from config.months import last_day

SAMPLE = 20
ZERO = Decimal("0.00")
BLOCKING = ("statements_add_up",)


def _within_validity() -> str:
    return f"""
    SELECT COUNT(*) OVER (), r.id
    {LEDGER.replace("WHERE", "JOIN vouchers_voucher w ON w.id = r.voucher_id WHERE", 1)}
      AND {PAID}
      AND (w.period <> r.service_month OR {served_on()} < w.valid_from OR {served_on()} > w.valid_until)
    ORDER BY r.id LIMIT {SAMPLE}
    """


def _within_contract() -> str:
    return f"""
    SELECT COUNT(*) OVER (), r.id
    {
        LEDGER.replace(
            "WHERE",
            "JOIN providers_contractitem ci ON ci.id = r.contract_item_id "
            "JOIN providers_contract c ON c.id = ci.contract_id WHERE",
            1,
        )
    }
      AND {PAID}
      AND (c.provider_id <> r.provider_id OR ci.service_item_id <> r.service_item_id
           OR {served_on()} < c.starts_on OR {served_on()} > c.ends_on)
    ORDER BY r.id LIMIT {SAMPLE}
    """


def _voucher_not_overspent() -> str:
    # Services the senior paid in full spend nothing of a voucher: only the others are added up.
    return f"""
    WITH spent AS MATERIALIZED (
        SELECT r.voucher_id,
               {fen_sum("r.government_share")} - {fen_sum("COALESCE(v.credited_back, 0)")} AS net
        FROM vouchers_redemption r LEFT JOIN vouchers_redemptionvoid v ON v.redemption_id = r.id
        WHERE r.service_month = %(month)s AND r.government_share > 0
        GROUP BY r.voucher_id
    )
    SELECT COUNT(*) OVER (), w.id FROM spent
    JOIN vouchers_voucher w ON w.id = spent.voucher_id
    WHERE spent.net > {fen("w.face_value + w.carried_over")}
    ORDER BY w.id LIMIT {SAMPLE}
    """


def _tier_within_face_value() -> str:
    # From the service lines (checked against the ledger by statements_add_up), not the ledger again.
    return f"""
    WITH spent AS MATERIALIZED (
        SELECT l.tier_code, {fen_sum("l.government_share")} AS government
        FROM billing_statementline l JOIN billing_statement s ON s.id = l.statement_id
        WHERE s.period_id = %(period)s AND l.kind = 'service'
        GROUP BY l.tier_code
    ), issued AS MATERIALIZED (
        SELECT tier_code, {fen_sum("face_value + carried_over")} AS entitled
        FROM vouchers_voucher WHERE period = %(month)s GROUP BY tier_code
    )
    SELECT COUNT(*) OVER (), spent.tier_code FROM spent
    LEFT JOIN issued ON issued.tier_code = spent.tier_code
    WHERE spent.government > COALESCE(issued.entitled, 0)
    ORDER BY spent.tier_code LIMIT {SAMPLE}
    """


CHECKS = {
    "statements_add_up": None,
    "within_validity": _within_validity,
    "within_contract": _within_contract,
    "voucher_not_overspent": _voucher_not_overspent,
    "tier_within_face_value": _tier_within_face_value,
}
# What PostgreSQL's one pass over the ledger (settlement_sql.pg_ledger) answers.
FROM_THE_LEDGER_PASS = ("within_validity", "within_contract")


@dataclass
class Ledger:
    """The month's paid services per provider: (count, amount, government, senior), and, from
    PostgreSQL's one pass, the outcomes of the checks it made: code → (failing count, sample)."""

    providers: dict = field(default_factory=dict)
    outcomes: dict = field(default_factory=dict)

    @classmethod
    def from_pg_rows(cls, rows) -> "Ledger":
        """From `settlement_sql.pg_ledger`'s rows: one per line (provider, tier, item)."""
        ledger = cls()
        providers = defaultdict(lambda: [0, ZERO, ZERO, ZERO])
        invalid, off = [0, []], [0, []]
        for row in rows:
            provider_id, _tier, _item, n, _voided, _quantity, amount, government, senior = row[:9]
            invalid_n, invalid_first, invalid_last, off_n, off_first, off_last = row[9:]
            totals = providers[provider_id]
            totals[0] += n
            totals[1] += as_fen(amount)
            totals[2] += as_fen(government)
            totals[3] += as_fen(senior)
            for outcome, count, ids in (
                (invalid, invalid_n, (invalid_first, invalid_last)),
                (off, off_n, (off_first, off_last)),
            ):
                if count:
                    outcome[0] += count
                    outcome[1].extend(ids)
        ledger.providers = {provider_id: tuple(totals) for provider_id, totals in providers.items()}
        for code, (count, sample) in zip(FROM_THE_LEDGER_PASS, (invalid, off), strict=True):
            ledger.outcomes[code] = (count, sorted(set(sample))[:SAMPLE])
        return ledger


def as_fen(value) -> Decimal:
    """An amount summed by either database, to the fen (SQLite's sums come back as floats of whole
    fen, django-money's sometimes as Money)."""
    value = getattr(value, "amount", value)
    return Decimal(str(value if value is not None else 0)).quantize(Decimal("0.01"))


def _statements_add_up(*, period: SettlementPeriod, providers: dict) -> tuple[int, list]:
    """Statements whose figures differ from the sums of their lines, whose service lines differ
    from their provider's paid services, or whose adjustment lines from the adjustments landing
    in the month (all small: a statement per provider)."""
    lines = defaultdict(lambda: [0, ZERO, ZERO, ZERO])
    for row in (
        StatementLine.objects.filter(statement__period=period)
        .values("statement_id", "kind")
        .annotate(
            n=Sum("redemption_count"), a=Sum("amount"), g=Sum("government_share"), s=Sum("senior_share")
        )
        .order_by()
    ):
        lines[(row["statement_id"], row["kind"])] = [
            row["n"],
            as_fen(row["a"]),
            as_fen(row["g"]),
            as_fen(row["s"]),
        ]
    adjusted = {
        row["provider_id"]: (row["n"], as_fen(row["a"]), as_fen(row["g"]), as_fen(row["s"]))
        for row in Adjustment.objects.filter(month=period.month)
        .values("provider_id")
        .annotate(n=Count("id"), a=Sum("amount"), g=Sum("government_share"), s=Sum("senior_share"))
        .order_by()
    }
    nothing = (0, ZERO, ZERO, ZERO)
    failing = []
    for statement in Statement.objects.filter(period=period).order_by("id"):
        service = tuple(lines[(statement.pk, "service")])
        adjustment = tuple(lines[(statement.pk, "adjustment")])
        own = (
            statement.redemption_count + statement.adjustment_count,
            as_fen(statement.total_amount.amount),
            as_fen(statement.government_total.amount),
            as_fen(statement.senior_total.amount),
        )
        summed = tuple(a + b for a, b in zip(service, adjustment, strict=True))
        if not (
            own == summed
            and service == providers.get(statement.provider_id, nothing)
            and adjustment == adjusted.get(statement.provider_id, nothing)
        ):
            failing.append(statement.pk)
    return len(failing), failing[:SAMPLE]


def run_checks(
    *, period: SettlementPeriod, now: dt.datetime, ledger: Ledger | None = None
) -> list[ReconciliationCheck]:
    """Run every check of `period` (in the settlement's transaction) and store its outcome,
    replacing that of an earlier settlement of the month. `ledger`: what PostgreSQL's one pass
    over the month found; without it (SQLite) each check reads the ledger itself."""
    params = {
        "period": period.pk,
        "month": connection.ops.adapt_datefield_value(period.month),
        "last_day": connection.ops.adapt_datefield_value(last_day(period.month)),
    }
    if ledger is None:
        ledger = Ledger(
            providers={
                provider_id: (n, as_fen(amount), as_fen(government), as_fen(senior))
                for provider_id, n, amount, government, senior in settlement_sql.fetch(
                    settlement_sql.provider_ledger(), params
                )
            }
        )
    outcomes = dict(ledger.outcomes)
    outcomes["statements_add_up"] = _statements_add_up(period=period, providers=ledger.providers)
    for code, sql in CHECKS.items():
        if code not in outcomes:
            rows = settlement_sql.fetch(sql(), params)
            outcomes[code] = (rows[0][0] if rows else 0, [row[1] for row in rows])
    results = [
        ReconciliationCheck(
            period=period,
            code=code,
            status=ReconciliationCheck.Status.FAILED
            if outcomes[code][0]
            else ReconciliationCheck.Status.PASSED,
            failing_count=outcomes[code][0],
            sample=list(outcomes[code][1]),
            checked_at=now,
        )
        for code in CHECKS
    ]
    ReconciliationCheck.objects.filter(period=period).delete()
    return ReconciliationCheck.objects.bulk_create(results)


def failed(*, period: SettlementPeriod, codes=tuple(CHECKS)) -> bool:
    return ReconciliationCheck.objects.filter(
        period=period, code__in=codes, status=ReconciliationCheck.Status.FAILED
    ).exists()
