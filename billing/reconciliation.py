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

from django.db import connection

from billing.models import ReconciliationCheck, SettlementPeriod
from billing.settlement_sql import LEDGER, PAID, fen, fen_sum, served_on

SAMPLE = 20
BLOCKING = ("statements_add_up",)


def _statements_add_up() -> str:
    return f"""
    WITH ledger AS (
        SELECT r.provider_id, COUNT(*) AS n, {fen_sum("r.amount")} AS amount,
               {fen_sum("r.government_share")} AS government, {fen_sum("r.senior_share")} AS senior
        {LEDGER} AND {PAID}
        GROUP BY r.provider_id
    ), adjusted AS (
        SELECT provider_id, COUNT(*) AS n, {fen_sum("amount")} AS amount,
               {fen_sum("government_share")} AS government, {fen_sum("senior_share")} AS senior
        FROM billing_adjustment WHERE month = %(month)s GROUP BY provider_id
    ), lined AS (
        SELECT statement_id,
               SUM(CASE WHEN kind = 'service' THEN redemption_count ELSE 0 END) AS n,
               SUM(CASE WHEN kind = 'adjustment' THEN redemption_count ELSE 0 END) AS adjustments,
               {fen_sum("CASE WHEN kind = 'service' THEN amount ELSE 0 END")} AS service_amount,
               {fen_sum("CASE WHEN kind = 'service' THEN government_share ELSE 0 END")} AS service_government,
               {fen_sum("amount")} AS amount, {fen_sum("government_share")} AS government,
               {fen_sum("senior_share")} AS senior
        FROM billing_statementline
        WHERE statement_id IN (SELECT id FROM billing_statement WHERE period_id = %(period)s)
        GROUP BY statement_id
    ), checked AS (
        SELECT s.id FROM billing_statement s
        LEFT JOIN lined l ON l.statement_id = s.id
        LEFT JOIN ledger g ON g.provider_id = s.provider_id
        LEFT JOIN adjusted a ON a.provider_id = s.provider_id
        WHERE s.period_id = %(period)s AND NOT (
            s.redemption_count = COALESCE(l.n, 0) AND s.redemption_count = COALESCE(g.n, 0)
            AND s.adjustment_count = COALESCE(l.adjustments, 0) AND s.adjustment_count = COALESCE(a.n, 0)
            AND {fen("s.total_amount")} = COALESCE(l.amount, 0)
            AND {fen("s.government_total")} = COALESCE(l.government, 0)
            AND {fen("s.senior_total")} = COALESCE(l.senior, 0)
            AND COALESCE(l.service_amount, 0) = COALESCE(g.amount, 0)
            AND COALESCE(l.service_government, 0) = COALESCE(g.government, 0)
            AND COALESCE(l.amount, 0) = COALESCE(g.amount, 0) + COALESCE(a.amount, 0)
            AND COALESCE(l.government, 0) = COALESCE(g.government, 0) + COALESCE(a.government, 0)
            AND COALESCE(l.senior, 0) = COALESCE(g.senior, 0) + COALESCE(a.senior, 0)
        )
    )
    SELECT COUNT(*) OVER (), id FROM checked ORDER BY id LIMIT {SAMPLE}
    """


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
    return f"""
    WITH spent AS (
        SELECT r.voucher_id,
               {fen_sum("r.government_share")} - {fen_sum("COALESCE(v.credited_back, 0)")} AS net
        {LEDGER}
        GROUP BY r.voucher_id
    )
    SELECT COUNT(*) OVER (), w.id FROM spent
    JOIN vouchers_voucher w ON w.id = spent.voucher_id
    WHERE spent.net > {fen("w.face_value + w.carried_over")}
    ORDER BY w.id LIMIT {SAMPLE}
    """


def _tier_within_face_value() -> str:
    return f"""
    WITH spent AS (
        SELECT r.tier_code, {fen_sum("r.government_share")} AS government
        {LEDGER} AND {PAID}
        GROUP BY r.tier_code
    ), issued AS (
        SELECT tier_code, {fen_sum("face_value + carried_over")} AS entitled
        FROM vouchers_voucher WHERE period = %(month)s GROUP BY tier_code
    )
    SELECT COUNT(*) OVER (), spent.tier_code FROM spent
    LEFT JOIN issued ON issued.tier_code = spent.tier_code
    WHERE spent.government > COALESCE(issued.entitled, 0)
    ORDER BY spent.tier_code LIMIT {SAMPLE}
    """


CHECKS = {
    "statements_add_up": _statements_add_up,
    "within_validity": _within_validity,
    "within_contract": _within_contract,
    "voucher_not_overspent": _voucher_not_overspent,
    "tier_within_face_value": _tier_within_face_value,
}


def run_checks(*, period: SettlementPeriod, now: dt.datetime) -> list[ReconciliationCheck]:
    """Run every check of `period` (in the settlement's transaction) and store its outcome,
    replacing that of an earlier settlement of the month."""
    params = {"period": period.pk, "month": connection.ops.adapt_datefield_value(period.month)}
    results = []
    with connection.cursor() as cursor:
        for code, sql in CHECKS.items():
            cursor.execute(sql(), params)
            rows = cursor.fetchall()
            failing = rows[0][0] if rows else 0
            results.append(
                ReconciliationCheck(
                    period=period,
                    code=code,
                    status=ReconciliationCheck.Status.FAILED
                    if failing
                    else ReconciliationCheck.Status.PASSED,
                    failing_count=failing,
                    sample=[row[1] for row in rows],
                    checked_at=now,
                )
            )
    ReconciliationCheck.objects.filter(period=period).delete()
    return ReconciliationCheck.objects.bulk_create(results)


def failed(*, period: SettlementPeriod, codes=tuple(CHECKS)) -> bool:
    return ReconciliationCheck.objects.filter(
        period=period, code__in=codes, status=ReconciliationCheck.Status.FAILED
    ).exists()
