#!/usr/bin/env python
"""Monthly settlement of a whole city against a bare INSERT … SELECT … GROUP BY of the same lines.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/settle.py --redemptions 5000000

It creates a throwaway database (`homecare_bench_settle`; dropped first if it exists and again at
the end unless --keep), migrates it, COPYs a city of seniors (one per 20 redemptions, bench/city.py),
evaluates them and issues October 2026's vouchers, contracts 50 providers (two items, one staff
member each), and writes N redemptions of October over them by one INSERT … SELECT (every 100th
voided in the month). Then, R times each, alternating the order, with the month's settlement
emptied and a CHECKPOINT before every run:

- `ours`: `billing.services.settle` (close the month, statements, service and adjustment lines,
  the statements' figures, the five reconciliation checks), with the time of each statement;
- `bare`: one hand-written INSERT … SELECT … GROUP BY of the same lines (provider, tier, item:
  count, quantity and money sums of the non-voided redemptions) into a table without indexes.

The figures of both must agree to the fen. `--redemptions 200000` gives a quick run.
"""

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.evaluate import admin_statements, build_city, on_a_throwaway_city, settle  # noqa: E402
from bench.postgres import connect, database_url, server_config, show  # noqa: E402

MONTH = dt.date(2026, 10, 1)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
ISSUED_AT = dt.datetime(2026, 10, 1, 8, 0, tzinfo=SHANGHAI)
SETTLED_AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
PROVIDERS = 50
REDEMPTIONS_PER_SENIOR = 20
WHY = "bench/settle.py measures set-based SQL on PostgreSQL"
TARGET = 1.5
BARE_TABLE = "bench_settlement_lines"

BARE = f"""
INSERT INTO {BARE_TABLE}
SELECT r.provider_id, r.tier_code, r.service_item_id, COUNT(*), SUM(r.quantity),
       SUM(r.amount), SUM(r.government_share), SUM(r.senior_share)
FROM vouchers_redemption r
LEFT JOIN vouchers_redemptionvoid v ON v.redemption_id = r.id
WHERE r.service_month = %(month)s AND v.id IS NULL
GROUP BY r.provider_id, r.tier_code, r.service_item_id
"""

# N redemptions of 0.25 h at ¥40 (¥10.00; the government's share at the voucher's rate), spread
# round-robin over the vouchers and over the providers' contract items, on days 1–28 at 10:00.
REDEMPTIONS = """
WITH v AS (
    SELECT id, tier_code, government_share_rate, row_number() OVER (ORDER BY id) - 1 AS k
    FROM vouchers_voucher WHERE period = %(month)s
), p AS (
    SELECT ci.id AS contract_item_id, ci.service_item_id, c.provider_id, st.id AS staff_id,
           row_number() OVER (ORDER BY ci.id) - 1 AS k
    FROM providers_contractitem ci
    JOIN providers_contract c ON c.id = ci.contract_id
    JOIN providers_staffmember st ON st.provider_id = c.provider_id
)
INSERT INTO vouchers_redemption (
    voucher_id, provider_id, contract_item_id, service_item_id, staff_id, quantity,
    unit_price, unit_price_currency, amount, amount_currency, government_share, government_share_currency,
    senior_share, senior_share_currency, tier_code, government_share_rate, service_month, served_at,
    recorded_at, offline, idempotency_key
)
SELECT v.id, p.provider_id, p.contract_item_id, p.service_item_id, p.staff_id, 0.25,
       40, 'CNY', 10, 'CNY', round(10 * v.government_share_rate, 2), 'CNY',
       10 - round(10 * v.government_share_rate, 2), 'CNY', v.tier_code, v.government_share_rate,
       %(month)s, t.at, t.at, false, 'bench-' || i
FROM generate_series(0, %(n)s - 1) AS i
CROSS JOIN LATERAL (SELECT (%(month)s::date + (i %% 28) * interval '1 day' + interval '10 hours')
                           AT TIME ZONE 'Asia/Shanghai' AS at) t
JOIN v ON v.k = i %% (SELECT count(*) FROM v)
JOIN p ON p.k = i %% (SELECT count(*) FROM p)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redemptions", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db-name", default="homecare_bench_settle")
    parser.add_argument("--keep", action="store_true", help="leave the database for --reuse")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    args = parser.parse_args(argv)
    if args.redemptions < 1 or args.repeats < 1:
        parser.error("--redemptions and --repeats must be at least 1")
    args.seniors = max(1000, args.redemptions // REDEMPTIONS_PER_SENIOR)
    return args


def build_month(args, config: dict) -> None:
    """Vouchers of October for the city, 50 contracted providers, and the month's redemptions."""
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from djmoney.money import Money
    from stdnum.cn import uscc

    from eligibility.models import Region
    from eligibility.services import evaluate_eligibility
    from providers.models import Contract, ContractItem, Provider, ServiceItem, StaffMember
    from vouchers.services import issue_vouchers

    evaluate_eligibility(as_of=MONTH, job="bench-settle")
    issue_vouchers(period=MONTH, now=ISSUED_AT, job="bench-settle")
    items = [
        ServiceItem.objects.create(
            code="cleaning", name="助洁", name_en="Cleaning", unit="hour", category="care"
        ),
        ServiceItem.objects.create(code="meal", name="助餐", name_en="Meal", unit="meal", category="care"),
    ]
    districts = list(Region.objects.filter(level=Region.Level.DISTRICT))
    for i in range(PROVIDERS):
        body = f"91330106MA{i + 1:07d}"
        provider = Provider.objects.create(
            code=f"p{i + 1:02d}", name=f"基准家政{i + 1:02d}", credit_code=body + uscc.calc_check_digit(body)
        )
        contract = Contract.objects.create(
            provider=provider,
            number=f"BENCH-{i + 1}",
            starts_on=dt.date(2020, 1, 1),
            ends_on=dt.date(2099, 12, 31),
        )
        contract.service_area.set(districts)
        for item in items:
            ContractItem.objects.create(
                contract=contract, service_item=item, unit_price=Money("40.00", "CNY")
            )
        user = get_user_model().objects.create_user(username=f"bench-staff-{i + 1}", password=None)
        StaffMember.objects.create(
            user=user, provider=provider, employee_number=f"B{i + 1:04d}", display_name=f"师傅{i}"
        )
    voider = get_user_model().objects.create_user(username="bench-voider", password=None)
    with connection.cursor() as cursor:
        cursor.execute(REDEMPTIONS, {"month": MONTH, "n": args.redemptions})
        cursor.execute(
            """INSERT INTO vouchers_redemptionvoid
               (redemption_id, reason, voided_by_id, voided_at, credited_back, credited_back_currency)
               SELECT id, 'bench', %s, now(), 0, 'CNY' FROM vouchers_redemption WHERE id %% 100 = 0""",
            [voider.pk],
        )
        cursor.execute(
            f"CREATE TABLE {BARE_TABLE} (provider_id bigint, tier_code varchar(30), service_item_id bigint, "
            "redemption_count integer, quantity numeric(12, 2), amount numeric(14, 2), "
            "government_share numeric(14, 2), senior_share numeric(14, 2))"
        )
    connections.close_all()
    admin_statements(
        config, args.db_name, "VACUUM ANALYZE vouchers_redemption", "VACUUM ANALYZE vouchers_redemptionvoid"
    )


