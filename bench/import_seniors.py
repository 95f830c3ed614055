#!/usr/bin/env python
"""Registry import throughput: `eligibility.importer.run_import` against a bare baseline, same run.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/import_seniors.py --rows 100000 --repeats 3

It creates a throwaway database (`homecare_bench_import` by default; dropped first if it exists
and dropped again at the end), migrates it, builds a synthetic city's regions (bench/city.py) and
writes one workbook of N new seniors. Then, R times, alternating the order:

- baseline: python-calamine reads every row of the workbook and one psycopg2 connection COPYs
  the same cells, as text, into a scratch table without indexes, and commits;
- service: `run_import(data=…, user=None)` of the same file into an empty registry.

Each measured run is a fresh subprocess, so its peak RSS (ru_maxrss) is its own: the whole
process, Django included. tracemalloc slows Python down, so its peak (the Python allocations of
the measured work alone, from reading the file on) comes from one more, untimed, run of each
kind at the end.
See bench/README.md.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import (  # noqa: E402
    connect,
    database_url,
    recreate_database,
    server_config,
    setup_django,
    show,
)

BASELINE_TABLE = "bench_import_baseline"
COPY_BATCH = 10_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="seniors in the workbook (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument(
        "--db-name", default="homecare_bench_import", help="the throwaway database (dropped and recreated)"
    )
    parser.add_argument(
        "--workbook", help="reuse this workbook instead of writing one (it must match --rows)"
    )
    # Internal: one measured run in this process; prints one JSON line.
    parser.add_argument("--child", choices=["baseline", "service", "job"], help=argparse.SUPPRESS)
    parser.add_argument("--job-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-job",
        action="store_true",
        help="skip the one run of the whole Celery job (import and evaluation)",
    )
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeats < 1:
        parser.error("--rows and --repeats must be at least 1")
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- The two measured kinds, each run in its own process ---------------------------------------


def _copy_text(value) -> str:
    if value is None or value == "":
        return "\\N"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def run_baseline(config: dict, db_name: str, workbook: str) -> dict:
    """Read every row with python-calamine; COPY the cells as text into a table with no indexes."""
    import io

    from python_calamine import CalamineWorkbook

    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            started = time.perf_counter()
            data = Path(workbook).read_bytes()
            sheet = CalamineWorkbook.from_object(io.BytesIO(data)).get_sheet_by_index(0)
            rows = sheet.iter_rows()
            width = len(next(rows))  # the header
            cursor.execute(f"TRUNCATE {BASELINE_TABLE}")
            copied, lines = 0, []
            for cells in rows:
                lines.append("\t".join([_copy_text(value) for value in cells]) + "\n")
                if len(lines) >= COPY_BATCH:
                    cursor.copy_expert(f"COPY {BASELINE_TABLE} FROM STDIN", io.StringIO("".join(lines)))
                    copied, lines = copied + len(lines), []
            if lines:
                cursor.copy_expert(f"COPY {BASELINE_TABLE} FROM STDIN", io.StringIO("".join(lines)))
                copied += len(lines)
            conn.commit()
            seconds = time.perf_counter() - started
    finally:
        conn.close()
    return {"seconds": seconds, "rows": copied, "columns": width}


def run_service(workbook: str) -> dict:
    """`run_import` of the workbook, as the Celery task does it (user None: a system import)."""
    from eligibility.importer import run_import
    from eligibility.models import Senior

    started = time.perf_counter()
    data = Path(workbook).read_bytes()
    report = run_import(data=data, user=None)
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"the import was refused: {[e.to_json() for e in report.errors[:5]]}")
    return {
        "seconds": seconds,
        "rows": report.created,
        "seniors": Senior.objects.count(),
        "history": Senior.history.count(),
    }


def run_job(job_id: int) -> dict:
    """The whole job a Celery worker runs for a large upload, in its own process as a worker
    would: the queued ImportJob (its workbook stored in the database by the parent, as the page
    stores it) through `finish_import_job`, which imports and then evaluates every imported
    senior. Not part of the ratio: what a person waits for after a large upload."""
    from eligibility import services
    from eligibility.models import Determination, ImportJob

    timings = {}
    evaluate = services.evaluate_imported_seniors

    def timed_evaluation(**kwargs):
        timings["import_seconds"] = time.perf_counter() - started
        timings["import_maxrss_mb"] = peak_rss_mb()
        return evaluate(**kwargs)

    services.evaluate_imported_seniors = timed_evaluation
    started = time.perf_counter()
    finished = services.finish_import_job(job_id=job_id)
    seconds = time.perf_counter() - started
    if finished.state != ImportJob.State.DONE:
        raise SystemExit(f"the job ended {finished.state}: {finished.report}")
    return {
        "seconds": seconds,
        "rows": finished.report["created"],
        "determinations": Determination.objects.filter(is_current=True).count(),
        **timings,
    }


def queue_job(workbook: str) -> int:
    """A queued ImportJob of the workbook, uploaded by a bureau administrator (the page's part)."""
    from django.contrib.auth.models import Group, User

    from eligibility import services
    from eligibility.models import ImportJob

    services.ensure_default_policy()
    user, _created = User.objects.get_or_create(username="bench-bureau")
    user.groups.add(Group.objects.get(name="bureau"))
    job = ImportJob.objects.create(
        created_by=user, filename="bench.xlsx", workbook=Path(workbook).read_bytes()
    )
    return job.pk


def child(args) -> None:
    import tracemalloc

    url = os.environ["DATABASE_URL"]
    config = server_config(url, why="bench/import_seniors.py compares the import with a PostgreSQL COPY")
    if args.child in ("service", "job"):
        setup_django(url, args.db_name)  # before tracing: the peak is the import's own
    if args.tracemalloc:
        tracemalloc.start()
    if args.child == "baseline":
        result = run_baseline(config, args.db_name, args.workbook)
    elif args.child == "job":
        result = run_job(args.job_id)
    else:
        result = run_service(args.workbook)
    if args.tracemalloc:
        result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    result["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure_in_child(
    kind: str, args, workbook: str, *, traced: bool = False, job_id: int | None = None
) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--db-name", args.db_name, "--workbook", workbook]
    if job_id is not None:
        command += ["--job-id", str(job_id)]
    if traced:
        command.append("--tracemalloc")
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- The parent: set up, alternate the runs, summarise ------------------------------------------


def empty_registry(config: dict, db_name: str) -> None:
    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "TRUNCATE eligibility_historicalsenior, eligibility_senior RESTART IDENTITY CASCADE"
            )
            cursor.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE eligibility_senior")
            cursor.execute("VACUUM ANALYZE eligibility_historicalsenior")
    finally:
        conn.close()


