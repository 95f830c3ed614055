#!/usr/bin/env python
"""Monthly voucher issuance of a whole city, and printing one community's cards, against bare SQL.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/issue.py --seniors 2000000 --repeats 3

It creates a throwaway database (`homecare_bench_issue`; dropped first if it exists and again at
the end unless --keep), migrates it, COPYs N generated seniors into the registry (bench/city.py,
as bench/evaluate.py does) and evaluates them once. Then, R times each, alternating the order,
with the voucher tables emptied and a CHECKPOINT before every run:

- `ours`: `vouchers.services.issue_vouchers` for next month (one INSERT … SELECT … ON CONFLICT);
- `bare`: the same rows by one hand-written INSERT … SELECT into the same table
  (its indexes, checks and foreign keys);
- `minimal`: the same INSERT … SELECT into a copy of the table with only a primary key and the
  (senior, month) unique index: what storing the rows costs at the least;
- `rerun`: `issue_vouchers` again on the issued month (it must issue nothing), against the first.

Last, `print_vouchers` for the community with the most vouchers, R times.
`--seniors 50000` gives a quick run; `--keep` leaves the database and `--reuse` runs on it again.
"""

import argparse
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.evaluate import (  # noqa: E402
    AS_OF,
    admin_statements,
    build_city,
    on_a_throwaway_city,
    settle,
)
from bench.postgres import connect, database_url, server_config, show  # noqa: E402

