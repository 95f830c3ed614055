#!/usr/bin/env python
"""The settlement workbook of a large month against bare openpyxl write-only of the same rows.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/export.py --redemptions 1000000

It builds a throwaway database (`homecare_bench_export`; dropped first if it exists and again at
the end unless --keep) the way bench/settle.py does: a city of one senior per 20 redemptions,
October 2026's vouchers, 50 contracted providers, N redemptions (every 100th voided), and settles
the month once. Then, R times each, alternating the order, each run in a fresh child process (so
that its peak memory is its own):

- `ours`: `billing.exports.export_settlement` of the whole month: the approval summary, the
  summary, a sheet per provider, and the detail of all N redemptions (voided ones marked), read
  through the ORM and written by XlsxWriter in constant-memory mode;
- `bare`: the same N detail rows, read by one hand-written query on a psycopg2 server-side cursor
  and appended as they come to one openpyxl write-only sheet (no formats, no other sheets): what the
  issue calls "bare openpyxl write-only of the same rows";
- `bare-xlsxwriter` (information only): the same rows through XlsxWriter's constant-memory mode,
  one `write_row` per row.

It prints each run's seconds, peak resident memory and file size, and the
medians. Targets (issue 10): ours no slower than bare, peak ≤ 300 MB. The peak is the child's
VmHWM (Linux), its own high-water mark of resident memory.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.evaluate import build_city, on_a_throwaway_city, peak_rss_mb, settle  # noqa: E402
from bench.postgres import connect, database_url, server_config, setup_django, show  # noqa: E402
from bench.settle import MONTH, PROVIDERS, REDEMPTIONS_PER_SENIOR, SETTLED_AT, build_month  # noqa: E402

WHY = "bench/export.py measures a workbook of a PostgreSQL month"
PEAK_TARGET_MB = 300
SHANGHAI_SQL = "Asia/Shanghai"

# The detail's rows, as `billing.selectors.redemption_rows_for_detail` reads them, by hand.
BARE_ROWS = """
SELECT r.id, p.code, p.name, (r.served_at AT TIME ZONE %(zone)s), s.name, r.voucher_id, r.tier_code,
       i.name, r.quantity, r.unit_price, r.amount, r.government_share, r.senior_share,
       st.display_name, CASE WHEN v.id IS NULL THEN '' ELSE '当月撤销' END