def create_baseline_table(config: dict, db_name: str, columns: int) -> None:
    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
            cells = ", ".join(f"c{i} text" for i in range(columns))
            cursor.execute(f"CREATE TABLE {BASELINE_TABLE} ({cells})")
        conn.commit()
    finally:
        conn.close()


def main() -> None:
    args = parse_args()
    url = database_url("bench/import_seniors.py")
    if args.child:
        child(args)
        return
    config = server_config(url, why="bench/import_seniors.py compares the import with a PostgreSQL COPY")
    if config["NAME"] == args.db_name:
        sys.exit(f"DATABASE_URL names {args.db_name}, the database this script drops; use another one.")

    recreate_database(config, args.db_name, create=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
            measure(args, config, url, folder)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        recreate_database(config, args.db_name, create=False)


def measure(args, config: dict, url: str, folder: str) -> None:
    setup_django(url, args.db_name)
    import django
    from django.core.management import call_command
    from django.db import connections

    from bench.city import create_regions, write_import_workbook
    from eligibility.importer import COLUMNS

    call_command("migrate", verbosity=0)
    codes = create_regions()
    connections.close_all()
    workbook = args.workbook
    if workbook is None:
        workbook = str(Path(folder) / f"seniors-{args.rows}.xlsx")
        started = time.perf_counter()
        write_import_workbook(workbook, args.rows, community_codes=codes)
        print(f"wrote {workbook} ({args.rows} rows) in {time.perf_counter() - started:.1f} s")
    (server_version,) = show(config, args.db_name, "server_version")
    size_mb = Path(workbook).stat().st_size / 2**20
    print(
        f"PostgreSQL {server_version}, Python {platform.python_version()}, Django {django.get_version()}; "
        f"{args.rows} new seniors × {len(COLUMNS)} columns ({size_mb:.1f} MB), {len(codes)} communities, "
        f"{args.repeats} runs of each kind, each in a fresh process"
    )

    results: dict[str, list[dict]] = {"baseline": [], "service": []}
    for r in range(args.repeats):
        # Alternate the order so that drift (a warming cache, a busy machine) hits both alike.
        kinds = ("baseline", "service") if r % 2 == 0 else ("service", "baseline")
        for kind in kinds:
            empty_registry(config, args.db_name)
            create_baseline_table(config, args.db_name, len(COLUMNS))
            result = measure_in_child(kind, args, workbook)
            if result["rows"] != args.rows or (kind == "service" and result["history"] != args.rows):
                sys.exit(f"{kind} run {r + 1} wrote {result} instead of {args.rows} rows")
            result["rate"] = result["rows"] / result["seconds"]
            results[kind].append(result)
            print(
                f"  run {r + 1}/{args.repeats} {kind:8s} {result['seconds']:7.2f} s "
                f"{result['rate']:9.0f} rows/s   peak RSS {result['maxrss_mb']:6.1f} MB"
            )

    traced = {}
    for kind in ("baseline", "service"):
        empty_registry(config, args.db_name)
        create_baseline_table(config, args.db_name, len(COLUMNS))
        traced[kind] = measure_in_child(kind, args, workbook, traced=True)

    def median(kind, key):
        return statistics.median(result[key] for result in results[kind])

    baseline, service = median("baseline", "rate"), median("service", "rate")
    print()
    print(
        f"baseline (calamine read + COPY into a bare table): median {baseline:9.0f} rows/s "
        f"({median('baseline', 'seconds'):.2f} s), peak RSS {median('baseline', 'maxrss_mb'):.1f} MB, "
        f"tracemalloc peak {traced['baseline']['tracemalloc_peak_mb']:.1f} MB"
    )
    print(
        f"service  (eligibility.importer.run_import):        median {service:9.0f} rows/s "
        f"({median('service', 'seconds'):.2f} s), peak RSS {median('service', 'maxrss_mb'):.1f} MB, "
        f"tracemalloc peak {traced['service']['tracemalloc_peak_mb']:.1f} MB"
    )
    print(f"ratio    baseline / service: {baseline / service:.2f} (target ≤ 3)")

    if not args.no_job:
        empty_registry(config, args.db_name)
        job = measure_in_child("job", args, workbook, job_id=queue_job(workbook))
        print(
            f"job      (the Celery task: stored upload → import → evaluation of every imported senior): "
            f"{job['seconds']:.1f} s, of which the import {job['import_seconds']:.1f} s "
            f"(peak RSS {job['import_maxrss_mb']:.1f} MB); {job['determinations']} determinations; "
            f"peak RSS {job['maxrss_mb']:.1f} MB"
        )


if __name__ == "__main__":
    main()