def reset(config: dict, db_name: str) -> None:
    """The month unsettled again (TRUNCATE: not a row operation, so the closed-month triggers allow it)."""
    admin_statements(
        config,
        db_name,
        "TRUNCATE billing_reconciliationcheck, billing_statementline, billing_statement, "
        f"billing_settlementperiod, vouchers_closedmonth, {BARE_TABLE}",
    )
    settle(config, db_name)


def run_ours() -> dict:
    """`settle` timed whole, and each SQL statement it sends (by its first words)."""
    from django.db import connection

    from billing.services import settle as settle_month

    steps: dict[str, float] = defaultdict(float)

    def timed(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            steps[" ".join(sql.split())[:60]] += time.perf_counter() - began

    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        result = settle_month(month=MONTH, job="bench-settle", now=SETTLED_AT)
    seconds = time.perf_counter() - started
    checks = {check.code: check.status for check in result.period.checks.all()}
    return {
        "seconds": seconds,
        "totals": (result.redemption_count, result.total_amount.amount, result.government_total.amount),
        "checks": checks,
        "steps": dict(steps),
    }


def run_bare(config: dict, db_name: str) -> dict:
    conn = connect(config, db_name)
    try:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(BARE, {"month": MONTH})
        conn.commit()
        seconds = time.perf_counter() - started
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT SUM(redemption_count), SUM(amount), SUM(government_share) FROM {BARE_TABLE}"
            )
            n, amount, government = cursor.fetchone()
    finally:
        conn.close()
    return {"seconds": seconds, "totals": (int(n), Decimal(amount), Decimal(government))}


def main() -> None:
    args = parse_args()
    url = database_url("bench/settle.py")
    on_a_throwaway_city(args, server_config(url, why=WHY), url, measure)


def measure(args, config: dict, url: str, *, reuse: bool) -> None:
    began = build_city(args, config, url, reuse=reuse)
    import django

    if began is not None:
        build_month(args, config)
        print(
            f"built {args.db_name}: {args.seniors} seniors, {PROVIDERS} providers, "
            f"{args.redemptions} redemptions, in {time.perf_counter() - began:.0f} s"
        )
    server_version, work_mem = show(config, args.db_name, "server_version", "work_mem")
    print(
        f"PostgreSQL {server_version} (work_mem {work_mem}), Python {platform.python_version()}, "
        f"Django {django.get_version()}; {args.redemptions} redemptions of {MONTH:%Y-%m} over {PROVIDERS} "
        f"providers; {args.repeats} runs of each kind, alternating"
    )
    results: dict[str, list[dict]] = {"ours": [], "bare": []}
    for r in range(args.repeats):
        for kind in ("ours", "bare") if r % 2 == 0 else ("bare", "ours"):
            reset(config, args.db_name)
            result = run_ours() if kind == "ours" else run_bare(config, args.db_name)
            results[kind].append(result)
            print(f"  run {r + 1}/{args.repeats} {kind:5s} {result['seconds']:8.2f} s   {result['totals']}")
    totals = {result["totals"] for rows in results.values() for result in rows}
    if len(totals) != 1:
        sys.exit(f"the figures differ: {totals}")
    summarise(results)


def summarise(results: dict) -> None:
    median = {kind: statistics.median(r["seconds"] for r in rows) for kind, rows in results.items()}
    last = results["ours"][-1]
    print("\nsettle's statements (last run)")
    for sql, seconds in sorted(last["steps"].items(), key=lambda item: -item[1])[:12]:
        print(f"  {seconds:8.2f} s  {sql}")
    print(f"\nreconciliation checks: {last['checks']}")
    print("\nmedians")
    for kind, seconds in median.items():
        print(f"  {kind:5s} {seconds:8.2f} s")
    ratio = median["ours"] / median["bare"]
    print(f"\nsettle / bare INSERT … SELECT … GROUP BY   {ratio:5.2f}×  (≤ {TARGET}×)")
    print("\ntarget met" if ratio <= TARGET else "\nmissed: settle")


if __name__ == "__main__":
    main()