PERIOD = dt.date(2027, 1, 1)  # next month: the job runs in the last days of the month before
NOW = dt.datetime(2026, 12, 28, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
WHY = "bench/issue.py measures set-based SQL on PostgreSQL"
TARGETS = {"bare": 1.2, "minimal": 3.0, "rerun": 0.10}
PRINT_TARGET_S = 20.0
MINIMAL = "bench_voucher_minimal"

COLUMNS = """senior_id, determination_id, period, tier_id, tier_code, government_share_rate,
    face_value, face_value_currency, balance, balance_currency,
    valid_from, valid_until, status, token_version, issued_at"""
SELECT = """SELECT d.senior_id, d.id, %(period)s, t.id, t.code, t.government_share_rate,
           t.monthly_face_value, 'CNY', t.monthly_face_value, 'CNY',
           %(period)s, %(until)s, 'active', 1, %(now)s
    FROM eligibility_determination d
    JOIN eligibility_tier t ON t.id = d.tier_id
    JOIN eligibility_senior s ON s.id = d.senior_id
    WHERE d.is_current AND s.status = 'active'"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seniors", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db-name", default="homecare_bench_issue")
    parser.add_argument("--keep", action="store_true", help="leave the database for --reuse")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    args = parser.parse_args(argv)
    if args.seniors < 1 or args.repeats < 1:
        parser.error("--seniors and --repeats must be at least 1")
    return args


def empty_vouchers(config: dict, db_name: str) -> None:
    # CASCADE reaches only empty tables here (redemptions, reissues, scan attempts of no voucher).
    admin_statements(
        config, db_name, "TRUNCATE vouchers_voucher, vouchers_issuancerun CASCADE", f"TRUNCATE {MINIMAL}"
    )
    settle(config, db_name)


def create_minimal_table(config: dict, db_name: str) -> None:
    admin_statements(
        config,
        db_name,
        f"DROP TABLE IF EXISTS {MINIMAL}",
        f"CREATE TABLE {MINIMAL} (LIKE vouchers_voucher INCLUDING DEFAULTS INCLUDING IDENTITY)",
        f"ALTER TABLE {MINIMAL} ADD PRIMARY KEY (id), ADD UNIQUE (senior_id, period)",
    )


def run_bare(config: dict, db_name: str, table: str) -> dict:
    conn = connect(config, db_name)
    try:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({COLUMNS}) {SELECT}",
                {"period": PERIOD, "until": dt.date(2027, 1, 31), "now": NOW},
            )
            rows = cursor.rowcount
        conn.commit()  # the deferred foreign-key checks run here: they count
        return {"seconds": time.perf_counter() - started, "issued": rows}
    finally:
        conn.close()


def run_ours() -> dict:
    from django.db import connections

    from vouchers.services import issue_vouchers

    started = time.perf_counter()
    result = issue_vouchers(period=PERIOD, now=NOW)
    seconds = time.perf_counter() - started
    connections.close_all()
    return {"seconds": seconds, "issued": result.issued}


def run_print(community_code: str, folder: str) -> dict:
    from django.core.management import call_command

    out = Path(folder) / f"cards-{community_code}.pdf"
    started = time.perf_counter()
    call_command(
        "print_vouchers", "--period", f"{PERIOD:%Y-%m}", "--community", community_code, "--out", str(out)
    )
    return {"seconds": time.perf_counter() - started, "bytes": out.stat().st_size}


def main() -> None:
    args = parse_args()
    url = database_url("bench/issue.py")
    on_a_throwaway_city(args, server_config(url, why=WHY), url, measure)


def measure(args, config: dict, url: str, *, reuse: bool) -> None:
    began = build_city(args, config, url, reuse=reuse)
    import django
    from django.db import connections

    if began is not None:
        from eligibility.services import evaluate_eligibility

        evaluate_eligibility(as_of=AS_OF, job="bench-issue")
        connections.close_all()
        admin_statements(config, args.db_name, "VACUUM ANALYZE eligibility_determination")
        print(
            f"built {args.db_name}: {args.seniors} seniors, evaluated, in {time.perf_counter() - began:.0f} s"
        )
    create_minimal_table(config, args.db_name)
    (server_version,) = show(config, args.db_name, "server_version")
    print(
        f"PostgreSQL {server_version}, Python {platform.python_version()}, Django {django.get_version()}; "
        f"{args.seniors} seniors; issuing {PERIOD:%Y-%m}; {args.repeats} runs of each kind, alternating"
    )

    results: dict[str, list[dict]] = {}

    def record(kind: str, r: int, result: dict) -> None:
        results.setdefault(kind, []).append(result)
        extra = f"   {result['issued']} vouchers" if "issued" in result else f"   {result['bytes']} bytes"
        print(f"  run {r + 1}/{args.repeats} {kind:8s} {result['seconds']:8.2f} s{extra}")

    kinds = ["ours", "bare", "minimal"]
    for r in range(args.repeats):
        for kind in kinds[r % 3 :] + kinds[: r % 3]:
            empty_vouchers(config, args.db_name)
            if kind == "ours":
                record(kind, r, run_ours())
                settle(config, args.db_name)
                record("rerun", r, run_ours())
            else:
                record(
                    kind, r, run_bare(config, args.db_name, "vouchers_voucher" if kind == "bare" else MINIMAL)
                )
    issued = {result["issued"] for kind in ("ours", "bare", "minimal") for result in results[kind]}
    if len(issued) != 1 or {result["issued"] for result in results["rerun"]} != {0}:
        sys.exit(f"the kinds issued different numbers: {issued}; re-runs issued {results['rerun']}")

    # Printing: the vouchers of the last `ours` run are there again.
    empty_vouchers(config, args.db_name)
    run_ours()
    conn = connect(config, args.db_name)
    with conn.cursor() as cursor:
        cursor.execute(
            """SELECT r.code, count(*) FROM vouchers_voucher v
               JOIN eligibility_senior s ON s.id = v.senior_id JOIN eligibility_region r ON r.id = s.community_id
               GROUP BY r.code ORDER BY count(*) DESC, r.code LIMIT 1"""
        )
        community_code, cards = cursor.fetchone()
    conn.close()
    print(f"\nprinting the cards of community {community_code} ({cards} vouchers)")
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.repeats):
            record("print", r, run_print(community_code, folder))

    summarise(results, cards)


def summarise(results: dict, cards: int) -> None:
    median = {kind: statistics.median(r["seconds"] for r in rows) for kind, rows in results.items()}
    print("\nmedians")
    for kind, seconds in median.items():
        print(f"  {kind:8s} {seconds:8.2f} s")
    ratios = {
        "bare": median["ours"] / median["bare"],
        "minimal": median["ours"] / median["minimal"],
        "rerun": median["rerun"] / median["ours"],
    }
    print("\nratios (target)")
    print(f"  issuance / bare INSERT … SELECT, same table    {ratios['bare']:5.2f}×  (≤ {TARGETS['bare']}×)")
    print(
        f"  issuance / INSERT into PK + unique only        {ratios['minimal']:5.2f}×  (≤ {TARGETS['minimal']}×)"
    )
    print(f"  re-run / first issuance                        {ratios['rerun']:5.2f}   (≤ {TARGETS['rerun']})")
    print(
        f"  printing {cards} cards                          {median['print']:5.1f} s  (≤ {PRINT_TARGET_S} s)"
    )
    missed = [kind for kind, ratio in ratios.items() if ratio > TARGETS[kind]]
    if median["print"] > PRINT_TARGET_S:
        missed.append("print")
    print("\nall targets met" if not missed else f"\nmissed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
