#!/usr/bin/env python
"""Redemption throughput: `vouchers.services.redeem` against a bare psycopg2 loop, same run.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/redeem.py

It creates a throwaway database (`homecare_bench` by default; dropped first if it exists and
dropped again at the end), migrates it, builds a provider, a staff member and seniors with
vouchers, then alternates R runs of N sequential redemptions through the service with R runs of
the same lock–insert–debit transaction written by hand. See bench/README.md.
"""

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import connect, database_url, recreate_database, server_config, setup_django  # noqa: E402

FACE_VALUE = Decimal("1000000.00")  # large enough that no run ever hits the balance shortfall
UNIT_PRICE = Decimal("40.00")
QUANTITY = Decimal("1")
# The contract's one item, paid per visit: redeem() refuses per-hour items (those are checked in
# and out), and a subsidized senior pays no share, so nothing asks for a confirmation.
BATHING = {"code": "bathing", "name": "助浴", "name_en": "Bathing", "unit": "visit", "category": "care"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="redemptions per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind (default 5)")
    parser.add_argument(
        "--vouchers", type=int, default=200, help="vouchers the redemptions are spread over (default 200)"
    )
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured redemptions of each kind first")
    parser.add_argument(
        "--db-name", default="homecare_bench", help="the throwaway database (dropped and recreated)"
    )
    args = parser.parse_args()
    if args.n < 1 or args.repeats < 1 or args.vouchers < 1 or args.warmup < 0:
        parser.error("--n, --repeats and --vouchers must be at least 1, --warmup at least 0")
    return args


def make_id_card_number(index: int) -> str:
    from stdnum.cn import ric

    birth = dt.date(1935, 1, 1) + dt.timedelta(days=index)
    body = f"330106{birth:%Y%m%d}{(index % 499) * 2 + 1:03d}"
    return body + ric.calc_check_digit(body + "0")