FROM vouchers_redemption r
JOIN providers_provider p ON p.id = r.provider_id
JOIN vouchers_voucher w ON w.id = r.voucher_id
JOIN eligibility_senior s ON s.id = w.senior_id
JOIN providers_serviceitem i ON i.id = r.service_item_id
LEFT JOIN providers_staffmember st ON st.id = r.staff_id
LEFT JOIN vouchers_redemptionvoid v ON v.redemption_id = r.id
WHERE r.service_month = %(month)s
ORDER BY p.code, r.served_at, r.id
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redemptions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db-name", default="homecare_bench_export")
    parser.add_argument("--keep", action="store_true", help="leave the database for --reuse")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    parser.add_argument("--child", choices=("ours", "bare", "bare-xlsxwriter"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.redemptions < 1 or args.repeats < 1:
        parser.error("--redemptions and --repeats must be at least 1")
    args.seniors = max(1000, args.redemptions // REDEMPTIONS_PER_SENIOR)
    return args


def bare_rows(config: dict, db_name: str):
    """The detail's rows from a server-side cursor, 2,000 at a time (as the ORM's iterator reads)."""
    conn = connect(config, db_name)
    try:
        with conn.cursor(name="bench_export") as cursor:
            cursor.itersize = 2000
            cursor.execute(BARE_ROWS, {"zone": SHANGHAI_SQL, "month": MONTH})
            yield from cursor
    finally:
        conn.close()


def child(args, config: dict, url: str) -> None:
    """One measured export, in this process; prints a JSON line with its figures."""
    header = [
        "核销编号", "服务商编码", "服务商名称", "服务时间", "老人姓名", "服务券编号", "服务类别",
        "服务项目", "服务数量", "单价", "服务金额", "政府补贴", "个人自付", "服务人员", "撤销",
    ]  # fmt: skip
    rows = 0
    started = time.perf_counter()
    if args.child == "ours":
        setup_django(url, args.db_name)
        from billing.exports import export_settlement

        summary = export_settlement(month=MONTH, out=args.out)
        rows = summary.detail_rows
    elif args.child == "bare":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("明细")
        sheet.append(header)
        for row in bare_rows(config, args.db_name):
            sheet.append(row)
            rows += 1
        workbook.save(args.out)
    else:
        from xlsxwriter import Workbook

        workbook = Workbook(args.out, {"constant_memory": True})
        sheet = workbook.add_worksheet("明细")
        sheet.write_row(0, 0, header)
        for rows, row in enumerate(bare_rows(config, args.db_name), start=1):
            sheet.write_row(rows, 0, row)
        workbook.close()
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(
        json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": rows, "bytes": os.path.getsize(args.out)})
    )


def run_child(kind: str, args, url: str, folder: str) -> dict:
    out = os.path.join(folder, f"{kind}.xlsx")
    command = [sys.executable, __file__, "--child", kind, "--db-name", args.db_name, "--out", out]
    command += ["--redemptions", str(args.redemptions)]
    finished = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "DATABASE_URL": url}
    )
    if finished.returncode != 0:
        sys.exit(f"the {kind} export failed:\n{finished.stderr}")
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    os.remove(out)
    return result


def measure(args, config: dict, url: str, *, reuse: bool) -> None:
    began = build_city(args, config, url, reuse=reuse)
    import django

    from billing.models import SettlementPeriod

    if began is not None:
        build_month(args, config)
        print(
            f"built {args.db_name}: {args.seniors} seniors, {PROVIDERS} providers, "
            f"{args.redemptions} redemptions, in {time.perf_counter() - began:.0f} s"
        )
    if not SettlementPeriod.objects.filter(month=MONTH).exclude(state="open").exists():
        from billing.services import settle as settle_month

        settle_month(month=MONTH, job="bench-export", now=SETTLED_AT)
    from django.db import connections

    connections.close_all()
    settle(config, args.db_name)
    server_version, work_mem = show(config, args.db_name, "server_version", "work_mem")
    print(
        f"PostgreSQL {server_version} (work_mem {work_mem}), Python {platform.python_version()}, "
        f"Django {django.get_version()}; the workbook of {args.redemptions} redemptions of {MONTH:%Y-%m}; "
        f"{args.repeats} runs of each kind, alternating, each in its own process"
    )
    kinds = ("ours", "bare", "bare-xlsxwriter")
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        for r in range(args.repeats):
            for kind in kinds if r % 2 == 0 else tuple(reversed(kinds)):
                result = run_child(kind, args, url, folder)
                results[kind].append(result)
                print(
                    f"  run {r + 1}/{args.repeats} {kind:16s} {result['seconds']:8.2f} s  "
                    f"peak {result['peak_mb']:6.0f} MB  {result['bytes'] / 2**20:6.1f} MB file  "
                    f"{result['rows']} rows"
                )
    print("\nmedians")
    median = {}
    for kind, rows in results.items():
        median[kind] = statistics.median(r["seconds"] for r in rows)
        peak = statistics.median(r["peak_mb"] for r in rows)
        print(f"  {kind:16s} {median[kind]:8.2f} s  peak {peak:6.0f} MB")
    ratio = median["ours"] / median["bare"]
    peak = max(r["peak_mb"] for r in results["ours"])
    print(f"\nours / bare openpyxl write-only   {ratio:5.2f}×  (≤ 1.00×)")
    print(f"ours' highest peak                {peak:5.0f} MB  (≤ {PEAK_TARGET_MB} MB)")
    met = ratio <= 1.0 and peak <= PEAK_TARGET_MB
    print("\ntarget met" if met else "\nmissed: export")


def main() -> None:
    args = parse_args()
    url = database_url("bench/export.py")
    config = server_config(url, why=WHY)
    if args.child:
        child(args, config, url)
        return
    on_a_throwaway_city(args, config, url, measure)


if __name__ == "__main__":
    main()