def build_fixtures(*, vouchers: int, staff_members: int = 1):
    """Default policy, one community, one provider contracted for BATHING, `staff_members` staff
    members, and `vouchers` subsidized seniors each holding this month's voucher with a large
    balance. "staff" is the first staff member, "staff_members" all of them."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from djmoney.money import Money
    from stdnum.cn import uscc

    from config.months import last_day, month_of
    from eligibility.models import Determination, Region, Senior
    from eligibility.services import ensure_default_policy
    from providers.models import Contract, ContractItem, Provider, ServiceItem, StaffMember
    from vouchers.models import Voucher
    from vouchers.tokens import voucher_token

    now = timezone.now()
    month = month_of(now)
    policy = ensure_default_policy()
    tier = policy.tiers.get(code="subsidized")
    district = Region.objects.create(code="B01", name="西湖区", level=Region.Level.DISTRICT)
    subdistrict = Region.objects.create(
        code="B0101", name="北山街道", level=Region.Level.SUBDISTRICT, parent=district
    )
    community = Region.objects.create(
        code="B010101", name="保俶社区", level=Region.Level.COMMUNITY, parent=subdistrict
    )
    credit_body = "91330106MA0000001"
    provider = Provider.objects.create(
        code="bench", name="基准家政", credit_code=credit_body + uscc.calc_check_digit(credit_body)
    )
    item = ServiceItem.objects.create(**BATHING)
    contract = Contract.objects.create(
        provider=provider, number="BENCH-1", starts_on=dt.date(2020, 1, 1), ends_on=dt.date(2099, 12, 31)
    )
    contract.service_area.set([subdistrict])
    contract_item = ContractItem.objects.create(
        contract=contract, service_item=item, unit_price=Money(UNIT_PRICE, "CNY")
    )
    staff_ids = []
    for i in range(staff_members):
        # The first keeps the name it always had; the others are numbered.
        suffix = "" if i == 0 else f"-{i + 1}"
        user = get_user_model().objects.create_user(username=f"bench-staff{suffix}", password=None)
        staff_ids.append(
            StaffMember.objects.create(
                user=user,
                provider=provider,
                employee_number=f"B{i + 1:04d}",
                display_name=f"基准师傅{suffix}",
            ).pk
        )

    seniors = Senior.objects.bulk_create(
        Senior(
            id_card_number=make_id_card_number(i),
            name=f"基准老人{i}",
            birth_date=dt.date(1935, 1, 1) + dt.timedelta(days=i),
            sex=Senior.Sex.MALE,
            community=community,
            three_no=True,
            status_date=month,
        )
        for i in range(vouchers)
    )
    determinations = Determination.objects.bulk_create(
        Determination(
            senior=senior, policy=policy, tier=tier, matched_rules=["subsidized_three_no"], as_of=month
        )
        for senior in seniors
    )
    voucher_rows = Voucher.objects.bulk_create(
        Voucher(
            senior=senior,
            determination=determination,
            period=month,
            tier=tier,
            tier_code=tier.code,
            government_share_rate=tier.government_share_rate,
            face_value=Money(FACE_VALUE, "CNY"),
            balance=Money(FACE_VALUE, "CNY"),
            valid_from=month,
            valid_until=last_day(month),
            issued_at=now,
        )
        for senior, determination in zip(seniors, determinations, strict=True)
    )
    staff = StaffMember.objects.select_related("provider", "user").in_bulk(staff_ids)
    return {
        "staff": staff[staff_ids[0]],
        "staff_members": [staff[pk] for pk in staff_ids],
        "contract_item": contract_item,
        "vouchers": [(v.pk, voucher_token(v)) for v in voucher_rows],
        "month": month,
    }


def run_service(fixtures: dict, *, n: int, label: str) -> float:
    """n redemptions through vouchers.services.redeem; returns redemptions per second."""
    from vouchers.services import redeem

    staff, vouchers = fixtures["staff"], fixtures["vouchers"]
    started = time.perf_counter()
    for i in range(n):
        redeem(
            token=vouchers[i % len(vouchers)][1],
            service_item_code=BATHING["code"],
            quantity=QUANTITY,
            idempotency_key=f"svc-{label}-{i:07d}",
            staff=staff,
        )
    return n / (time.perf_counter() - started)


# Also the bare app of bench/redeem_http.py (bench/bare_wsgi.py), which passes a device.
INSERT_REDEMPTION = """
    INSERT INTO vouchers_redemption (
        voucher_id, provider_id, contract_item_id, service_item_id, staff_id, device_id,
        quantity, unit_price, unit_price_currency, amount, amount_currency,
        government_share, government_share_currency, senior_share, senior_share_currency,
        tier_code, government_share_rate, service_month, served_at, recorded_at, offline, idempotency_key
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'CNY', %s, 'CNY', %s, 'CNY', %s, 'CNY',
              %s, %s, %s, %s, %s, FALSE, %s)
    RETURNING id
"""


def run_bare(conn, fixtures: dict, *, n: int, label: str) -> float:
    """The same transaction by hand: lock the voucher, price, insert, debit, commit."""
    from billing.pricing import split_price

    staff, item, vouchers, month = (
        fixtures["staff"],
        fixtures["contract_item"],
        fixtures["vouchers"],
        fixtures["month"],
    )
    started = time.perf_counter()
    with conn.cursor() as cursor:
        for i in range(n):
            voucher_id = vouchers[i % len(vouchers)][0]
            cursor.execute(
                "SELECT balance, government_share_rate, tier_code FROM vouchers_voucher "
                "WHERE id = %s FOR UPDATE",
                (voucher_id,),
            )
            balance, rate, tier_code = cursor.fetchone()
            split = split_price(
                unit_price=UNIT_PRICE, quantity=QUANTITY, government_share_rate=rate, balance=balance
            )
            now = dt.datetime.now(dt.UTC)
            cursor.execute(
                INSERT_REDEMPTION,
                (
                    voucher_id,
                    staff.provider_id,
                    item.pk,
                    item.service_item_id,
                    staff.pk,
                    None,  # no device: the service is called without one too
                    QUANTITY,
                    UNIT_PRICE,
                    split.amount,
                    split.government_share,
                    split.senior_share,
                    tier_code,
                    rate,
                    month,
                    now,
                    now,
                    f"bare-{label}-{i:07d}",
                ),
            )
            cursor.fetchone()
            cursor.execute(
                "UPDATE vouchers_voucher SET balance = balance - %s WHERE id = %s",
                (split.government_share, voucher_id),
            )
            conn.commit()
    return n / (time.perf_counter() - started)


def queries_per_redemption(fixtures: dict, *, samples: int) -> tuple[float, list[str]]:
    """Median query count of one service redemption, and the statements of the last sample."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from vouchers.services import redeem

    staff, vouchers = fixtures["staff"], fixtures["vouchers"]
    counts, statements = [], []
    for i in range(samples):
        with CaptureQueriesContext(connection) as captured:
            redeem(
                token=vouchers[i % len(vouchers)][1],
                service_item_code=BATHING["code"],
                quantity=QUANTITY,
                idempotency_key=f"count-{i:07d}",
                staff=staff,
            )
        counts.append(len(captured.captured_queries))
        statements = [q["sql"] for q in captured.captured_queries]
    return statistics.median(counts), statements


def main() -> None:
    args = parse_args()
    url = database_url("bench/redeem.py")
    config = server_config(url, why="bench/redeem.py measures row locks and transactions on PostgreSQL")
    if config["NAME"] == args.db_name:
        sys.exit(f"DATABASE_URL names {args.db_name}, the database this script drops; use another one.")

    recreate_database(config, args.db_name, create=True)
    try:
        measure(args, config, url)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        recreate_database(config, args.db_name, create=False)


def measure(args, config: dict, url: str) -> None:
    setup_django(url, args.db_name)  # DEBUG off: it would keep every query and skew the service's rate
    import django
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fixtures = build_fixtures(vouchers=args.vouchers)
    bare_conn = connect(config, args.db_name)
    try:
        with bare_conn.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server_version = cursor.fetchone()[0]
        bare_conn.commit()
        print(
            f"PostgreSQL {server_version}, Python {platform.python_version()}, "
            f"Django {django.get_version()}; {args.n} redemptions per run over {args.vouchers} "
            f"vouchers, {args.repeats} runs each"
        )
        if args.warmup:
            run_service(fixtures, n=args.warmup, label="warmup")
            run_bare(bare_conn, fixtures, n=args.warmup, label="warmup")

        service_rates, bare_rates = [], []
        for r in range(args.repeats):
            # Alternate the order so that drift (a growing table, a busy machine) hits both alike.
            kinds = ("service", "bare") if r % 2 == 0 else ("bare", "service")
            for kind in kinds:
                if kind == "service":
                    rate = run_service(fixtures, n=args.n, label=f"r{r}")
                    service_rates.append(rate)
                else:
                    rate = run_bare(bare_conn, fixtures, n=args.n, label=f"r{r}")
                    bare_rates.append(rate)
                print(f"  run {r + 1}/{args.repeats} {kind:8s} {rate:9.1f} redemptions/s")
    finally:
        bare_conn.close()

    median_queries, statements = queries_per_redemption(fixtures, samples=args.repeats)
    service, bare = statistics.median(service_rates), statistics.median(bare_rates)
    print()
    print(f"service  (vouchers.services.redeem):   median {service:9.1f} redemptions/s")
    print(f"bare     (psycopg2, same transaction): median {bare:9.1f} redemptions/s")
    print(f"ratio    bare / service: {bare / service:.2f}")
    print(f"queries  per service redemption (median of {args.repeats}): {median_queries:g}")
    for statement in statements:
        print(f"    {statement[:160]}")


if __name__ == "__main__":
    main()
